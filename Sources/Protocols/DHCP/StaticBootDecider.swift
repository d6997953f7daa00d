/// The rule bootpolicy replaces dnsmasq with, as a decider: clients already running iPXE
/// (option 175) get the iPXE script, everything else the iPXE loader, from our own address.
/// Used when no policy is loaded, and by the dnsmasq parity test.
public struct StaticBootDecider: BootDecider {
    public var ipxeFile: String
    public var defaultFile: String
    /// Next server; nil means "the address the request arrived on".
    public var nextServer: String?

    public init(ipxeFile: String = "bootstrap.ipxe", defaultFile: String = "undionly.kpxe", nextServer: String? = nil) {
        self.ipxeFile = ipxeFile
        self.defaultFile = defaultFile
        self.nextServer = nextServer
    }

    public func decide(_ request: BootRequest) -> BootDecision? {
        BootDecision(
            filename: request.isIPXE ? ipxeFile : defaultFile,
            nextServer: nextServer ?? request.serverAddress,
            note: "static rule", policy: "static")
    }
}
