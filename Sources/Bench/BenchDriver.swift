import Distributed
import Foundation
import Kernels
import Model
import Support
import Training
#if canImport(Glibc)
import Glibc
#endif

public enum BenchFailure {}
public typealias BenchError = Failure<BenchFailure>

/// `lflow-dist bench`: runs the worker (`Bench.trainingSteps`) under mpirun for each ranks ×
/// threads × precision layout of each size, PyTorch's reference beside it when torch is
/// installed, the GEMM peaks and a checkpoint write, and tabulates them.
public struct BenchDriver {
    public let sizes: [BenchSize]
    public let steps: Int
    public let warmup: Int
    /// A few seconds on the smoke size (CI): smaller GEMM peaks, no PyTorch.
    public let smoke: Bool
    /// The PyTorch reference script; nil: no PyTorch comparison.
    public let pytorchScript: String?
    /// Directory for the checkpoint-write measurement and scratch files.
    public let scratch: String
    let say: (String) -> Void

    public init(sizes: [BenchSize], steps: Int, warmup: Int, smoke: Bool, pytorchScript: String?, scratch: String,
                say: @escaping (String) -> Void) {
        self.sizes = sizes
        self.steps = steps
        self.warmup = warmup
        self.smoke = smoke
        self.pytorchScript = pytorchScript
        self.scratch = scratch
        self.say = say
    }

    /// Inside mpirun: time the steps on MPI_COMM_WORLD; rank 0 writes the result as JSON to `out`.
    public static func worker(size: BenchSize, threads: Int, watchdog: Double, precision: Precision, steps: Int, warmup: Int,
                              overlap: RunOptions.Overlap = .auto, out: String) throws {
        let world = try MPICommunicator.world()
        defer { MPICommunicator.finalize() }
        world.deadline = CollectiveDeadline(seconds: watchdog)
        setBLASThreads(threads)
        var result = try Bench.trainingSteps(size: size, precision: precision, steps: steps, warmup: warmup, comm: world, overlap: overlap)
        result.threads = threads
        result.watchdog = watchdog > 0
        result.precision = precision.rawValue
        result.ranPrecision = precision == .bf16 && OneDNN.bf16Path == .emulated ? "bf16 (emulated)" : precision.rawValue
        result.gemmWorkspaceMiB = Double(OneDNN.workspaceBytes) / 1_048_576
        if world.isRoot {
            try JSON.write(result, to: out, pretty: false)
        }
    }

    public struct BenchReport: Codable {
        /// GFLOP/s of 2048³ products through Float.gemm, keyed "<precision>/<threads>", and of
        /// OpenBLAS's sgemm alone ("openblas/1").
        var gemmPeakGflops: [String: Double]
        /// What ran the products: oneDNN's implementation per precision.
        var gemmPaths: [String: String]
        var results: [BenchResult]
        /// PyTorch, keyed "<size>/<precision>/<threads>".
        var pytorch: [String: PyTorchResult]
        var checkpoint: CheckpointFigure?
        var machine: String
        /// `precision: auto` per size: the products of one rank's step timed in both precisions
        /// (`PrecisionProbe`, as a run does at its start), keyed by size; the faster is the choice.
        var precisionAuto: [String: PrecisionProbe.Timing] = [:]
    }

    public struct PyTorchResult: Codable {
        var torch_version: String
        var bf16: Bool?
        var threads: Int
        var median_s: Double
        var min_s: Double
        var max_s: Double
        var trials_per_s: Double
        var parameters: Int?
    }

    public struct CheckpointFigure: Codable {
        var seconds: Double
        var megabytes: Double
        var epochSeconds: Double
        var fraction: Double
    }

    /// Measures every configuration of every size (and PyTorch when it is there), prints the
    /// table and returns the figures.
    public func run() throws -> BenchReport {
        // Each ranks × threads layout in float32 and in bf16; the last row repeats 2 × 1
        // float32 with blocking collectives, to show what the collective watchdog costs.
        var configurations: [(ranks: Int, threads: Int, precision: Precision, watchdog: Bool)] = []
        for (ranks, threads) in [(1, 1), (1, 2), (2, 1)] {
            for precision in Precision.arithmetics { configurations.append((ranks, threads, precision, true)) }
        }
        configurations.append((2, 1, .float32, false))
        try FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true)

