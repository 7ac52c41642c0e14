import Foundation
import Support

/// One line of the run's metrics log (metrics.jsonl).
public struct EpochRecord: Codable, Sendable {
    public var epoch: Int
    public var step: Int
    public var trainLoss: Double
    public var trainReconstruction: Double
    public var trainKL: Double
    public var validLoss: Double
    public var validReconstruction: Double
    public var validKL: Double
    /// Validation Poisson NLL per entry of the held-out neurons and forward bins.
    public var validHeldOutNLL: Double
    /// The value `validationMetric` selects on.
    public var validMetric: Double
    public var learningRate: Double
    public var klWeight: Double
    public var weightDecay: Double
    public var gradNorm: Double
    public var trialsPerSecond: Double
    public var seconds: Double
    public var best: Bool
    /// R² of a linear map from the validation trials' mean-path [z, v] to the true latents
    /// (data with truth only, every `latentEvery` epochs).
    public var latentR2: Double? = nil
    /// The within-trial share of the variance of z over the validation trials (0: z is constant
    /// within each trial).
    public var latentMotion: Double? = nil
}

extension EpochRecord {
    /// The records of metrics.jsonl text, one JSON line each, in epoch order (lines that do not
    /// decode are skipped). The one place that file's lines are decoded.
    public static func records<S: Sequence>(lines: S) -> [EpochRecord] where S.Element: StringProtocol {
        lines.compactMap { try? JSON.decode(EpochRecord.self, from: String($0)) }
    }

    /// The records of a run's metrics.jsonl (none when it is missing), in epoch order.
    public static func read(path: String) -> [EpochRecord] {
        let text = (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
        return records(lines: text.split(separator: "\n", omittingEmptySubsequences: true))
    }
}

/// Sums of the epoch in progress, for its logged training loss.
public struct EpochSums: Codable, Equatable, Sendable {
    public var reconstruction = 0.0
    public var kl = 0.0
    public var observed = 0
    public var trials = 0
    public var normSum = 0.0
    public var batches = 0
}

/// Where training stands, besides the tensors: enough to continue bit for bit.
public struct TrainerState: Codable, Equatable, Sendable {
    /// The epoch in progress (or the next one when `batchCursor` is 0).
    public var epoch: Int
    /// Global batches of `epoch` already taken (the data cursor; the same at any world size).
    public var batchCursor: Int
    public var partial: EpochSums
    /// Seconds of training (whole epochs, with validation and checkpoints) over every session.
    public var trainingSeconds: Double?
    /// With `maxMinutes`: the epochs planned to fit in the budget (nil until planned).
    public var plannedEpochs: Int?

    public init(epoch: Int, batchCursor: Int, partial: EpochSums, trainingSeconds: Double? = nil, plannedEpochs: Int? = nil) {
        self.epoch = epoch
        self.batchCursor = batchCursor
        self.partial = partial
        self.trainingSeconds = trainingSeconds
        self.plannedEpochs = plannedEpochs
    }
}

/// Training stopped at a step boundary because of SIGTERM or SIGUSR1; a checkpoint was written.
public struct Preempted: Error, CustomStringConvertible {
    public let checkpoint: String
    /// The exit status that tells a wrapper to requeue the job (EX_TEMPFAIL).
    public static let exitCode: Int32 = 75
    public init(checkpoint: String) { self.checkpoint = checkpoint }
    public var description: String { "preempted; resume from \(checkpoint) by running the same command again" }
}

extension EpochRecord {
    /// The record as TensorBoard scalars (tags grouped by prefix, as the dashboard groups them).
    public var scalars: [(tag: String, value: Double)] {
        var out: [(String, Double)] = [
            ("loss/train", trainLoss), ("loss/train_reconstruction", trainReconstruction), ("loss/train_kl", trainKL),
            ("loss/valid", validLoss), ("loss/valid_reconstruction", validReconstruction), ("loss/valid_kl", validKL),
            ("valid/heldout_nll", validHeldOutNLL), ("valid/metric", validMetric),
            ("schedule/learning_rate", learningRate), ("schedule/kl_weight", klWeight), ("schedule/weight_decay", weightDecay),
            ("train/grad_norm", gradNorm), ("speed/trials_per_second", trialsPerSecond), ("speed/epoch_seconds", seconds),
        ]
        if let latentR2 { out.append(("latent/r2_zv", latentR2)) }
        if let latentMotion { out.append(("latent/z_motion", latentMotion)) }
        return out
    }
}
