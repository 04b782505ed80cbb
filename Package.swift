// swift-tools-version: 6.0
import PackageDescription

// Module layout (see README "How it works"):
//   CLib*          system-library shims for libnl-route-3, libnftnl, libmnl (module map + shim.h only)
//   FlowctlCore    pure Swift: topology, intent, planner, diff, nft text; no C imports
//   FlowctlLinux   the only importer of the C modules; values in, values out
//   FlowctlTesting fakes of the two kernel edges
//   FlowctlCLI     argument-parser commands (a library, so tests can parse them)
//   flowctl        the executable, a few lines
let package = Package(
    name: "flowctl",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "flowctl", targets: ["flowctl"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift", from: "0.2.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.6.0"),
        .package(url: "https://github.com/LebJe/TOMLKit", from: "0.6.0"),
    ],
    targets: [
        .systemLibrary(
            name: "CLibNLRoute", pkgConfig: "libnl-route-3.0",
            providers: [.apt(["libnl-3-dev", "libnl-route-3-dev"])]),
        .systemLibrary(
            name: "CLibNftnl", pkgConfig: "libnftnl",
            providers: [.apt(["libnftnl-dev"])]),
        .systemLibrary(
            name: "CLibMnl", pkgConfig: "libmnl",
            providers: [.apt(["libmnl-dev"])]),
        .target(name: "FlowctlCore"),
        .target(
            name: "FlowctlLinux",
            dependencies: ["FlowctlCore", "CLibNLRoute", "CLibNftnl", "CLibMnl"]),
        // The one subprocess runner (Foundation's Process, output drained concurrently).
        .target(name: "FlowctlProcess"),
        .target(name: "FlowctlTesting", dependencies: ["FlowctlCore", "FlowctlProcess"]),
        // Traffic generators (UDP, TCP bulk, TCP connect rate, request/response
        // latency, pktgen driver); pure Swift over sockets, one process per namespace.
        // sendmmsg/recvmmsg for the UDP generator (GNU extensions Glibc does not import).
        .target(name: "CFlowctlNet"),
        .target(
            name: "FlowctlTraffic",
            dependencies: ["CFlowctlNet", "FlowctlProcess", .product(name: "Histogram", package: "hdrhistogram-swift")]),
        // Benchmark scenarios: TOML files -> topology, modes, traffic -> runs -> report.
        .target(
            name: "FlowctlBench",
            dependencies: [
                "FlowctlCore", "FlowctlProcess", "FlowctlTraffic",
                .product(name: "TOMLKit", package: "TOMLKit"),
            ]),
        // The long-running service: event loop over rtnetlink and nftables
        // notifications, control socket, metrics.
        .target(
            name: "FlowctlDaemon",
            dependencies: [
                "FlowctlCore", "FlowctlLinux", "FlowctlProcess", "CFlowctlNet",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "TOMLKit", package: "TOMLKit"),
                .product(name: "Histogram", package: "hdrhistogram-swift"),
            ]),
        .target(
            name: "FlowctlCLI",
            dependencies: [
                "FlowctlCore", "FlowctlLinux", "FlowctlTraffic", "FlowctlDaemon", "FlowctlBench", "FlowctlProcess",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]),
        .executableTarget(name: "flowctl", dependencies: ["FlowctlCLI"]),
        // Test-only: runs one kernel edge at a time inside a namespace (see its main.swift).
        // libFuzzer harnesses (scripts/fuzz builds them with -sanitize=fuzzer,address).
        .executableTarget(name: "flowctl-fuzz", dependencies: ["FlowctlCore", "FlowctlLinux", "FlowctlDaemon", "FlowctlBench"]),
        .executableTarget(name: "flowctl-kit", dependencies: ["FlowctlCore", "FlowctlLinux", "FlowctlTesting", "FlowctlDaemon"]),
        .testTarget(name: "FlowctlCoreTests", dependencies: ["FlowctlCore", "FlowctlTesting"]),
        .testTarget(name: "FlowctlLinuxTests", dependencies: ["FlowctlLinux", "FlowctlCore", "FlowctlTesting"], exclude: ["Fixtures"]),
        .testTarget(name: "FlowctlCLITests", dependencies: ["FlowctlCLI", "FlowctlCore", "FlowctlTesting"]),
        .testTarget(name: "FlowctlHostTests", dependencies: ["FlowctlCore", "FlowctlTesting"]),
        .testTarget(name: "FlowctlDaemonTests", dependencies: ["FlowctlDaemon", "FlowctlCore", "FlowctlTesting", "FlowctlProcess"]),
        .testTarget(
            name: "FlowctlBenchTests",
            dependencies: ["FlowctlBench", "FlowctlTraffic", "FlowctlProcess", .product(name: "Histogram", package: "hdrhistogram-swift")]),
        .testTarget(name: "FlowctlTrafficTests", dependencies: ["FlowctlTraffic"]),
        .testTarget(name: "FlowctlLabTests", dependencies: ["FlowctlCore", "FlowctlTesting"]),
    ]
)
