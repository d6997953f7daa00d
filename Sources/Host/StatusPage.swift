import Foundation

/// The operator's page: one row per recent client, its timeline underneath. No external assets,
/// refreshes itself every two seconds so a rack boot can be watched live.
enum StatusPage {
    /// `shadow`: with a shadow chain running, the fields in which its answers to a client
    /// differ from the live ones (a column of its own).
    static func render(clients: [ClientTimeline.Client], started: Date, version: String, now: Date = Date(),
                       shadow: ((String) -> [String])? = nil) -> String {
        var rows = ""
        let columns = shadow == nil ? 7 : 8
        for c in clients {
            let shadowCell = shadow.map { fields in
                let differs = fields(c.mac)
                return differs.isEmpty ? "<td class=\"same\">same</td>"
                    : "<td class=\"differs\">differs: \(escape(differs.joined(separator: ", ")))</td>"
            } ?? ""
            let steps = c.events.map { e in
                "<li><time>\(offset(e.time, from: c.firstSeen))</time> <b>\(escape(e.stage))</b> \(escape(e.summary))</li>"
            }.joined()
            rows += """
                <tr class="client" data-mac="\(escape(c.mac))">\
                <td class="mac">\(escape(c.mac))</td><td>\(escape(c.address ?? "-"))</td>\
                <td>\(escape(c.arch ?? "-"))</td><td>\(escape(c.firmware ?? "-"))</td>\
                <td>\(escape(c.lastFile ?? "-"))</td><td>\(escape(c.policy ?? "-"))</td>\
                <td>\(ago(c.lastSeen, now: now))</td>\(shadowCell)</tr>
                <tr class="timeline"><td colspan="\(columns)"><ol>\(steps)</ol></td></tr>

                """
        }
        if clients.isEmpty { rows = "<tr><td colspan=\"\(columns)\" class=\"empty\">no clients seen yet</td></tr>" }
        return """
            <!doctype html>
            <html lang="en"><head><meta charset="utf-8"><meta http-equiv="refresh" content="2">
            <title>bootpolicy status</title>
            <style>
            body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222}
            h1{font-size:1.3em;margin:0 0 .2em} .meta{color:#666;margin-bottom:1em}
            table{border-collapse:collapse;width:100%} th,td{text-align:left;padding:.3em .6em}
            th{background:#eee} tr.client td{border-top:1px solid #ccc;font-weight:600}
            td.mac{font-family:monospace} tr.timeline ol{margin:.2em 0 .6em 1em;padding:0;list-style:none;color:#444}
            time{font-family:monospace;color:#777;display:inline-block;width:5em} .empty{color:#888}
            td.differs{color:#a40} td.same{color:#888;font-weight:400}
            </style></head><body>
            <h1>bootpolicy</h1>
            <div class="meta">version \(escape(version)) &middot; up \(ago(started, now: now, suffix: "")) &middot; \(clients.count) client(s) &middot; <a href="/api/clients">JSON</a> &middot; <a href="/metrics">metrics</a>\(shadow == nil ? "" : " &middot; shadow chain on: <a href=\"/api/v1/shadow\">differences</a>")</div>
            <table><thead><tr><th>MAC</th><th>address</th><th>arch</th><th>firmware</th><th>last file</th><th>policy</th><th>last seen</th>\(shadow == nil ? "" : "<th>shadow</th>")</tr></thead>
            <tbody>
            \(rows)</tbody></table></body></html>

            """
    }

    static func escape(_ s: String) -> String {
        var out = ""
        out.reserveCapacity(s.count)
        for ch in s {
            switch ch {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            default: out.append(ch)
            }
        }
        return out
    }

    static func offset(_ t: Date, from start: Date) -> String {
        String(format: "+%.1fs", t.timeIntervalSince(start))
    }

    static func ago(_ t: Date, now: Date, suffix: String = " ago") -> String {
        let s = Int(now.timeIntervalSince(t))
        if s < 60 { return "\(s)s\(suffix)" }
        if s < 3600 { return "\(s / 60)m\(suffix)" }
        return "\(s / 3600)h\(s % 3600 / 60)m\(suffix)"
    }
}
