import Foundation
import Model
import Support

/// The small-data rule: when a dataset is small for the recipe, and what the recipe does about it.
/// The one place the threshold and the adjustments are written; the built-in NLB recipe applies
/// them, `Configs/mc_maze_{small,medium,large}.yaml` and `Configs/area2_bump.yaml` take them
/// as the profile `base: smallData`
/// (a test keeps them equal), and the trainer names them in its first lines.
/// Measured on nlbsynth data (docs/small-data.md).
public enum SmallData {
    /// Below this many train trials in the file (NLB's train split, before lflow-dist's
    /// validation split) the recipe's validation loss stops improving long before its 2,000
    /// epochs: MC_Maze_Small/_Medium/_Large- and Area2_Bump-shaped data (100 to 800 trials) are
    /// under it, MC_Maze and MC_RTT (1,500 and more) over it.
    public static let trainTrialThreshold = 1000

    /// What the built-in recipe sets under the threshold, before the command line's --set.
    public static let adjustments: [(field: String, value: String, why: String)] = [
        ("evalTrials", "heldIn", "the eval trials' held-in spikes train the encoder and the held-in rates too"),
        ("batchSize", "32", "more, smaller steps per epoch"),
        ("earlyStoppingPatience", "300", "stop after 300 epochs without a better validation score, keeping the best weights"),
        ("validationFraction", "0.1", "a tenth of the train trials validates, not a fifth: more trials to train on"),
        ("ensemble", "4", "four models with seeds seed…seed+3 and their own validation splits, in the time early stopping leaves, their rates averaged"),
    ]

    /// The adjustments as `--set` overrides.
    public static var overrides: [String] { adjustments.map { "\($0.field)=\($0.value)" } }

    public static func isSmall(trainTrials: Int) -> Bool { trainTrials < trainTrialThreshold }

    /// The recipe's adjustments in a few words, for the run's first lines.
    public static var summary: String {
        adjustments.map { "\($0.field) \($0.value) (\($0.why))" }.joined(separator: "; ")
    }

    /// The note a run prints when its data is small: the data size against the model's, and
    /// which of the adjustments `config` has (or that it has none, and where they are).
    public static func note(trainTrials: Int, trainingTrials: Int, parameters: Int, config: Config) -> String? {
        guard isSmall(trainTrials: trainTrials) else { return nil }
        let perThousand = Double(trainingTrials) / (Double(parameters) / 1000)
        let size = "small data: \(trainTrials) train trials in the file (\(trainingTrials) to train on) for \(parameters) parameters, \(formatShort(perThousand)) trials per 1,000 parameters; under \(trainTrialThreshold) train trials the validation score stops improving early"
        let missing = adjustments.filter { adjustment in
            guard let field = Config.fields.first(where: { $0.name == adjustment.field }) else { return true }
            var adjusted = config
            try? field.set(&adjusted, adjustment.value)
            return field.get(adjusted) != field.get(config)
        }
        if missing.isEmpty {
            return size + ". This config has the small-data settings: " + summary + "."
        }
        let set = missing.map { "--set \($0.field)=\($0.value)" }.joined(separator: " ")
        return size + ". This config lacks " + missing.map { "\($0.field) \($0.value) (\($0.why))" }.joined(separator: "; ")
            + ": add \(set), or start from the built-in recipe (no --config) or one of Configs/mc_maze_{small,medium,large}.yaml and Configs/area2_bump.yaml, which have them."
    }

    static func formatShort(_ x: Double) -> String {
        x >= 10 ? String(Int(x.rounded())) : String(format: "%.2g", x)
    }
}
