import Kernels

/// Where the random draws of one forward pass come from.
///
/// Every draw is keyed by (seed, purpose, epoch, step, global trial index, element), never by
/// rank or by position in the local batch, so a trial sees the same noise at any world size.
public struct NoiseContext: Sendable {
    /// Draw the posterior samples and the Langevin noise (false: the mean path).
    public var sampling: Bool
    /// Apply dropout and coordinated dropout (training only).
    public var dropout: Bool
    public var seed: Int
    public var epoch: Int
    public var step: Int
    /// Global index of each row of the local batch (count = local batch size).
    public var trialIndices: [Int]

    /// `stochastic` turns on both sampling and dropout (training); false is deterministic mode.
    public init(stochastic: Bool, seed: Int = 0, epoch: Int = 0, step: Int = 0, trialIndices: [Int]) {
        self.sampling = stochastic
        self.dropout = stochastic
        self.seed = seed
        self.epoch = epoch
        self.step = step
        self.trialIndices = trialIndices
    }

    public static func deterministic(batch: Int) -> NoiseContext {
        NoiseContext(stochastic: false, trialIndices: Array(0..<batch))
    }

    /// A stochastic prediction pass: posterior and Langevin samples, no dropout.
    public static func prediction(seed: Int, sample: Int, trialIndices: [Int]) -> NoiseContext {
        var noise = NoiseContext(stochastic: true, seed: seed, epoch: predictionEpoch, step: sample, trialIndices: trialIndices)
        noise.dropout = false
        return noise
    }

    /// Pass `sample` of a prediction that averages `samples` passes: with `samples` = 0 the single
    /// deterministic mean-path pass, else a stochastic pass keyed by the sample.
    public static func predictionPass(_ sample: Int, of samples: Int, seed: Int, trialIndices: [Int]) -> NoiseContext {
        samples == 0 ? NoiseContext(stochastic: false, trialIndices: trialIndices)
                     : prediction(seed: seed, sample: sample, trialIndices: trialIndices)
    }

    /// The epoch key reserved for prediction draws, so they never repeat a training draw.
    public static let predictionEpoch = 0xFF_FFFF

    public func stream(_ purpose: NoisePurpose) -> NoiseStream {
        NoiseStream(seed: UInt64(seed), purpose: purpose, epoch: epoch, step: step)
    }

    /// Overwrites `out`, laid out (rows, batch, width) with the batch index in the middle
    /// (time-major activations), with per-trial draws: trial b's draws 0..<rows·width fill
    /// out[r, b, :] for r in order. Trials are filled in parallel (each trial's rows are its own).
    public func fill<S: Scalar>(_ purpose: NoisePurpose, normal: Bool, into out: UnsafeMutablePointer<S>, rows: Int, width: Int) {
        let batch = trialIndices.count, s = stream(purpose), trials = trialIndices
        Parallel.forEach(batch) { b in
            for r in 0..<rows {
                let row = out + (r * batch + b) * width
                if normal {
                    s.fillNormal(trial: trials[b], first: r * width, into: row, count: width)
                } else {
                    s.fillUniform(trial: trials[b], first: r * width, into: row, count: width)
                }
            }
        }
    }

    /// Fills `mask` (rows, batch, width) for an inverted dropout: dropped with probability
    /// `rate` (to 2⁻³², compared on the draw's integer bits), kept entries scaled by 1/(1-rate).
    /// Without dropout, or with rate 0, every entry is kept with scale 1.
    public func dropoutMask<S: Scalar>(_ purpose: NoisePurpose, rate: Double, into mask: DropoutMask<S>, rows: Int, width: Int) {
        let batch = trialIndices.count, out = mask.kept
        guard dropout && rate > 0 else {
            out.update(repeating: 1, count: rows * batch * width)
            mask.scale = 1
            return
        }
        mask.scale = S(1 / (1 - rate))
        let s = stream(purpose), trials = trialIndices
        let threshold = NoiseStream.dropoutThreshold(rate: rate)
        Parallel.forEach(batch) { b in
            for r in 0..<rows {
                s.fillKept(trial: trials[b], first: r * width, into: out + (r * batch + b) * width, count: width, threshold: threshold)
            }
        }
    }
}

/// An inverted-dropout mask, one byte per entry (1 kept, 0 dropped) and the scale of the kept
/// ones, 1/(1-p): a quarter of the memory of a mask of scaled floats, and the same products
/// (x ⊙ mask is x·scale where kept, 0 where dropped).
public final class DropoutMask<S: Scalar> {
    public let kept: UnsafeMutablePointer<UInt8>
    public internal(set) var scale: S = 1
    public let count: Int

    public init(count: Int) {
        self.count = count
        kept = .allocate(capacity: max(count, 1))
        kept.initialize(repeating: 1, count: max(count, 1))
    }

    deinit { kept.deallocate() }
}
