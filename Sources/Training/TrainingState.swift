import Foundation
import RunFiles
import Support

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
