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

    public init(epoch: Int, step: Int, trainLoss: Double, trainReconstruction: Double, trainKL: Double, validLoss: Double,
                validReconstruction: Double, validKL: Double, validHeldOutNLL: Double, validMetric: Double, learningRate: Double,
                klWeight: Double, weightDecay: Double, gradNorm: Double, trialsPerSecond: Double, seconds: Double, best: Bool,
                latentR2: Double? = nil, latentMotion: Double? = nil) {
        self.epoch = epoch; self.step = step
        self.trainLoss = trainLoss; self.trainReconstruction = trainReconstruction; self.trainKL = trainKL
        self.validLoss = validLoss; self.validReconstruction = validReconstruction; self.validKL = validKL
        self.validHeldOutNLL = validHeldOutNLL; self.validMetric = validMetric
        self.learningRate = learningRate; self.klWeight = klWeight; self.weightDecay = weightDecay; self.gradNorm = gradNorm
        self.trialsPerSecond = trialsPerSecond; self.seconds = seconds; self.best = best
        self.latentR2 = latentR2; self.latentMotion = latentMotion
    }
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
