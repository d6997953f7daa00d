// swift-tools-version:6.0
import PackageDescription

// Layers (see shared STYLE): Protocols holds the wire codecs and the servers and never sees Lua;
// Clients holds what is known about each client (the client directory, its durable store) and
// the one request pipeline every server and tool runs, without Lua; LuaBridge is the only module
// that imports the Lua C API; Host wires everything into the `bootpolicy` executable.
let package = Package(
    name: "bootpolicy",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "bootpolicy", targets: ["Host"]),
        .library(name: "Protocols", targets: ["Protocols"]),
        .library(name: "Clients", targets: ["Clients"]),
        .library(name: "LuaBridge", targets: ["LuaBridge"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/jpsim/Yams.git", from: "5.0.1"),
        .package(url: "https://github.com/groue/GRDB.swift.git", from: "7.10.0"),
        .package(url: "https://github.com/vapor/postgres-nio.git", from: "1.33.2"),
        // Already in the graph through postgres-nio; HMAC for the per-client script tokens.
        .package(url: "https://github.com/apple/swift-crypto.git", "3.12.3"..<"5.0.0"),
        // Already in the graph through postgres-nio; TLS on the HTTP server (http.tls).
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
    ],
    targets: [
        // Debian's liblua5.4-dev, found through pkg-config.
        .systemLibrary(
            name: "CLua",
            pkgConfig: "lua5.4",
            providers: [.apt(["liblua5.4-dev"])]
        ),
        // Lua's API is half macros; this shim gives Swift callable functions and keeps every
        // call that may longjmp (lua_error, luaL_check*) on the C side.
        .target(name: "CLuaShim", dependencies: ["CLua"]),
        // epoll and friends for the TFTP transfer threads (Glibc's Swift module lacks them).
        .target(name: "CLinux"),
        .target(
            name: "Protocols",
            dependencies: [
                "CLinux",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOTLS", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Crypto", package: "swift-crypto"),
            ]
        ),
        .target(
            name: "Clients",
            dependencies: [
                "Protocols", "CLinux",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
            ]
        ),
        .target(
            name: "LuaBridge",
            dependencies: [
                "CLua", "CLuaShim", "Protocols", "Clients",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                // The data files policies read (PolicyData.swift): YAML with positions.
                .product(name: "Yams", package: "Yams"),
            ]
        ),
        .executableTarget(
            name: "Host",
            dependencies: [
                "Protocols", "Clients", "LuaBridge", "CLinux",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Yams", package: "Yams"),
            ]
        ),
        // Helpers the test targets share: tools run with a bound, the test PostgreSQL.
        .target(name: "TestSupport", dependencies: ["CLinux"], path: "Tests/TestSupport"),
        .testTarget(
            name: "ProtocolsTests",
            dependencies: [
                // Clients and LuaBridge only for the dnsmasq parity test, which answers through
                // the real pipeline and the shipped default policy.
                // TestSupport for `.requires` (tools, root, data a test needs from the machine).
                "Protocols", "CLinux", "Clients", "LuaBridge", "TestSupport",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
            ],
            resources: [.copy("Fixtures")]
        ),
        .testTarget(
            name: "ClientsTests",
            dependencies: [
                "Clients", "Protocols", "TestSupport",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "GRDB", package: "GRDB.swift"),
            ]
        ),
        .testTarget(
            name: "LuaBridgeTests",
            // CLuaShim for the pattern matcher's differential test (bp_pattern_diff).
            // TestSupport for `.requires` and bounded tool runs (grub-script-check, sh).
            dependencies: ["LuaBridge", "CLuaShim", "Clients", "Protocols", "TestSupport"],
            resources: [.copy("Policies")]
        ),
        .testTarget(
            name: "HostTests",
            dependencies: [
                "Host", "Protocols", "Clients", "LuaBridge", "TestSupport",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ]
        ),
    ] + fuzzTargets,
    swiftLanguageModes: [.v5]
)

// libFuzzer targets (docs/fuzzing.md, scripts/fuzz.sh). Each is an executable whose
// `LLVMFuzzerTestOneInput` runs one input. In a normal build (`swift build`, `swift test`) its
// main replays the files named on the command line through that function: the crash reproducer,
// built and type-checked with everything else. Built by scripts/fuzz.sh with `-D FUZZING` and
// `--sanitize=fuzzer --sanitize=address`, it has no main of its own and libFuzzer's drives it.
// FuzzSeeds writes the seed corpora from the fixtures at run time.
var fuzzTargets: [Target] {
    let nio: [Target.Dependency] = [.product(name: "NIOCore", package: "swift-nio")]
    return [
        .target(name: "FuzzSupport", path: "Tests/Fuzz/Support"),
        .executableTarget(name: "DHCPFuzz", dependencies: ["FuzzSupport", "Protocols"] + nio, path: "Tests/Fuzz/DHCPFuzz"),
        .executableTarget(name: "DHCPv6Fuzz", dependencies: ["FuzzSupport", "Protocols"], path: "Tests/Fuzz/DHCPv6Fuzz"),
        .executableTarget(name: "TFTPFuzz", dependencies: ["FuzzSupport", "Protocols"] + nio, path: "Tests/Fuzz/TFTPFuzz"),
        .executableTarget(
            name: "HTTPFuzz",
            dependencies: ["FuzzSupport", "Protocols", .product(name: "NIOHTTP1", package: "swift-nio"),
                           .product(name: "NIOEmbedded", package: "swift-nio"),
                           .product(name: "Logging", package: "swift-log")] + nio,
            path: "Tests/Fuzz/HTTPFuzz"),
        .executableTarget(
            name: "PolicyFuzz",
            dependencies: ["FuzzSupport", "Protocols", "Clients", "LuaBridge",
                           .product(name: "Logging", package: "swift-log")] + nio,
            path: "Tests/Fuzz/PolicyFuzz"),
        .executableTarget(name: "PcapFuzz", dependencies: ["FuzzSupport", "Protocols"], path: "Tests/Fuzz/PcapFuzz"),
        // The config loader lives in the Host executable, which nothing can import; the target
        // compiles the same file (Configuration.swift is a symlink to Sources/Host's).
        .executableTarget(
            name: "ConfigFuzz", dependencies: ["FuzzSupport", .product(name: "Yams", package: "Yams")],
            path: "Tests/Fuzz/ConfigFuzz"),
        .executableTarget(name: "FuzzSeeds", dependencies: ["Protocols"], path: "Tests/Fuzz/FuzzSeeds"),
    ]
}
