import Distributed
import Foundation
import Model
import Support

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

/// The schedules of a run over its epochs: the time budget (`maxMinutes`) and the epochs it
/// plans, the warm-ups scaled to them, the learning rate (the plateau scheduler's), β and the weight
/// decay at each epoch.
extension Trainer {
    /// Epochs of a session before the epochs that fit in the budget are planned (the first one,
    /// which pays for one-time costs, is not part of the estimate).
    static let planningEpochs = 5

    /// With `maxMinutes`: rank 0 decides whether the budget is spent and, after the first
    /// `planningEpochs` epochs of a session that has no plan yet, about how many epochs fit (at
    /// the session's epoch time so far, at most `epochs`); every rank receives both, so every
    /// rank stops at the same epoch. The plan scales the warm-ups and is kept in `state` (and so
    /// in checkpoints); the run stops when the budget is spent.
    func planBudget(_ state: inout TrainerState, sessionEpochs: Int, secondsSinceFirstEpoch: Double) throws -> Bool {
        guard config.run.maxMinutes > 0 else { return false }
        let budget = config.run.maxMinutes * 60, spent = state.trainingSeconds ?? 0
        var decision = [0.0, Double(state.plannedEpochs ?? 0)]
        if comm.isRoot {
            decision[0] = spent >= budget ? 1 : 0
            if state.plannedEpochs == nil && sessionEpochs >= Self.planningEpochs {
                let perEpoch = secondsSinceFirstEpoch / Double(sessionEpochs - 1)
                let more = Int(max(budget - spent, 0) / perEpoch)
                decision[1] = Double(min(config.train.epochs, state.epoch + more))
            }
        }
        try comm.broadcast(&decision, count: 2, root: 0)
        if decision[1] > 0 && state.plannedEpochs == nil {
            state.plannedEpochs = Int(decision[1])
            let scale = warmupScale(state)
            log(String(format: "budget %@: about %d epochs fit (%.2f s each); warm-ups scaled by %.2f (KL over %d epochs, weight decay over %d)",
                       formatDuration(budget), state.plannedEpochs!, secondsSinceFirstEpoch / Double(sessionEpochs - 1), scale,
                       Self.scaled(config.train.klWarmupEpochs, scale), Self.scaled(config.train.weightDecayWarmupEpochs, scale)))
        }
        return decision[0] > 0
    }

    /// planned / configured epochs (1 without a plan): the factor the warm-ups shrink by.
    func warmupScale(_ state: TrainerState) -> Double {
        guard let planned = state.plannedEpochs else { return 1 }
        return min(1, Double(planned) / Double(config.train.epochs))
    }

    static func scaled(_ epochs: Int, _ scale: Double) -> Int {
        epochs == 0 ? 0 : max(1, Int((Double(epochs) * scale).rounded()))
    }

    /// The learning rate of `epoch`: the plateau scheduler's.
    func learningRate(atEpoch epoch: Int, _ state: TrainerState) -> Double { scheduler.learningRate }

    /// β at `epoch`, with the KL warm-up scaled to the planned epochs.
    func klWeight(atEpoch epoch: Int, _ state: TrainerState) -> Double {
        var c = config
        c.train.klWarmupEpochs = Self.scaled(config.train.klWarmupEpochs, warmupScale(state))
        return c.klWeight(atEpoch: epoch)
    }

    /// The weight decay at `epoch`, its warm-up scaled to the planned epochs.
    func weightDecay(atEpoch epoch: Int, _ state: TrainerState) -> Double {
        var c = config
        c.train.weightDecayWarmupEpochs = Self.scaled(config.train.weightDecayWarmupEpochs, warmupScale(state))
        return c.weightDecay(atEpoch: epoch)
    }
}
