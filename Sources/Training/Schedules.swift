/// `torch.optim.lr_scheduler.ReduceLROnPlateau(mode="min", factor, patience, threshold=1e-4,
/// threshold_mode="rel", cooldown=0, min_lr, eps=1e-8)` on the validation loss.
public struct PlateauScheduler: Codable, Equatable, Sendable {
    public var learningRate: Double
    public var best = Double.infinity
    public var badEpochs = 0
    public let factor: Double, patience: Int, minLearningRate: Double
    public static let threshold = 1e-4

    public init(learningRate: Double, factor: Double, patience: Int, minLearningRate: Double) {
        self.learningRate = learningRate
        self.factor = factor
        self.patience = patience
        self.minLearningRate = minLearningRate
    }

    /// Feeds one epoch's metric; returns true when the learning rate was reduced.
    @discardableResult
    public mutating func step(_ metric: Double) -> Bool {
        if metric < best * (1 - Self.threshold) {
            best = metric
            badEpochs = 0
        } else {
            badEpochs += 1
        }
        guard badEpochs > patience else { return false }
        badEpochs = 0
        let reduced = max(learningRate * factor, minLearningRate)
        guard learningRate - reduced > 1e-8 else { return false }
        learningRate = reduced
        return true
    }
}

/// Formats seconds as "1h02m", "3m07s" or "12s".
public func formatDuration(_ seconds: Double) -> String {
    guard seconds.isFinite else { return "?" }
    let s = Int(seconds.rounded())
    if s >= 3600 { return "\(s / 3600)h\(String(format: "%02d", (s % 3600) / 60))m" }
    if s >= 60 { return "\(s / 60)m\(String(format: "%02d", s % 60))s" }
    return "\(s)s"
}
