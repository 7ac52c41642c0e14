// swift-tools-version:6.0
import PackageDescription

// Cross-module optimisation lets the generic kernels (Float in training, Double in the
// gradient checks) specialise across module boundaries instead of running through witness
// tables in the hot loops.
let optimised: [SwiftSetting] = [
    .unsafeFlags(["-cross-module-optimization"], .when(configuration: .release)),
]

let package = Package(
    name: "lflow-dist",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "lflow-dist", targets: ["lflow-dist"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-numerics", from: "1.0.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "5.0.1"),
    ],
    targets: [
        // C libraries, found through pkg-config. Only the thin wrapper modules import them.
        .systemLibrary(name: "CBLAS", pkgConfig: "openblas", providers: [.apt(["libopenblas-dev"])]),
        .systemLibrary(name: "CMPI", pkgConfig: "ompi-c", providers: [.apt(["libopenmpi-dev"])]),
        .systemLibrary(name: "CHDF5", pkgConfig: "hdf5", providers: [.apt(["libhdf5-dev"])]),
        .systemLibrary(name: "CDNNL", providers: [.apt(["libdnnl-dev"])]),
        .target(name: "CShims", dependencies: ["CMPI", "CHDF5"]),
        // AVX512-BF16 conversion (with a portable fallback) and oneDNN's OpenMP thread count.
        .target(name: "CKernels", linkerSettings: [.linkedLibrary("gomp")]),

        // Flat buffers, the Float/Double scalar protocol, the GEMM entry point (oneDNN and
        // OpenBLAS), element-wise kernels, RNG.
        .target(name: "Kernels",
                dependencies: ["CBLAS", "CDNNL", "CKernels", .product(name: "RealModule", package: "swift-numerics")],
                swiftSettings: optimised),
        // Thin Swift wrapper over libhdf5: owned handles, typed dataset and attribute I/O.
        .target(name: "HDF5", dependencies: ["CHDF5", "CShims"], swiftSettings: optimised),
        // LangevinFlow: config, parameter layout, layers (forward above backward), loss, Adam.
        .target(name: "Model",
                dependencies: ["Kernels", .product(name: "RealModule", package: "swift-numerics")], swiftSettings: optimised),
        // NLB tensor files: reading and validation; the built-in Lorenz generator.
        .target(name: "Data", dependencies: ["HDF5", "Kernels"], swiftSettings: optimised),
        // NLB metrics: co-bps, fp-bps, vel R² (ridge + CV), PSTH R², R².
        .target(name: "Metrics", dependencies: ["Kernels"], swiftSettings: optimised),
        // Communicators: MPI (world size 1 without mpirun is the same path) and single-process.
        .target(name: "Distributed", dependencies: ["CMPI", "CShims"], swiftSettings: optimised),
        // HDF5 checkpoints in PyTorch state_dict names and shapes.
        .target(name: "Checkpoint", dependencies: ["HDF5", "Model"], swiftSettings: optimised),
        // Orchestration: config files, batches from data, inspect (later: trainer, search).
        .target(name: "Training",
                dependencies: ["Model", "Data", "Checkpoint", "Metrics", "Distributed", "Kernels", "Yams"],
                swiftSettings: optimised),
        // Self-contained HTML run report: inline SVG figures, no JavaScript.
        .target(name: "Report", swiftSettings: optimised),
        // The report of a run directory (and a search's overview page), from its files.
        .target(name: "RunReport", dependencies: ["Report", "Training", "Model", "Data", "HDF5", "Checkpoint", "Kernels"],
                swiftSettings: optimised),
        .executableTarget(
            name: "lflow-dist",
            dependencies: ["Training", "RunReport", "Model", "Data", "Checkpoint", "Distributed",
                           .product(name: "ArgumentParser", package: "swift-argument-parser")],
            swiftSettings: optimised),

        .testTarget(name: "KernelsTests", dependencies: ["Kernels", "CKernels"]),
        .testTarget(name: "ModelTests", dependencies: ["Model", "Kernels"]),
        .testTarget(name: "IOTests", dependencies: ["HDF5", "Data", "Checkpoint", "Model", "Training"]),
        .testTarget(name: "MetricsTests", dependencies: ["Metrics", "Training", "HDF5"], resources: [.copy("Fixtures")]),
        .testTarget(name: "CLITests", dependencies: ["lflow-dist", "HDF5"]),
        .testTarget(name: "ReportTests", dependencies: ["Report", "lflow-dist"]),
    ]
)
