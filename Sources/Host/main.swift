import ArgumentParser
import LuaBridge

struct BootPolicy: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bootpolicy",
        abstract: "A network-boot server whose every decision is a Lua policy."
    )
    func run() throws { print("bootpolicy, Lua \(LuaInfo.versionNumber)") }
}
BootPolicy.main()