        let paths = Dictionary(uniqueKeysWithValues: Precision.arithmetics.map { ($0.rawValue, OneDNN.implementation(precision: $0)) })
        say("matrix products: float32 through \(OneDNN.available ? "oneDNN \(paths["float32"]!)" : "OpenBLAS"); bf16 through \(paths["bf16"]!)")
        if OneDNN.bf16Path == .emulated { say("note: bf16 is \(OneDNN.bf16Path.description): the bf16 rows time the emulation") }
        say("measuring the GEMM peaks (2048³, best of 4)…")
        var peaks: [String: Double] = [:]
        let n = smoke ? 256 : 2048
        for threads in [1, 2] {
            setBLASThreads(threads)
            for precision in Precision.arithmetics {
                peaks["\(precision.rawValue)/\(threads)"] = Bench.gemmPeak(n: n, precision: precision)
            }
            say(String(format: "  %d thread%@: float32 %.1f GFLOP/s, bf16 %.1f GFLOP/s", threads, threads == 1 ? "" : "s",
                       peaks["float32/\(threads)"]!, peaks["bf16/\(threads)"]!))
        }
        setBLASThreads(1)
        GEMMEngine.current = .openBLAS
        peaks["openblas/1"] = Bench.gemmPeak(n: n)
        GEMMEngine.current = .automatic
        say(String(format: "  OpenBLAS sgemm alone, 1 thread: %.1f GFLOP/s", peaks["openblas/1"]!))

        var results: [BenchResult] = []
        var torch: [String: PyTorchResult] = [:]
        var autoTimings: [String: PrecisionProbe.Timing] = [:]
        let torchAvailable = !smoke && pytorchScript != nil && pytorchAvailable()
        if !smoke && pytorchScript != nil && !torchAvailable {
            say("PyTorch is not importable by python3 (or \(pytorchScript!) is missing): no PyTorch comparison")
        }
        for size in sizes {
            say(String(format: "\n%@: H=%d, B=%d, T=%d+%d, %d→%d neurons, %.1f GFLOP per step (matrix products)",
                       size.name, size.hidden, size.batch, size.bins, size.forward, size.heldIn, size.heldIn + size.heldOut, size.flopsPerStep / 1e9))
            let probe = PrecisionProbe.measure(size.config().model.productShapes(dims: size.dims, batch: size.batch))
            autoTimings[size.name] = probe
            say("  precision auto chooses \(probe.faster.rawValue) at this size on 1 rank (\(probe.summary))")
            for c in configurations {
                say("  timing \(c.ranks) rank\(c.ranks == 1 ? "" : "s") × \(c.threads) thread\(c.threads == 1 ? "" : "s"), \(c.precision.rawValue)\(c.watchdog ? "" : ", no watchdog") (\(warmup) + \(steps) steps)…")
                results.append(try measure(size: size, ranks: c.ranks, threads: c.threads, precision: c.precision, watchdog: c.watchdog,
                                           steps: steps, warmup: warmup))
            }
            if torchAvailable {
                for threads in [1, 2] {
                    for bf16 in [false, true] {
                        say("  timing PyTorch, \(threads) thread\(threads == 1 ? "" : "s")\(bf16 ? ", autocast bf16" : "") (\(warmup) + \(steps) steps)…")
                        if let r = try runPyTorch(size: size, threads: threads, bf16: bf16, steps: steps, warmup: warmup) {
                            torch["\(size.name)/\(bf16 ? "bf16" : "float32")/\(threads)"] = r
                        }
                    }
                }
            }
        }

        var checkpoint: CheckpointFigure?
        if let paper = results.first(where: { $0.size == "paper" }) ?? results.first {
            let size = BenchSize.all.first { $0.name == paper.size }!
            let seconds = try Bench.checkpointSeconds(size: size, directory: scratch)
            // MC_Maze: 2295 training trials, 20% held for validation → 1836 per epoch, at the
            // fastest throughput measured (the most demanding comparison).
            let best = results.filter { $0.size == size.name }.map(\.trialsPerSecond).max() ?? paper.trialsPerSecond
            let epoch = 1836 / best
            checkpoint = CheckpointFigure(seconds: seconds, megabytes: Double(paper.parameters * 4 * 4) / 1e6, epochSeconds: epoch, fraction: seconds / epoch)
        }

