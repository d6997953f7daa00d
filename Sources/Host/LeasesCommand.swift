import ArgumentParser
import Foundation
import Protocols

/// `bootpolicy leases`: a running server's full-DHCP leases through its control API (reads
/// need a read token where the server has tokens; `release` a write token), as `bootpolicy
/// state` reads and changes client state.
struct LeasesCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "leases",
        abstract: "List, show and release a running server's full-DHCP leases (its control API).",
        discussion: "The server is --server (or $BOOTPOLICY_SERVER, default http://127.0.0.1:8080); the token is read from --token-file (or $BOOTPOLICY_TOKEN_FILE), as for `bootpolicy state`. Exit status 1 when the server refuses, with its reason on stderr.",
        subcommands: [List.self, Show.self, Release.self]
    )

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print the ranges and their leases: a table, or with --json one JSON object a line.")
        @Flag(help: "Only leases in force now (bound or offered, not expired or released).") var active = false
        @Flag(help: "One JSON object a line: each range ({\"range\": ...}), then each lease.") var json = false
        @OptionGroup var connection: StateCommand.Connection

        func run() throws {
            let reply = try StateCommand.call(connection, .GET, "/leases" + (active ? "?active=true" : ""), command: "leases")
            guard reply["enabled"] as? Bool == true else {
                FileHandle.standardError.write(Data("bootpolicy leases: full DHCP is off on that server (serve --dhcp-range): no leases\n".utf8))
                return
            }
            let ranges = reply["ranges"] as? [[String: Any]] ?? []
            let leases = reply["leases"] as? [[String: Any]] ?? []
            if json {
                for r in ranges { print(StateCommand.line(["range": r])) }
                for l in leases { print(StateCommand.line(l)) }
                return
            }
            for r in ranges {
                print("range \(r["start"] ?? "?")-\(r["end"] ?? "?") (subnet \(r["subnet"] ?? "?"), lease \(r["lease_seconds"] ?? "?") s): \(r["active"] ?? 0) of \(r["size"] ?? 0) addresses in use")
            }
            print(Self.table(leases))
        }

        /// Address, MAC, state, expiry, hostname, client id: columns as wide as their widest.
        static func table(_ leases: [[String: Any]]) -> String {
            let header = ["ADDRESS", "MAC", "STATE", "ACTIVE", "EXPIRES", "HOSTNAME", "CLIENT-ID"]
            let rows = leases.map { l -> [String] in
                [l["address"], l["mac"], l["state"], (l["active"] as? Bool).map { $0 ? "yes" : "no" }, l["expires"], l["hostname"], l["client_id"]]
                    .map { v in (v as? String) ?? (v.map { "\($0)" } ?? "-") }
                    .map { $0 == "<null>" ? "-" : $0 }
            }
            let widths = header.indices.map { i in ([header] + rows).map { $0[i].count }.max() ?? 0 }
            return ([header] + rows).map { row in
                row.enumerated().map { i, cell in i == row.count - 1 ? cell : cell.padding(toLength: widths[i], withPad: " ", startingAt: 0) }
                    .joined(separator: "  ")
            }.joined(separator: "\n")
        }
    }

    struct Show: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print one address's lease record as JSON.")
        @Argument(help: "The leased IPv4 address.") var address: String
        @OptionGroup var connection: StateCommand.Connection

        func validate() throws {
            if IPv4Address(address) == nil { throw ValidationError("not an IPv4 address: '\(address)'") }
        }

        func run() throws {
            print(StateCommand.line(try StateCommand.call(connection, .GET, "/leases/\(address)", command: "leases")))
        }
    }

    struct Release: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Free an address now (a write token): its client must ask again; answered once durable.")
        @Argument(help: "The leased IPv4 address.") var address: String
        @OptionGroup var connection: StateCommand.Connection

        func validate() throws {
            if IPv4Address(address) == nil { throw ValidationError("not an IPv4 address: '\(address)'") }
        }

        func run() throws {
            _ = try StateCommand.call(connection, .DELETE, "/leases/\(address)", command: "leases")
            print("released \(address)")
        }
    }
}
