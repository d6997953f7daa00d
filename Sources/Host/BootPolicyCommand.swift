import ArgumentParser
import CLinux
import LuaBridge

@main
struct BootPolicyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bootpolicy",
        abstract: "A network-boot server (ProxyDHCP, TFTP, HTTP) whose every decision is a Lua policy.",
        discussion: "Start with `bootpolicy serve --interface eth1 --tftp-root /srv/tftp`: beside the site's DHCP server it answers PXE clients exactly as dnsmasq's ProxyDHCP boot rule does (policies/default.lua). Write your own rule as a Lua policy, prove it with `bootpolicy test`, serve it with `--policy my.lua`.",
        version: BootPolicyVersion.string,
        subcommands: [ServeCommand.self, CheckCommand.self, TestCommand.self, ExplainCommand.self, DiffCommand.self, WhyCommand.self,
                      RecordCommand.self, ImportCommand.self, StateCommand.self, LeasesCommand.self, VersionCommand.self]
    )
}

enum BootPolicyVersion {
    /// The release; scripts/package.sh names the package after it.
    static let number = "0.2.0"
    /// The commit stamped by scripts/package.sh, nil in a build made otherwise.
    static let commit: String? = {
        let stamp = String(cString: clinux_build_commit())
        return stamp.isEmpty ? nil : stamp
    }()
    /// `bootpolicy --version`: "0.2.0 (commit 1a2b3c4d5e6f)".
    static let string = number + " (" + (commit.map { "commit \($0)" } ?? "development build, commit not stamped") + ")"
}

struct VersionCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "version", abstract: "Print the version and the Lua it embeds.")
    func run() {
        print("bootpolicy \(BootPolicyVersion.string), Lua \(LuaInfo.versionNumber / 100).\(LuaInfo.versionNumber % 100)")
    }
}

