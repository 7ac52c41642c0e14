import Checkpoint
import Distributed
import Foundation
import Inference
import Kernels
import Model
import Recipes
import Training
#if canImport(Glibc)
import Glibc
#endif

// Bench: `lflow-dist bench`: the trainer's own TrainingStep timed by phase under mpirun (the
// worker), the GEMM peaks, a checkpoint write, and the table against PyTorch (the driver). It
// measures; it asserts nothing.

/// A model and batch size to benchmark.
public struct BenchSize: Codable, Sendable {
    public var name: String
    public var hidden: Int
    public var batch: Int
    public var bins: Int
    public var forward: Int
    public var heldIn: Int
    public var heldOut: Int
    public var heads: Int
    public var feedForward: Int

    /// MC_Maze 20 ms with the released code's settings (spec "Dimensions").
    public static let paper = BenchSize(name: "paper", hidden: 280, batch: 256, bins: 35, forward: 10, heldIn: 137, heldOut: 45, heads: 2, feedForward: 512)
    public static let small = BenchSize(name: "small", hidden: 64, batch: 64, bins: 35, forward: 10, heldIn: 137, heldOut: 45, heads: 2, feedForward: 512)
    /// The main job: the built-in Lorenz data (50 + 10 bins, 22 → 29 neurons) with the built-in
    /// `lorenz` config (H=32, a per-step posterior, batch 64), where the step is small enough
    /// for everything but the products to show.
    public static let main = BenchSize(name: "main", hidden: 32, batch: 64, bins: 50, forward: 10, heldIn: 22, heldOut: 7, heads: 2, feedForward: 64)
    /// Seconds, for CI: only checks that the benchmark runs.
    public static let smoke = BenchSize(name: "smoke", hidden: 16, batch: 8, bins: 6, forward: 2, heldIn: 9, heldOut: 3, heads: 2, feedForward: 32)
    public static let all = [paper, small, main, smoke]

    public var dims: DataDims { DataDims(bins: bins, forwardBins: forward, heldIn: heldIn, heldOut: heldOut) }

    /// The spec's defaults with the released code's MC_Maze settings (lagged encoder input,
    /// all-pairs potential, dropout 0.1 everywhere, cdKeep 0.5), at this size; `main`: the
    /// built-in lorenz config.
    public func config(precision: Precision = .float32) -> Config {
        if name == "main", var c = try? BuiltIn.lorenzConfig(overrides: []) {
            c.model.precision = precision
            return c
        }
        var c = Config()
        c.model.precision = precision
        c.model.hidden = hidden
        c.model.heads = heads
        c.model.feedForward = feedForward
        c.train.batchSize = batch
        c.model.encoderInput = .lagged
        c.train.learningRate = 0.003
        c.train.weightDecay = 2e-5
        return c
    }

    /// Multiply-adds ×2 of every matrix product in one training step (forward and backward);
    /// element-wise work is not counted. The backward of a product costs twice its forward
    /// (input and weight gradients), except the encoder's input projection, whose input needs
    /// no gradient.
    public var flopsPerStep: Double {
        let b = Double(batch), s = Double(bins + forward), h = Double(hidden), d = 3 * h
        let nIn = Double(heldIn), nOut = Double(heldIn + heldOut), f = Double(feedForward)
        let rows = s * b
        let gruInput = 2 * rows * nIn * 3 * h * 2                     // forward + weight gradient
        let gruHidden = 2 * rows * h * 3 * h * 3
        let heads = 2 * b * h * h * 4 * 3
        let force = 2 * rows * h * h * 3
        let projections = 2 * rows * d * (3 * d + d + 2 * f) * 3       // in_proj, out_proj, linear1, linear2
        let attention = 2 * b * s * s * d * 2 * 3                       // QKᵀ and PV over all heads
        let readout = 2 * rows * d * nOut * 3
        return gruInput + gruHidden + heads + force + projections + attention + readout
    }
}

/// One configuration's measurement: `ranks` × `threads` on one size.
public struct BenchResult: Codable, Sendable {
    public var size: String
    public var ranks: Int
    public var threads: Int
    /// Wall seconds of each timed step (the slowest rank's).
    public var stepSeconds: [Double]
    public var median: Double
    public var min: Double
    public var max: Double
    public var trialsPerSecond: Double
    public var gflops: Double
    /// Mean seconds per step of each phase on rank 0, by phase name.
    public var phases: [String: Double]
    public var allreduceFraction: Double
    /// Peak resident memory of the largest rank, MiB.
    public var peakMemoryMiB: Double
    public var parameters: Int
    /// Whether the collectives ran under the watchdog (non-blocking, polled) or blocking.
    public var watchdog = true
    /// oneDNN's working memory (bf16 operand copies and scratchpad), MiB, on rank 0.
    public var gemmWorkspaceMiB = 0.0
    /// The precision asked for, and the one the large products ran in ("bf16 (emulated)" where
    /// the CPU has no AVX512-BF16).
    public var precision = Precision.float32.rawValue
    public var ranPrecision = Precision.float32.rawValue
    /// Whether the step's gradient reduction overlapped the backward (overlapAllreduce, resolved).
    public var overlapAllreduce = true
}

public enum Bench {
    static func now() -> Double {
        var t = timespec()
        clock_gettime(CLOCK_MONOTONIC, &t)
        return Double(t.tv_sec) + Double(t.tv_nsec) * 1e-9
    }

    public static func median(_ values: [Double]) -> Double {
        let s = values.sorted()
        return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
    }

    /// Peak resident set size of this process, MiB.
    public static func peakMemoryMiB() -> Double {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        return Double(usage.ru_maxrss) / 1024
    }

