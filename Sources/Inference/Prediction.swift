import Checkpoint
import Data
import Distributed
import Foundation
import Kernels
import Model
import Support

// Inference: a model applied to trials: batches and validation splits, rates (prediction), latent
// paths, init and inspect, over any number of ranks with world-size-independent results. It may
// not train or score.

/// Rates from a model: log-rates averaged over stochastic passes, then exponentiated, for
/// many trials at once and over every rank of a communicator.
///
/// The trials are cut into chunks of `chunkSize` (fixed by the run's batch, not by the world size);
/// each rank predicts a contiguous share of the chunks and rank 0 gathers the rates. Noise is
/// keyed by (seed, sample, trial), so a trial's rates are the same whichever rank predicts
/// them, and the whole prediction is bitwise the same at any world size.
public enum Predictor {
    /// Trials per forward pass: at most 64 (small enough to share the work of a few thousand
    /// trials evenly over the ranks, large enough for efficient matrix products), and at most
    /// the training's batch size (`batchSize`, which the checkpoint's `training` attribute holds).
    public static func chunkSize(batchSize: Int) -> Int { min(batchSize, 64) }

    /// A model sized for `tensors` and `config`, with the weights of `checkpoint`, ready to
    /// predict in chunks of `chunk` trials (its `maxBatch`).
    public static func model(checkpoint: String, tensors: NLBTensors, config: ModelConfig, chunk: Int) throws -> LangevinFlow<Float> {
        let model = LangevinFlow<Float>(config: config, dims: DataDims(tensors), maxBatch: chunk)
        try CheckpointIO.read(path: checkpoint, into: model.params.values, layout: model.params.layout)
        return model
    }

    /// The noise keys of `trials` of `set`: eval trials draw from keys after the training
    /// trials', so no two trials share noise (predictions and latents use the same keys).
    public static func noiseKeys(_ trials: [Int], set: TrialSet, tensors: NLBTensors) -> [Int] {
        let offset = set == .eval ? tensors.trainCount : 0
        return trials.map { $0 + offset }
    }

    /// Reports progress on rank 0: its predicted and total trials.
    public typealias Progress = (_ done: Int, _ total: Int) -> Void

    /// The (trials, bins, neurons) block of trial-major (trials, steps, width) values.
    public static func slice(_ values: [Float], trials: Int, steps: Int, width: Int,
                             bins: Range<Int>, neurons: Range<Int>) -> [Float] {
        var out: [Float] = []
        out.reserveCapacity(trials * bins.count * neurons.count)
        for j in 0..<trials { for t in bins { for c in neurons { out.append(values[(j * steps + t) * width + c]) } } }
        return out
    }

    /// Runs `compute` on this rank's contiguous share of `trials`, cut into chunks of `chunk`
    /// (each call returns `width` values per trial of its chunk, trial-major), and gathers the
    /// values of every trial on rank 0, in trial order (nil on the other ranks). Collective.
    /// `progress` reports this rank's trials done and its share.
    public static func distributed(trials: [Int], chunk: Int, width: Int, comm: Communicator,
                                   progress: ((Int, Int) -> Void)? = nil, compute: ([Int]) -> [Float]) throws -> [Float]? {
        let chunks = stride(from: 0, to: trials.count, by: chunk).map { Array(trials[$0..<min($0 + chunk, trials.count)]) }
        // Each rank takes its contiguous share of the chunks, so rank order is trial order.
        let partition = Partition(count: chunks.count, parts: comm.size)
        func share(_ rank: Int) -> ArraySlice<[Int]> { chunks[partition.range(rank)] }
        let mine = share(comm.rank), myTrials = mine.reduce(0) { $0 + $1.count }
        var local: [Float] = []
        local.reserveCapacity(myTrials * width)
        for c in mine {
            local.append(contentsOf: compute(c))
            progress?(local.count / max(width, 1), myTrials)
        }
        let counts = (0..<comm.size).map { share($0).reduce(0) { $0 + $1.count } * width }
        var all: [Float]? = comm.isRoot ? [Float](repeating: 0, count: trials.count * width) : nil
        if local.isEmpty { local = [0] }           // a valid pointer; its count is 0
        try local.withUnsafeBufferPointer { send in
            if all != nil {
                try all!.withUnsafeMutableBufferPointer {
                    try comm.gather(send.baseAddress!, count: counts[comm.rank], counts: counts, into: $0.baseAddress, root: 0)
                }
            } else {
                try comm.gather(send.baseAddress!, count: counts[comm.rank], counts: counts, into: nil, root: 0)
            }
        }
        return all
    }

    /// Rates in expected spikes per bin for `trials` of one set, trial-major (n, T+F, Nout), on
    /// rank 0 (nil on the other ranks). Collective over `comm`. `samples` = 0: one deterministic
    /// mean-path pass. `chunk`: trials per forward pass (`chunkSize`), at most the model's
    /// `maxBatch`, which is the default.
    public static func rates(model: LangevinFlow<Float>, tensors: NLBTensors, trials: [Int], set: TrialSet,
                             samples: Int, seed: Int, chunk: Int? = nil, comm: Communicator, progress: Progress? = nil) throws -> [Float]? {
        let chunk = min(chunk ?? model.maxBatch, model.maxBatch)
        let batch = Batch<Float>(dims: model.dims, capacity: model.maxBatch)
        return try distributed(trials: trials, chunk: chunk, width: model.dims.steps * model.dims.outputs, comm: comm, progress: progress) {
            chunkRates(model: model, tensors: tensors, chunk: $0, batch: batch, set: set, samples: samples, seed: seed)
        }
    }

