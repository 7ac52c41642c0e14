import ArgumentParser
import Bench
import Distributed
import Foundation
import Kernels
import Model
import Support
import Training

struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Time full training steps (paper size and small), by phase, against PyTorch when it is installed.",
        discussion: """
        For each size it runs, each under mpirun: 1 rank × 1 thread, 1 rank × 2 threads and 2 \
        ranks × 1 thread (the global batch split over the ranks), each in float32 and in bf16 \
        (precision: bf16), and 2 × 1 float32 again with blocking collectives (what the collective \
        watchdog costs). Each prints the median step time with its spread (min–max), trials/s, \
        GFLOP/s (matrix products only, counted analytically), the fraction of the GEMM peak of \
        its precision measured in the same run at the same core count (2048³ products through \
        the same entry point: oneDNN, or OpenBLAS without it), the time per phase and the peak \
        memory per rank. It says which implementation ran the products, and times a full \
        checkpoint write at paper size against an MC_Maze epoch.

        When `python3 -c "import torch"` works, Benchmarks/pytorch_reference.py runs the same \
        model (same shapes, one full step with Adam, torch.set_num_threads matched), in float32 \
        and with torch.autocast bfloat16, and the table shows the speed ratio against the same \
        precision. Nothing is asserted: the figures are for people to read.

        Examples:
          lflow-dist bench                         # paper and small, ~5 minutes
          lflow-dist bench --sizes small --steps 10 --json bench.json
          lflow-dist bench --smoke                 # seconds: checks that the benchmark runs (CI)
          mpirun -n 2 lflow-dist bench --allreduce --repeats 20 --json allreduce.json

        --allreduce times the communication of a step instead, in this process's own MPI job \
        (start it under mpirun, across hosts to measure a network): MPI's allreduce as the \
        trainer called it before the overlap ("trainer": Communicator.allreduceSum of a Float \
        buffer, with the collective watchdog), the same call blocking, and the gradient reduction \
        training uses now ("ordered": the rank-ordered sum, whole buffer, with the watchdog), of \
        the flat gradient buffer of each of --sizes (paper: 4,510,422 floats, small 437,094) \
        and of each --floats count, --warmup + --repeats times each after a barrier. Rank 0 \
        prints the median, min and max of the slowest rank and bytes/median, and writes them to \
        --json. Launch/netns-cluster.sh and bench/scaling-netns.sh use it over TCP between \
        network namespaces with the link limited by tc (docs/performance.md, "Past one node").
          mpirun -n 2 lflow-dist bench --allreduce --sizes small,paper --floats 1,65536 --repeats 20 --json ar.json

        --allreduce --check-buckets checks instead that the trainer's gradient reduction \
        (GradientReduction: every element summed in rank order) gives the same bits on a buffer \
        of --floats floats (the first count; 100,003 by default) reduced whole and cut into \
        buckets several ways, handed to its communication thread, and prints where MPI's own \
        allreduce differs from the rank-ordered sum. Status 1 when a bit differs.
          mpirun -n 4 lflow-dist bench --allreduce --check-buckets

        --batch B times each size at global batch B instead of its own (the step of one rank \
        of a larger job at per-rank batch B, when run on 1 rank).
        """)

    @Option(help: ArgumentHelp("Comma-separated sizes: paper (H=280, B=256, T=35+10, 137→182), small (H=64, B=64), main (the main job: the lorenz config, H=32, B=64, T=50+10, 22→29), smoke.", valueName: "list"))
    var sizes = "paper,small"

    @Option(help: "Timed steps per configuration (the median and the min–max spread are over these).")
    var steps = 5

    @Option(help: "Untimed steps before them.")
    var warmup = 1

    @Option(help: ArgumentHelp("Also write every figure as JSON to this file.", valueName: "file"))
    var json: String?

    @Flag(help: "A few seconds on a tiny model, without PyTorch: checks that the benchmark runs.")
    var smoke = false

    @Flag(help: "Do not run the PyTorch reference even if torch is installed.")
    var noPytorch = false

    @Option(help: ArgumentHelp("The PyTorch reference script.", valueName: "file"))
    var pytorchScript = "Benchmarks/pytorch_reference.py"

    @Flag(help: "Time the allreduce of each size's gradient buffer (and of --floats) on this MPI job instead of training steps; run under mpirun.")
    var allreduce = false

    @Option(help: ArgumentHelp("With --allreduce: also time these buffer lengths, comma-separated float counts.", valueName: "list"))
    var floats: String?

    @Option(help: "With --allreduce: timed repetitions per buffer and path (after --warmup untimed ones).")
    var repeats = 20

    @Option(help: ArgumentHelp("The global batch of every size instead of its own (paper 256, small 64).", valueName: "B"))
    var batch: Int?

    @Option(help: ArgumentHelp("Directory for the checkpoint-write measurement and scratch files.", valueName: "dir"))
    var scratch = NSTemporaryDirectory()

    // Internal: one measurement inside mpirun, written as JSON.
    @Option(help: .hidden) var workerSize: String?
    @Option(help: .hidden) var workerThreads = 1
    @Option(help: .hidden) var workerOut: String?
    @Option(help: .hidden) var workerWatchdog = RunOptions().collectiveTimeoutSeconds
    @Option(help: .hidden) var workerPrecision = Precision.float32.rawValue
    @Option(help: .hidden) var workerOverlap = RunOptions.Overlap.auto.rawValue

    @Flag(help: "With --allreduce: instead of timing, check that the trainer's gradient reduction gives the same bits whether the buffer is reduced whole or cut into buckets (several cuts, by the communication thread), and that it is the rank-ordered sum.")
    var checkBuckets = false

    func validate() throws {
        guard steps >= 1 else { throw ValidationError("--steps must be >= 1") }
        guard warmup >= 0 else { throw ValidationError("--warmup must be >= 0") }
        for name in sizes.split(separator: ",") where !BenchSize.all.contains(where: { $0.name == name }) {
            throw ValidationError("--sizes: unknown size '\(name)'; use paper, small, main or smoke")
        }
        guard repeats >= 1 else { throw ValidationError("--repeats must be >= 1") }
        if let batch, batch < 1 { throw ValidationError("--batch must be >= 1") }
        if let floats {
            for item in floats.split(separator: ",") where Int(item).map({ $0 < 1 }) ?? true {
                throw ValidationError("--floats: '\(item)' is not a positive count of floats")
            }
        }
    }

    /// The sizes asked for, at --batch when given.
    func sizeList() -> [BenchSize] {
        sizes.split(separator: ",").compactMap { name in BenchSize.all.first { $0.name == name } }.map { size in
            var size = size
            if let batch { size.batch = batch }
            return size
        }
    }

    func run() throws {
        if let workerSize, let workerOut { return try worker(sizeName: workerSize, out: workerOut) }
        if allreduce { return try allreduceBench() }
        try driver()
    }

    /// Inside mpirun: time the steps on MPI_COMM_WORLD, rank 0 writes the JSON.
    func worker(sizeName: String, out: String) throws {
        guard var size = BenchSize.all.first(where: { $0.name == sizeName }) else { throw ValidationError("unknown size \(sizeName)") }
        if let batch { size.batch = batch }
        try BenchDriver.worker(size: size, threads: workerThreads, watchdog: workerWatchdog,
                               precision: Precision(rawValue: workerPrecision) ?? .float32, steps: steps, warmup: warmup,
                               overlap: RunOptions.Overlap(rawValue: workerOverlap) ?? .auto, out: out)
    }

    func driver() throws {
        let driver = BenchDriver(sizes: smoke ? [BenchSize.smoke] : sizeList(), steps: smoke ? 2 : steps, warmup: smoke ? 1 : warmup, smoke: smoke,
                                 pytorchScript: noPytorch ? nil : pytorchScript, scratch: scratch, say: say)
        let report = try driver.run()
        if let json {
            try JSON.write(report, to: json)
            say("wrote \(json)")
        }
    }

    /// --allreduce, inside mpirun: every rank times, rank 0 prints and writes the JSON.
    func allreduceBench() throws {
        let world = try MPICommunicator.world()
        defer { MPICommunicator.finalize() }
        if checkBuckets {
            let lines = try Bench.checkBuckets(floats: Int((floats ?? "").split(separator: ",").first ?? "") ?? 100_003, comm: world)
            if world.isRoot { say(lines.report) }
            if !lines.ok { throw ExitCode(1) }
            return
        }
        var buffers = sizeList().map { (name: $0.name, floats: Bench.gradientFloats($0)) }
        buffers += (floats ?? "").split(separator: ",").compactMap { Int($0) }.map { (name: "floats", floats: $0) }
        let report = try Bench.allreduce(buffers: buffers, repeats: repeats, warmup: warmup, comm: world,
                                         watchdogSeconds: RunOptions().collectiveTimeoutSeconds)
        guard world.isRoot else { return }
        say(Bench.allreduceTable(report))
        if let json {
            try JSON.write(report, to: json)
            say("wrote \(json)")
        }
    }
}
