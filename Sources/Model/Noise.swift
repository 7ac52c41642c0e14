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

    /// Overwrites `mask` (rows, batch, width) with an inverted-dropout mask: 0 with probability
    /// `rate` (to 2⁻³², compared on the draw's integer bits), else 1/(1-rate). Without dropout,
    /// or with rate 0, every entry is 1.
    public func dropoutMask<S: Scalar>(_ purpose: NoisePurpose, rate: Double, into mask: UnsafeMutablePointer<S>, rows: Int, width: Int) {
        let batch = trialIndices.count
        guard dropout && rate > 0 else {
            mask.update(repeating: 1, count: rows * batch * width)
            return
        }
        let s = stream(purpose), trials = trialIndices
        let threshold = NoiseStream.dropoutThreshold(rate: rate), keep = S(1 / (1 - rate))
        Parallel.forEach(batch) { b in
            for r in 0..<rows {
                s.fillDropout(trial: trials[b], first: r * width, into: mask + (r * batch + b) * width, count: width,
                              threshold: threshold, keepValue: keep)
            }
        }
    }
}