    /// The rates of one chunk of trials (at most the model's batch), trial-major.
    static func chunkRates(model: LangevinFlow<Float>, tensors: NLBTensors, chunk: [Int], batch: Batch<Float>, set: TrialSet,
                           samples: Int, seed: Int) -> [Float] {
        let steps = model.dims.steps, nOut = model.dims.outputs, b = chunk.count
        let keys = noiseKeys(chunk, set: set, tensors: tensors)
        batch.load(trials: chunk, split: set, from: tensors)
        var sum = [Double](repeating: 0, count: b * steps * nOut)
        let passes = max(samples, 1)
        for sample in 0..<passes {
            let noise = NoiseContext.predictionPass(sample, of: samples, seed: seed, trialIndices: keys)
            model.forward(batch, noise: noise, klWeight: 0)
            let l = model.logRates.ptr                                    // (steps, b, Nout)
            for t in 0..<steps {
                for j in 0..<b {
                    for n in 0..<nOut { sum[(j * steps + t) * nOut + n] += Double(l[(t * b + j) * nOut + n]) }
                }
            }
        }
        return sum.map { Float(exp($0 / Double(passes))) }
    }

    /// Rates of every training and every eval trial of `tensors` (rank 0; nil elsewhere), with
    /// a progress line and an ETA at most every `every` seconds on rank 0.
    public static func all(model: LangevinFlow<Float>, tensors: NLBTensors, samples: Int, seed: Int, chunk: Int? = nil, comm: Communicator,
                           log: @escaping (String) -> Void, every: TimeInterval = 10) throws -> (train: [Float], eval: [Float])? {
        let started = Date()
        var lastLine = started
        let totalTrials = tensors.trainCount + tensors.evalCount
        // Trials of the sets already done, and of the one in progress.
        var before = 0, current = tensors.trainCount
        let progress: Progress = { done, total in
            let now = Date()
            guard now.timeIntervalSince(lastLine) >= every, total > 0 else { return }
            lastLine = now
            // Every rank does about the same share, so rank 0's fraction is the job's.
            let fraction = (Double(before) + Double(done) / Double(total) * Double(current)) / Double(totalTrials)
            let elapsed = now.timeIntervalSince(started)
            log(String(format: "  predicting: %3.0f%% of %d trials × %d sample%@ on %d rank%@  ETA %@", 100 * fraction, totalTrials,
                       max(samples, 1), samples == 1 ? "" : "s", comm.size, comm.size == 1 ? "" : "s",
                       formatDuration(elapsed / max(fraction, 1e-9) * (1 - fraction))))
        }
        let train = try rates(model: model, tensors: tensors, trials: Array(0..<tensors.trainCount), set: .train,
                              samples: samples, seed: seed, chunk: chunk, comm: comm, progress: comm.isRoot ? progress : nil)
        before = tensors.trainCount
        current = tensors.evalCount
        let eval = tensors.evalCount > 0
            ? try rates(model: model, tensors: tensors, trials: Array(0..<tensors.evalCount), set: .eval,
                        samples: samples, seed: seed, chunk: chunk, comm: comm, progress: comm.isRoot ? progress : nil)
            : []
        guard let train, let eval else { return nil }
        return (train, eval)
    }

    /// The rates of an ensemble (rank 0; nil elsewhere): the mean of its models' expected spike
    /// counts, each model predicted with its own seed and samples, summed in the models' order
    /// (one model gives its own rates bitwise). `predict` with several checkpoints and `train`
    /// with `ensemble` > 1 both average through `RateSum`. Only the running sum is kept, not
    /// every model's rates.
    public static func ensemble(_ members: [(model: LangevinFlow<Float>, samples: Int, seed: Int, label: String)], tensors: NLBTensors,
                                comm: Communicator, log: @escaping (String) -> Void) throws -> (train: [Float], eval: [Float])? {
        var train = RateSum(), eval = RateSum()
        for m in members {
            log("\(m.label)predicting \(tensors.trainCount) train and \(tensors.evalCount) eval trials × \(max(m.samples, 1)) sample\(m.samples == 1 ? "" : "s") on \(comm.size) rank\(comm.size == 1 ? "" : "s")…")
            guard let rates = try all(model: m.model, tensors: tensors, samples: m.samples, seed: m.seed, comm: comm, log: log) else { continue }
            train.add(rates.train)
            eval.add(rates.eval)
        }
        guard let train = train.mean, let eval = eval.mean else { return nil }
        return (train, eval)
    }
}

/// The ensemble mean of rates: a sum in the order the models are added, then one division
/// (x / 1 is x, so one model gives its own rates bitwise). `Predictor.ensemble` and
/// `Submission.average` both average here, so they give the same numbers.
public struct RateSum {
    var sum: [Float]?
    var count = 0

    public init() {}

    public mutating func add(_ rates: [Float]) {
        sum = sum.map { zip($0, rates).map { $0 + $1 } } ?? rates
        count += 1
    }

    /// nil when nothing was added.
    public var mean: [Float]? {
        guard let sum else { return nil }
        let n = Float(count)
        return sum.map { $0 / n }
    }
}