    /// Times full training steps, the trainer's own `TrainingStep`: zero the gradients, forward
    /// and backward on this rank's slice of the global batch, one allreduce, clip, Adam (with a
    /// barrier before the allreduce, so the wait for the slowest rank is timed apart).
    /// `overlap`: `overlapAllreduce` (on: no barrier before the reduction, whose buckets are in
    /// flight by then; the allreduce phase is the wait for the last of them, rank wait included).
    public static func trainingSteps(size: BenchSize, precision: Precision, steps: Int, warmup: Int, comm: Communicator,
                                     overlap: RunOptions.Overlap = .auto) throws -> BenchResult {
        var config = size.config(precision: precision)
        config.run.overlapAllreduce = overlap
        let dims = size.dims
        let global = Array(0..<size.batch)
        let local = comm.share(global)
        let model = LangevinFlow<Float>(config: config.model, dims: dims, maxBatch: max(local.count, 1))
        model.params.initialise(seed: 0)
        let step = try TrainingStep(model: model, config: config, comm: comm)
        step.beforeAllreduce = { try comm.barrier() }
        let batch = Batch<Float>(dims: dims, capacity: max(local.count, 1))
        batch.count = local.count
        // Poisson-like counts: per-neuron rates in [0.05, 1], modulated over time.
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15 &+ UInt64(comm.rank)
        for t in 0..<dims.steps {
            for j in 0..<local.count {
                for n in 0..<dims.outputs {
                    state = state &* 6364136223846793005 &+ 1442695040888963407
                    let u = Double(state >> 11) / Double(1 << 53)
                    let rate = (0.05 + 0.95 * Double(n % 17) / 16) * (1 + 0.5 * sin(Double(t) / 5))
                    batch.targets[(t * local.count + j) * dims.outputs + n] = Float(u < rate / (1 + rate) ? 1 : 0) + (u < rate * rate / 4 ? 1 : 0)
                }
            }
        }
        let norm = LossNormalisation(observedEntries: size.batch * dims.steps * dims.outputs, trials: size.batch)
        let clock = PhaseClock()
        model.clock = clock
        var times: [Double] = []
        for s in 0..<(warmup + steps) {
            if s == warmup { clock.reset() }
            try comm.barrier()
            let started = now()
            clock.start()
            let noise = NoiseContext(stochastic: true, seed: 0, epoch: 0, step: s, trialIndices: local)
            _ = try step.take(local.isEmpty ? nil : batch, noise: noise, klWeight: config.model.klWeight, normalisation: norm,
                              learningRate: config.train.learningRate, weightDecay: config.train.weightDecay, step: s)
            if s >= warmup { times.append(now() - started) }
        }
        // A step lasts as long as its slowest rank.
        try times.withUnsafeMutableBufferPointer { try comm.allreduceMax($0.baseAddress!, count: $0.count) }
        var memory = [peakMemoryMiB()]
        try memory.withUnsafeMutableBufferPointer { try comm.allreduceMax($0.baseAddress!, count: 1) }
        let med = median(times)
        var phases: [String: Double] = [:]
        for phase in PhaseClock.Phase.allCases { phases[phase.name] = clock.seconds[phase.rawValue] / Double(steps) }
        var result = BenchResult(size: size.name, ranks: comm.size, threads: 0, stepSeconds: times, median: med,
                                 min: times.min() ?? 0, max: times.max() ?? 0, trialsPerSecond: Double(size.batch) / med,
                                 gflops: size.flopsPerStep / med / 1e9, phases: phases,
                                 allreduceFraction: clock.seconds[PhaseClock.Phase.allreduce.rawValue] / Double(steps) / med,
                                 peakMemoryMiB: memory[0], parameters: model.params.layout.totalCount)
        result.overlapAllreduce = step.reduction.overlap
        return result
    }

    /// GFLOP/s of square n×n products through `Float.gemm` (the engine and precision training
    /// uses) with the current thread count: the best of `repeats` (the peak a step is compared with).
    public static func gemmPeak(n: Int = 2048, repeats: Int = 4, precision: Precision = .float32) -> Double {
        let a = Buffer<Float>(count: n * n), b = Buffer<Float>(count: n * n), c = Buffer<Float>(count: n * n)
        for i in 0..<(n * n) { a[i] = Float(i % 7) * 0.1; b[i] = Float(i % 5) * 0.1 }
        var best = 0.0
        for _ in 0..<repeats {
            let started = now()
            Float.gemm(transA: false, transB: false, m: n, n: n, k: n, alpha: 1, a: a.ptr, lda: n, b: b.ptr, ldb: n, beta: 0,
                       c: c.ptr, ldc: n, precision: precision)
            best = Swift.max(best, 2 * Double(n) * Double(n) * Double(n) / (now() - started) / 1e9)
        }
        return best
    }

    /// Seconds to write a full resumable checkpoint of `size` (parameters, both Adam moments
    /// and the best weights, as the trainer writes them), median of `repeats`.
    public static func checkpointSeconds(size: BenchSize, directory: String, repeats: Int = 3) throws -> Double {
        let config = size.config()
        let layout = ParameterLayout(config: config.model, dims: size.dims)
        let params = ParameterSet<Float>(layout: layout)
        params.initialise(seed: 0)
        let adam = Adam<Float>(count: layout.totalCount)
        var times: [Double] = []
        let path = directory + "/bench-checkpoint.h5"
        for _ in 0..<repeats {
            let started = now()
            try CheckpointIO.write(path: path, config: config.model, training: config.trainingJSON()) { file in
                try RunCheckpoints.writeTensors(to: file, layout: layout, parameters: params.values, adam: adam, best: params.values)
            }
            times.append(now() - started)
        }
        try? FileManager.default.removeItem(atPath: path)
        return median(times)
    }
}
