import Foundation
import Prometheus
import Protocols

/// The operator's endpoints on the HTTP server: the status page, the same as JSON, Prometheus
/// metrics and a health check.
struct OperatorRoutes {
    let registry: PrometheusCollectorRegistry
    let timeline: ClientTimeline
    let started: Date
    /// With `api.protect_status`: the control API whose read tokens these routes then need.
    var guardedBy: ControlAPI?
    /// The shadow chain, whose differences the status page shows while one runs.
    var shadow: ShadowChain? = nil

    var routes: [String: HTTPServer.Route] {
        let registry = registry, timeline = timeline, started = started, shadow = shadow
        let open: [String: HTTPServer.Route] = [
            "/": { _ in
                var page = HTTPResponse.text(StatusPage.render(clients: timeline.snapshot(), started: started, version: BootPolicyVersion.string,
                                                                  shadow: shadow.flatMap { s in s.chain == nil ? nil : { s.fields(mac: $0) } }),
                                             contentType: "text/html; charset=utf-8")
                page.headers = Self.pageHeaders
                return page
            },
            "/api/clients": { _ in
                HTTPResponse(status: .ok, contentType: "application/json", headers: Self.dataHeaders, body: .bytes(timeline.json()))
            },
            "/metrics": { _ in
                HTTPResponse(status: .ok, contentType: "text/plain; version=0.0.4; charset=utf-8", headers: Self.dataHeaders,
                             body: .bytes(registry.emitToBuffer()))
            },
        ]
        var routes = open
        if let api = guardedBy {
            routes = open.mapValues { route in { request in api.authorized(request, write: false) { _ in route(request) } } }
        }
        // A load balancer's health check needs no token.
        routes["/healthz"] = { _ in .text("ok\n") }
        return routes
    }

    /// The status page shows MACs, addresses and file names of a network's machines: no other
    /// site may frame it, run script in it or make a browser guess its type. It has no script
    /// and one inline stylesheet, so the policy allows exactly that.
    static let pageHeaders: [(String, String)] = [
        ("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"),
        ("X-Frame-Options", "DENY"),
        ("X-Content-Type-Options", "nosniff"),
        ("Referrer-Policy", "no-referrer"),
        ("Cache-Control", "no-store"),
    ]
    static let dataHeaders: [(String, String)] = [("X-Content-Type-Options", "nosniff"), ("Cache-Control", "no-store")]
}