        let report = BenchReport(gemmPeakGflops: peaks, gemmPaths: paths, results: results, pytorch: torch, checkpoint: checkpoint,
                            machine: machineDescription(), precisionAuto: autoTimings)
        say("\n" + table(report))
        return report
    }

    func measure(size: BenchSize, ranks: Int, threads: Int, precision: Precision, watchdog: Bool, steps: Int, warmup: Int) throws -> BenchResult {
        let out = scratch + "/bench-\(size.name)-\(ranks)x\(threads)-\(precision.rawValue)-\(getpid()).json"
        defer { try? FileManager.default.removeItem(atPath: out) }
        let exe = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().path
        var environment = ProcessInfo.processInfo.environment
        environment["OPENBLAS_NUM_THREADS"] = "\(threads)"
        environment["OMP_NUM_THREADS"] = "\(threads)"
        if geteuid() == 0 {
            environment["OMPI_ALLOW_RUN_AS_ROOT"] = "1"
            environment["OMPI_ALLOW_RUN_AS_ROOT_CONFIRM"] = "1"
        }
        let status = try runProcess("/usr/bin/env", ["mpirun", "--oversubscribe", "--bind-to", "none", "-x", "OPENBLAS_NUM_THREADS", "-n", "\(ranks)", exe, "bench",
                                                     "--worker-size", size.name, "--batch", "\(size.batch)", "--worker-threads", "\(threads)", "--worker-out", out,
                                                     "--worker-watchdog", watchdog ? "\(RunOptions().collectiveTimeoutSeconds)" : "0",
                                                     "--worker-precision", precision.rawValue,
                                                     "--steps", "\(steps)", "--warmup", "\(warmup)"], environment: environment)
        guard status == 0, let data = FileManager.default.contents(atPath: out) else {
            throw BenchError("the benchmark worker (mpirun -n \(ranks), \(threads) thread(s), \(size.name)) failed with status \(status); run it again with fewer --steps, or check that mpirun works (Launch/install-deps.sh)")
        }
        return try JSON.decoder().decode(BenchResult.self, from: data)
    }

    func pytorchAvailable() -> Bool {
        guard let pytorchScript else { return false }
        return FileManager.default.fileExists(atPath: pytorchScript)
            && (try? runProcess("/usr/bin/env", ["python3", "-c", "import torch"], quiet: true)) == 0
    }

    func runPyTorch(size: BenchSize, threads: Int, bf16: Bool, steps: Int, warmup: Int) throws -> PyTorchResult? {
        let out = scratch + "/pytorch-\(size.name)-\(threads)-\(bf16)-\(getpid()).json"
        defer { try? FileManager.default.removeItem(atPath: out) }
        guard let pytorchScript else { return nil }
        let status = try runProcess("/usr/bin/env", ["python3", pytorchScript, "--hidden", "\(size.hidden)", "--batch", "\(size.batch)",
                                                     "--bins", "\(size.bins)", "--forward", "\(size.forward)", "--held-in", "\(size.heldIn)",
                                                     "--held-out", "\(size.heldOut)", "--heads", "\(size.heads)", "--ff", "\(size.feedForward)",
                                                     "--threads", "\(threads)", "--steps", "\(steps)", "--warmup", "\(warmup)", "--json", out]
                                                     + (bf16 ? ["--bf16"] : []), quiet: true)
        guard status == 0, let data = FileManager.default.contents(atPath: out) else {
            say("  PyTorch reference failed (status \(status)); no ratio for \(size.name), \(threads) thread(s)\(bf16 ? ", bf16" : "")")
            return nil
        }
        return try JSON.decoder().decode(PyTorchResult.self, from: data)
    }

    @discardableResult
    func runProcess(_ path: String, _ arguments: [String], environment: [String: String]? = nil, quiet: Bool = false) throws -> Int32 {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = arguments
        if let environment { process.environment = environment }
        if quiet {
            process.standardOutput = FileHandle.nullDevice
            process.standardError = FileHandle.nullDevice
        }
        try process.run()
        process.waitUntilExit()
        return process.terminationStatus
    }

    func machineDescription() -> String {
        "\(PrecisionProbe.cpuModel), \(ProcessInfo.processInfo.activeProcessorCount) cores"
    }

    func table(_ report: BenchReport) -> String {
        var lines = ["machine: \(report.machine)",
                     "matrix products: float32 \(report.gemmPaths["float32"] ?? "?"), bf16 \(report.gemmPaths["bf16"] ?? "?")",
                     String(format: "GEMM peak (2048³): float32 %.1f GFLOP/s on 1 core, %.1f on 2; bf16 %.1f on 1, %.1f on 2; OpenBLAS sgemm %.1f on 1",
                            report.gemmPeakGflops["float32/1"] ?? 0, report.gemmPeakGflops["float32/2"] ?? 0,
                            report.gemmPeakGflops["bf16/1"] ?? 0, report.gemmPeakGflops["bf16/2"] ?? 0, report.gemmPeakGflops["openblas/1"] ?? 0), ""]
        lines.append("size   ranks×threads precision        median s/step  (min–max)          trials/s   GFLOP/s  of peak  allreduce  peak MiB/rank  vs PyTorch (same precision)")
        for r in report.results {
            let cores = min(r.ranks * r.threads, 2)
            let peak = report.gemmPeakGflops["\(r.precision)/\(cores)"] ?? 0
            var ratio = "–"
            let threads = r.ranks == 1 ? r.threads : 2
            if let t = report.pytorch["\(r.size)/\(r.precision)/\(threads)"] {
                ratio = String(format: "%.2f× (%.3f s%@)", r.trialsPerSecond / t.trials_per_s, t.median_s, r.ranks == 2 ? ", 2 threads" : "")
            }
            let label = (r.ranPrecision == "bf16 (emulated)" ? "bf16 emulated" : r.precision) + (r.watchdog ? "" : ", no wdog")
            lines.append(String(format: "%-6@ %d×%d           %-16@ %8.4f      (%.4f–%.4f)   %8.1f  %8.1f  %6.0f%%  %8.1f%%  %13.0f  %@",
                                r.size, r.ranks, r.threads, label, r.median, r.min, r.max, r.trialsPerSecond, r.gflops,
                                peak > 0 ? 100 * r.gflops / peak : 0, 100 * r.allreduceFraction, r.peakMemoryMiB, ratio))
        }
        for size in Set(report.results.map(\.size)).sorted() {
            let rows = report.results.filter { $0.size == size && $0.watchdog }
            func row(_ ranks: Int, _ threads: Int, _ precision: Precision) -> BenchResult? {
                rows.first { $0.ranks == ranks && $0.threads == threads && $0.precision == precision.rawValue }
            }
            if let one = row(1, 1, .float32), let two = row(2, 1, .float32) {
                lines.append(String(format: "%@: 2 ranks × 1 thread = %.2f× the throughput of 1 rank × 1 thread; allreduce %.1f%% of the step",
                                    size, two.trialsPerSecond / one.trialsPerSecond, 100 * two.allreduceFraction))
            }
            if let f32 = row(1, 1, .float32), let bf16 = row(1, 1, .bf16) {
                var line = String(format: "%@, 1 rank × 1 thread: bf16 is %.2f× float32", size, f32.median / bf16.median)
                if let t = report.pytorch["\(size)/bf16/1"] { line += String(format: "; %.2f× PyTorch autocast-bf16 (%.3f s)", t.median_s / bf16.median, t.median_s) }
                lines.append(line)
            }
            if let two = row(2, 1, .float32), let blocking = report.results.first(where: { $0.size == size && !$0.watchdog }) {
                let cost = (two.phases[PhaseClock.Phase.allreduce.name] ?? 0) + (two.phases[PhaseClock.Phase.rankWait.name] ?? 0)
                    - (blocking.phases[PhaseClock.Phase.allreduce.name] ?? 0) - (blocking.phases[PhaseClock.Phase.rankWait.name] ?? 0)
                lines.append(String(format: "%@: the collective watchdog costs %+.1f%% of the step (median step %.4f s vs %.4f s blocking; wait + allreduce %+.2f ms)",
                                    size, 100 * (two.median / blocking.median - 1), two.median, blocking.median, 1000 * cost))
            }
        }
        lines.append("")
        lines.append("time per step by phase, seconds (rank 0):")
        let phases = PhaseClock.Phase.allCases.map(\.name)
        func column(_ r: BenchResult) -> String { "\(r.size) \(r.ranks)×\(r.threads)\(r.precision == "bf16" ? " bf" : "")\(r.watchdog ? "" : " b")" }
        lines.append("  " + "phase".padding(toLength: 44, withPad: " ", startingAt: 0) + report.results.map { column($0).padding(toLength: 15, withPad: " ", startingAt: 0) }.joined())
        for phase in phases {
            lines.append("  " + phase.padding(toLength: 44, withPad: " ", startingAt: 0)
                         + report.results.map { String(format: "%-15.4f", $0.phases[phase] ?? 0) }.joined())
        }
        if let c = report.checkpoint {
            lines.append("")
            lines.append(String(format: "checkpoint write (%.0f MB: parameters, Adam moments, best weights; atomic): %.3f s = %.2f%% of an MC_Maze epoch (%.1f s at the fastest throughput above)",
                                c.megabytes, c.seconds, 100 * c.fraction, c.epochSeconds))
        }
        return lines.joined(separator: "\n")
    }
}
