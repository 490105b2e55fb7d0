// swift-tools-version:6.2
import PackageDescription

// Bramble: a pure core (BrambleCore: wire codec, envelope crypto, delivery and relay
// bookkeeping, no sockets, no database) with thin shells around it (relay, server,
// device), and four thin executables that only parse arguments and wire things up.
let package = Package(
    name: "bramble",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "bramble-server", targets: ["bramble-server"]),
        .executable(name: "bramble-relay", targets: ["bramble-relay"]),
        .executable(name: "bramble", targets: ["bramble"]),
        .executable(name: "bramble-device", targets: ["bramble-device"]),
        .executable(name: "bramble-bench", targets: ["bramble-bench"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.3"),
        .package(url: "https://github.com/apple/swift-crypto.git", from: "3.12.3"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
        .package(url: "https://github.com/adam-fowler/compress-nio.git", from: "1.5.0"),
        .package(url: "https://github.com/vapor/postgres-nio.git", from: "1.33.2"),
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1"),
        .package(url: "https://github.com/swift-server/async-http-client.git", from: "1.37.0"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift.git", from: "0.2.0"),
        .package(url: "https://github.com/apple/swift-http-types.git", from: "1.8.0"),
        .package(url: "https://github.com/apple/swift-configuration", from: "1.4.0", traits: ["Logging"]),
    ],
    targets: [
        // Pure core: no sockets, no database, no clocks of its own.
        .target(
            name: "BrambleCore",
            dependencies: [
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOFoundationCompat", package: "swift-nio"),
                .product(name: "Crypto", package: "swift-crypto"),
                // scrypt, for the activation password's verifier.
                .product(name: "_CryptoExtras", package: "swift-crypto"),
                .product(name: "CompressNIO", package: "compress-nio"),
            ]
        ),
        // The HTTP API's one definition: paths, request and answer bodies, error codes.
        // The server encodes them, the CLI, the benches and the tests decode them.
        .target(
            name: "BrambleAPI",
            dependencies: ["BrambleCore"]
        ),
        // Shared shell pieces: framing handlers, logging setup, HTTP client for the CLIs,
        // the daemons' settings (swift-configuration providers for the file and secrets).
        .target(
            name: "BrambleNet",
            dependencies: [
                "BrambleCore", "BrambleAPI",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOFoundationCompat", package: "swift-nio"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Configuration", package: "swift-configuration"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ]
        ),
        .target(
            name: "BrambleRelay",
            dependencies: [
                "BrambleCore", "BrambleNet", "BrambleAPI",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "HummingbirdTLS", package: "hummingbird"),
            ]
        ),
        .target(
            name: "BrambleServer",
            dependencies: [
                "BrambleCore", "BrambleNet", "BrambleAPI",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "HummingbirdTLS", package: "hummingbird"),
            ]
        ),
        .target(
            name: "BrambleDevice",
            dependencies: [
                "BrambleCore", "BrambleNet",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .executableTarget(
            name: "bramble-server",
            dependencies: [
                "BrambleServer", "BrambleNet",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        .executableTarget(
            name: "bramble-relay",
            dependencies: [
                "BrambleRelay", "BrambleNet",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        .executableTarget(
            name: "bramble",
            dependencies: [
                "BrambleCore", "BrambleNet", "BrambleAPI",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
            ]
        ),
        .executableTarget(
            name: "bramble-device",
            dependencies: [
                "BrambleDevice", "BrambleNet",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .executableTarget(
            name: "bramble-bench",
            dependencies: [
                "BrambleCore", "BrambleDevice", "BrambleNet", "BrambleAPI",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "CompressNIO", package: "compress-nio"),
                .product(name: "Histogram", package: "hdrhistogram-swift"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // libFuzzer targets for every decoder of bytes from the network or a file (frames,
        // envelope, payloads, IMAP, MIME, settings, SMTP, NOTIFY, XMPP and SCRAM), chosen by
        // BRAMBLE_FUZZ_TARGET; built only by `make fuzz` / `make fuzz-short` with
        // -sanitize=fuzzer,address (see Makefile). Pure core only, so the build stays small.
        .executableTarget(
            name: "bramble-fuzz",
            dependencies: [
                "BrambleCore",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Crypto", package: "swift-crypto"),
            ]
        ),
        .testTarget(
            name: "BrambleCoreTests",
            dependencies: ["BrambleCore"]
        ),
        // Starts real clusters (PostgreSQL, relay, nodes, devices) for the two suites below.
        .target(
            name: "BrambleTestSupport",
            dependencies: [
                "BrambleCore", "BrambleNet", "BrambleAPI", "BrambleDevice",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
            ],
            path: "Tests/BrambleTestSupport"
        ),
        .testTarget(
            name: "BrambleIntegrationTests",
            dependencies: [
                "BrambleCore", "BrambleNet", "BrambleAPI", "BrambleDevice", "BrambleServer", "BrambleTestSupport",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
            ]
        ),
        // The node's components in process: the HA manager, the Router and the Dispatcher
        // over an in-memory pair store, a scripted relay and a clock the test advances.
        .testTarget(
            name: "BrambleServerTests",
            dependencies: [
                "BrambleCore", "BrambleNet", "BrambleAPI", "BrambleServer",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "MetricsTestKit", package: "swift-metrics"),
                .product(name: "Crypto", package: "swift-crypto"),
            ]
        ),
        // The HA pair on real processes: kill, pause, cut and switch over the primary.
        .testTarget(
            name: "BrambleClusterTests",
            dependencies: [
                "BrambleCore", "BrambleNet", "BrambleAPI", "BrambleTestSupport",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
            ]
        ),
    ]
)
