import ArgumentParser
import Foundation
import NIOHTTP1
import Protocols

/// `bootpolicy state`: reads and changes a running server's client state through its control
/// API, so that an installer's last step can be one command:
/// `bootpolicy state set 52:54:00:12:34:56 installed=true --server http://boot:8080 --token-file /etc/bootpolicy/token`
struct StateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "state",
        abstract: "Read and change a running server's per-client state (its control API).",
        discussion: "The server is --server (or $BOOTPOLICY_SERVER, default http://127.0.0.1:8080); the token is read from --token-file (or $BOOTPOLICY_TOKEN_FILE): a file holding the token, or a line `<scope> <token>` of the server's own tokens file. Exit status 1 when the server refuses, with its reason on stderr.",
        subcommands: [Get.self, Set.self, Clear.self, List.self]
    )

    struct Connection: ParsableArguments {
        @Option(help: ArgumentHelp("The server's HTTP address (default $BOOTPOLICY_SERVER or http://127.0.0.1:8080).", valueName: "url"))
        var server: String?

        @Option(help: ArgumentHelp("A file holding the API token (default $BOOTPOLICY_TOKEN_FILE).", valueName: "file"))
        var tokenFile: String?

        func client() throws -> APIClient {
            let env = ProcessInfo.processInfo.environment
            let server = self.server ?? env["BOOTPOLICY_SERVER"] ?? "http://127.0.0.1:8080"
            var token: String?
            if let file = tokenFile ?? env["BOOTPOLICY_TOKEN_FILE"] {
                token = try Self.token(inFile: file)
            }
            do {
                return try APIClient(server: server, token: token)
            } catch {
                throw ExitMessage("bootpolicy state: \(error)")
            }
        }

        /// The first line that is not blank or a comment: the token alone, or `<scope> <token> ...`.
        static func token(inFile path: String) throws -> String {
            guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
                throw ExitMessage("bootpolicy state: --token-file \(path): cannot read it")
            }
            for raw in text.split(separator: "\n") {
                let line = raw.trimmingCharacters(in: .whitespaces)
                if line.isEmpty || line.hasPrefix("#") { continue }
                let fields = line.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
                if fields.count >= 2, ["read", "write"].contains(fields[0]) { return fields[1] }
                return fields[0]
            }
            throw ExitMessage("bootpolicy state: --token-file \(path): holds no token")
        }
    }

    /// Sends a request; a refusal becomes exit status 1 with the server's one-line reason.
    /// `command` names who speaks in an error (`bootpolicy leases: 404: ...`).
    static func call(_ connection: Connection, _ method: HTTPMethod, _ path: String, body: String? = nil,
                     command: String = "state") throws -> [String: Any] {
        try call(connection, method, path, body: body, accepting: [], command: command).object
    }

    /// As `call`, but the statuses in `accepting` are answers too, not refusals.
    static func call(_ connection: Connection, _ method: HTTPMethod, _ path: String, body: String? = nil,
                     accepting: Swift.Set<Int>, command: String = "state") throws -> (status: Int, object: [String: Any]) {
        let response: APIClient.Response
        do {
            response = try connection.client().send(method, "/api/v1" + path, body: body)
        } catch let error as ExitMessage {
            throw error
        } catch {
            throw ExitMessage("bootpolicy \(command): \(error)")
        }
        let object = (try? JSONSerialization.jsonObject(with: Data(response.body.utf8))) as? [String: Any]
        if accepting.contains(response.status) { return (response.status, object ?? [:]) }
        guard (200..<300).contains(response.status) else {
            let why = object?["error"] as? String ?? response.body.trimmingCharacters(in: .whitespacesAndNewlines)
            throw ExitMessage("bootpolicy \(command): \(response.status): \(why)")
        }
        guard let object else { throw ExitMessage("bootpolicy \(command): the server's answer is not a JSON object: \(response.body.prefix(200))") }
        return (response.status, object)
    }

    static func path(mac: String) throws -> String {
        guard let normal = MACAddress.normalize(mac) else { throw ValidationError("not a MAC address: '\(mac)'") }
        return "/clients/\(normal)/state"
    }

    static func line(_ object: Any) -> String {
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .fragmentsAllowed])) ?? Data()
        return String(decoding: data, as: UTF8.self)
    }

    struct Get: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print a client's state as JSON, or one key's value.")
        @Argument(help: "The client's MAC address.") var mac: String
        @Argument(help: "Print only this key's value (exit 1 when it is not set).") var key: String?
        @OptionGroup var connection: Connection

        func run() throws {
            let reply = try StateCommand.call(connection, .GET, StateCommand.path(mac: mac))
            let state = reply["state"] as? [String: Any] ?? [:]
            guard let key else {
                print(StateCommand.line(state))
                return
            }
            guard let value = state[key] else { throw ExitMessage("bootpolicy state: \(mac) has no key '\(key)'") }
            print(value as? String ?? StateCommand.line(value))
        }
    }

    struct Set: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Set keys of a client's state: KEY=VALUE ...",
            discussion: "A VALUE of true or false is a boolean, one that reads as a number is a number, anything else a string; give a JSON string to keep digits as text: serial='\"007\"'. The other keys stay unless --replace.")
        @Argument(help: "The client's MAC address.") var mac: String
        @Argument(help: "KEY=VALUE pairs.") var pairs: [String]
        @Flag(help: "Replace the whole state with these keys.") var replace = false
        @Option(help: ArgumentHelp("Seconds the state lives (default: the server's state.ttl for a new client; an existing one keeps its expiry).", valueName: "seconds"))
        var ttl: Double?
        @OptionGroup var connection: Connection

        func validate() throws {
            guard !pairs.isEmpty else { throw ValidationError("give at least one KEY=VALUE") }
            for pair in pairs where !pair.contains("=") || pair.hasPrefix("=") {
                throw ValidationError("'\(pair)' is not KEY=VALUE")
            }
            if let ttl, !(ttl > 0) { throw ValidationError("--ttl must be a positive number of seconds") }
        }

        func run() throws {
            var body = "{"
            for (i, pair) in pairs.enumerated() {
                let kv = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
                if i > 0 { body += "," }
                JSONString.append(String(kv[0]), to: &body)
                body += ":" + Set.json(String(kv[1]))
            }
            body += "}"
            let query = ttl.map { "?ttl=\($0)" } ?? ""
            let reply = try StateCommand.call(connection, replace ? .PUT : .PATCH, StateCommand.path(mac: mac) + query, body: body)
            print(StateCommand.line(reply["state"] ?? [:]))
        }

        /// A command-line value as JSON: booleans and numbers as such, a JSON string as given,
        /// anything else quoted.
        static func json(_ text: String) -> String {
            if text == "true" || text == "false" { return text }
            if Int(text) != nil { return text }
            if let d = Double(text), d.isFinite, text.first.map({ $0.isNumber || $0 == "-" }) == true { return text }
            if text.count >= 2, text.hasPrefix("\""), text.hasSuffix("\""),
               (try? JSONSerialization.jsonObject(with: Data(text.utf8), options: .fragmentsAllowed)) is String {
                return text
            }
            return JSONString.quote(text)
        }
    }

    struct Clear: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Forget a client's state, or only some keys of it.")
        @Argument(help: "The client's MAC address.") var mac: String
        @Argument(help: "Remove only these keys.") var keys: [String] = []
        @OptionGroup var connection: Connection

        func run() throws {
            if keys.isEmpty {
                let reply = try StateCommand.call(connection, .DELETE, StateCommand.path(mac: mac))
                print(reply["cleared"] as? Bool == true ? "cleared" : "had no state")
                return
            }
            let body = "{" + keys.map { JSONString.quote($0) + ":null" }.joined(separator: ",") + "}"
            let reply = try StateCommand.call(connection, .PATCH, StateCommand.path(mac: mac), body: body, accepting: [404])
            print(reply.status == 404 ? "had no state" : StateCommand.line(reply.object["state"] ?? [:]))
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print every client with state, one JSON object a line (mac, state, expires).")
        @Option(help: "Only clients whose state has this key.") var key: String?
        @Option(help: "With --key: only clients whose value of it is this.") var value: String?
        @Option(help: "At most this many clients (default: all, fetched a page at a time).") var limit: Int?
        @OptionGroup var connection: Connection

        func validate() throws {
            if value != nil && key == nil { throw ValidationError("--value needs --key") }
            if let limit, limit < 1 { throw ValidationError("--limit must be at least 1") }
        }

        func run() throws {
            var after: String?
            var printed = 0
            // Bounded: one page per 1,000 clients, and a server never sends the same `next` twice.
            for _ in 0..<10_000 {
                var query = ["limit=\(min(1000, limit.map { $0 - printed } ?? 1000))"]
                if let key { query.append("key=" + List.escape(key)) }
                if let value { query.append("value=" + List.escape(value)) }
                if let after { query.append("after=" + after) }
                let reply = try StateCommand.call(connection, .GET, "/clients?" + query.joined(separator: "&"))
                for client in reply["clients"] as? [Any] ?? [] {
                    print(StateCommand.line(client))
                    printed += 1
                }
                guard let next = reply["next"] as? String, next != after, limit.map({ printed < $0 }) ?? true else { return }
                after = next
            }
        }

        static func escape(_ s: String) -> String {
            s.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? s
        }
    }
}
