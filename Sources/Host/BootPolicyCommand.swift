import ArgumentParser
import LuaBridge

@main
struct BootPolicyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bootpolicy",
        abstract: "A network-boot server (ProxyDHCP, TFTP, HTTP) whose every decision is a Lua policy.",
        discussion: "Start with `bootpolicy serve --interface eth1 --tftp-root /srv/tftp`: beside the site's DHCP server it answers PXE clients exactly as dnsmasq's ProxyDHCP boot rule does (policies/default.lua). Write your own rule as a Lua policy, prove it with `bootpolicy test`, serve it with `--policy my.lua`.",
        version: BootPolicyVersion.string,
        subcommands: [ServeCommand.self, CheckCommand.self, TestCommand.self, ExplainCommand.self, DiffCommand.self, WhyCommand.self,
                      RecordCommand.self, ImportCommand.self, StateCommand.self, VersionCommand.self]
    )
}

enum BootPolicyVersion {
    static let string = "0.1.0"
}

struct VersionCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "version", abstract: "Print the version and the Lua it embeds.")
    func run() {
        print("bootpolicy \(BootPolicyVersion.string) (Lua \(LuaInfo.versionNumber / 100).\(LuaInfo.versionNumber % 100))")
    }
}

