import Foundation
import Prometheus
import Protocols

/// The operator's endpoints on the HTTP server: the status page, the same as JSON, Prometheus
/// metrics and a health check.
struct OperatorRoutes {
    let registry: PrometheusCollectorRegistry
    let timeline: ClientTimeline
    let started: Date

    var routes: [String: HTTPServer.Route] {
        let registry = registry, timeline = timeline, started = started
        return [
            "/": { _ in
                .text(StatusPage.render(clients: timeline.snapshot(), started: started, version: BootPolicyVersion.string),
                      contentType: "text/html; charset=utf-8")
            },
            "/api/clients": { _ in
                HTTPResponse(status: .ok, contentType: "application/json", body: .bytes(timeline.json()))
            },
            "/metrics": { _ in
                HTTPResponse(status: .ok, contentType: "text/plain; version=0.0.4; charset=utf-8", body: .bytes(registry.emitToBuffer()))
            },
            "/healthz": { _ in .text("ok\n") },
        ]
    }
}
