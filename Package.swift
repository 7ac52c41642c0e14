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

        // The dependency arrows run down this list: a module imports only modules above it.
        // Shared rules written once: the error type, the duration format, JSON settings, atomic writes.
        .target(name: "Support", swiftSettings: optimised),
        // The files of a run directory, named in one place, and the records every reader of a
        // run decodes (a metrics.jsonl line, validation.json).
        .target(name: "RunFiles", dependencies: ["Support"], swiftSettings: optimised),
        // Flat buffers, the Float/Double scalar protocol, the GEMM entry point (oneDNN and
        // OpenBLAS), element-wise kernels, RNG.
        .target(name: "Kernels",
                dependencies: ["CBLAS", "CDNNL", "CKernels", .product(name: "RealModule", package: "swift-numerics")],
                swiftSettings: optimised),
        // Thin Swift wrapper over libhdf5: owned handles, typed dataset and attribute I/O.
        .target(name: "HDF5", dependencies: ["CHDF5", "CShims"], swiftSettings: optimised),
        // LangevinFlow: config, parameter layout, layers (forward above backward), loss, Adam.
        .target(name: "Model",
                dependencies: ["Kernels", "Support", .product(name: "RealModule", package: "swift-numerics")], swiftSettings: optimised),
        // NLB tensor files: reading and validation; the built-in Lorenz generator.
        .target(name: "Data", dependencies: ["HDF5", "Kernels", "Support"], swiftSettings: optimised),
        // NLB metrics: co-bps, fp-bps, vel R² (ridge + CV), PSTH R², R², the ridge itself.
        .target(name: "Metrics", dependencies: ["Kernels"], swiftSettings: optimised),
        // Communicators (MPI, world size 1 without mpirun the same path), the watchdog, and
        // `Partition`, the one rule for splitting work over ranks.
        .target(name: "Distributed", dependencies: ["CMPI", "CShims", "Support"], swiftSettings: optimised),
        // HDF5 checkpoints in PyTorch state_dict names and shapes; a run's resumable checkpoint files.
        .target(name: "Checkpoint", dependencies: ["HDF5", "Model", "Kernels", "RunFiles", "Support"], swiftSettings: optimised),
        // A trained model applied to trials: batches and splits, rates, latent paths, init, inspect.
        .target(name: "Inference", dependencies: ["Model", "Data", "Checkpoint", "Distributed", "Kernels", "HDF5", "Support"],
                swiftSettings: optimised),
        // Scores against data: validation metrics, latent fits, the smoothed-spikes baseline,
        // the NLB submission and its scoring.
        .target(name: "Evaluation", dependencies: ["Inference", "Metrics", "Model", "Data", "Distributed", "Kernels", "HDF5", "RunFiles", "Support"],
                swiftSettings: optimised),
        // TensorBoard event files, written natively: scalars, session restarts, HParams summaries.
        .target(name: "TensorBoard", dependencies: ["Support"], swiftSettings: optimised),
        // The epoch loop: the step, schedules, budget, checkpoint cadence and resume, and one
        // complete run (train, predict, evaluate).
        .target(name: "Training",
                dependencies: ["Evaluation", "Inference", "TensorBoard", "Model", "Data", "Checkpoint", "Distributed", "Kernels", "HDF5", "RunFiles", "Support"],
                swiftSettings: optimised),
        // What a run starts from: config files (YAML, with profiles), the built-in configs and data.
        .target(name: "Recipes", dependencies: ["Training", "Model", "Data", "Support", "Yams"], swiftSettings: optimised),
        // Self-contained HTML and SVG: colours, ticks, axes, legends and the chart kinds; no JavaScript.
        .target(name: "Report", swiftSettings: optimised),
        // The report of a run directory, and a search's page, from their files.
        .target(name: "RunReport", dependencies: ["Report", "Evaluation", "Metrics", "Model", "Data", "HDF5", "Checkpoint", "Kernels", "RunFiles", "Support"],
                swiftSettings: optimised),
        // Searches over configs on MPI groups: one engine, the grid, ASHA and PBT strategies, job
        // records, results and the heatmap.
        .target(name: "Search", dependencies: ["Training", "RunReport", "Evaluation", "Inference", "Recipes", "TensorBoard", "Report", "Checkpoint", "Model", "Data", "Distributed", "Kernels", "RunFiles", "Support", "Yams"],
                swiftSettings: optimised),
        // `bench`: the trainer's step timed under mpirun, against PyTorch.
        .target(name: "Bench", dependencies: ["Training", "Inference", "Checkpoint", "Model", "Distributed", "Kernels", "Support", "Recipes"],
                swiftSettings: optimised),
        .executableTarget(
            name: "lflow-dist",
            dependencies: ["Training", "Search", "Bench", "RunReport", "Recipes", "Inference", "Evaluation", "Model", "Data",
                           "Checkpoint", "Distributed", "Kernels", "RunFiles", "Support",
                           .product(name: "ArgumentParser", package: "swift-argument-parser")],
            swiftSettings: optimised),

        .testTarget(name: "KernelsTests", dependencies: ["Kernels", "CKernels"]),
        .testTarget(name: "ModelTests", dependencies: ["Model", "Kernels"]),
        .testTarget(name: "IOTests", dependencies: ["HDF5", "Data", "Checkpoint", "Kernels", "Model", "Inference", "Evaluation", "Recipes", "Training", "Support"]),
        .testTarget(name: "MetricsTests", dependencies: ["Metrics", "Evaluation", "HDF5"], resources: [.copy("Fixtures")]),
        .testTarget(name: "TrainingTests", dependencies: ["Training", "Bench", "Inference", "Distributed", "Model", "Kernels", "RunFiles", "Support"]),
        .testTarget(name: "ScheduleTests", dependencies: ["Search", "RunFiles"]),
        .testTarget(name: "CLITests", dependencies: ["lflow-dist", "HDF5"]),
        .testTarget(name: "ReportTests", dependencies: ["Report", "lflow-dist"]),
    ]
)
