import Checkpoint
import Foundation
import Model
import Support

/// Everything a run is given, in three parts owned by the modules that use them: `model`
/// (`ModelConfig`, Model: the checkpoint's identity), `train` (`TrainConfig`: how it is
/// trained) and `run` (`RunOptions`: how the job runs). Config files and `--set` name fields
/// flat (`hidden: 64`, `--set maxMinutes=12`); the one table `Config.fields`, made of the
/// parts' tables, routes each key to its part, so config files, `--set`, checkpoints, the YAML
/// a run writes and `Configs/README.md` can never disagree.
public struct Config: Equatable, Sendable {
    public var model = ModelConfig()
    public var train = TrainConfig()
    public var run = RunOptions()

    public init() {}
    public init(model: ModelConfig) { self.model = model }

    /// The seed the validation split is drawn from: `splitSeed`, or the model's `seed` at -1.
    public var validationSplitSeed: Int { train.splitSeed >= 0 ? train.splitSeed : model.seed }
}

extension Config {
    /// Every field of every part, in order: the model's, the training's, the run's.
    public static let fields: [ConfigField<Config>] =
        ModelConfig.fields.map { $0.lifted(\Config.model) } + TrainConfig.fields.map { $0.lifted(\Config.train) }
        + RunOptions.fields.map { $0.lifted(\Config.run) }

    /// The part each field belongs to ("model", "train" or "run"), for `config --fields --json`.
    public static func part(of name: String) -> String {
        ModelConfig.field(named: name) != nil ? "model" : TrainConfig.fields.contains { $0.name == name } ? "train" : "run"
    }

    public static func field(named name: String) -> ConfigField<Config>? { fields.first { $0.name == name } }

    /// Options measured and not adopted, retired. A config file or a checkpoint of an earlier
    /// version that sets one to the value every run now has still loads; any other value is
    /// refused with what replaced it.
    public static let retired: [RetiredField] = ModelConfig.retired + [
        RetiredField("lrSchedule", kept: "plateau", why: "lrSchedule was retired: the cosine schedule reached 0.3174 co-bps against the plateau schedule's 0.3178 in the same 12 minutes (docs/quality.md), and a search cannot continue it in steps. The learning rate follows the plateau schedule (lrFactor, lrPatience, minLearningRate); remove the key"),
        RetiredField("validationMetric", kept: "heldOut", why: "validationMetric was retired: selecting on the validation loss tied the held-out NLL (0.3196 against 0.3194 co-bps, docs/quality.md) while its KL, summed per trial, swamps the reconstruction it should judge. Model selection, the plateau schedule and early stopping use the held-out NLL; remove the key"),
    ]

    /// Fields that manage a run rather than shape its trajectory: a resumed run may change them
    /// (more epochs, another checkpoint cadence, a longer watchdog).
    public static let runManagementFields: Set<String> = [
        "epochs", "checkpointEvery", "latentEvery", "keepCheckpoints", "earlyStoppingPatience", "predictionSamples",
        "collectiveTimeoutSeconds", "maxMinutes", "overlapAllreduce",
    ]

    /// Sets one field from its text form, as `--set key=value` and config files do.
    /// `source` names where the pair came from, for the error message.
    public mutating func set(_ key: String, _ value: String, source: String = "--set") throws {
        try ConfigTable.set(&self, key, value, source: source, fields: Config.fields, retired: Config.retired,
                            unknown: ("config key", "Run `lflow-dist help config` or see Configs/README.md for every key."))
    }

    /// Applies `key=value` overrides, in order.
    public mutating func apply(overrides: [String]) throws {
        for item in overrides {
            guard let eq = item.firstIndex(of: "="), eq != item.startIndex else {
                throw ConfigError("--set expects key=value, got '\(item)'. Example: --set hidden=64")
            }
            try set(String(item[..<eq]), String(item[item.index(after: eq)...]), source: "--set \(item)")
        }
    }

    /// Every problem of every part, in one message.
    public func validate() throws {
        let problems = model.problems + train.problems + run.problems
        if !problems.isEmpty {
            throw ConfigError("impossible config:\n  - " + problems.joined(separator: "\n  - "))
        }
    }

    /// Every field as one flat JSON object, keys in table order (`config --json`).
    public func json() -> String { ConfigTable.json(self, Config.fields) }

    /// The training and run fields as a JSON object: a checkpoint's `training` attribute, beside
    /// the model's `config`.
    public func trainingJSON() -> String {
        ConfigTable.json(self, Config.fields.filter { ModelConfig.field(named: $0.name) == nil })
    }

    /// Reads flat JSON (`json()`, `trainingJSON()`, or a schema-1 checkpoint's `config`, which
    /// held every part) into this config. Unknown keys are an error.
    public mutating func read(json text: String, source: String) throws {
        for (key, value) in try ConfigTable.pairs(text, source: source) { try set(key, value, source: source) }
    }

    public static func fromJSON(_ text: String, source: String) throws -> Config {
        var config = Config()
        try config.read(json: text, source: source)
        return config
    }

    /// The whole config a checkpoint holds: the model's `config` and the `training` attribute
    /// (or, in a checkpoint of schema 1, every field in `config`). A checkpoint without
    /// `training` (`init`'s) gives the training and run defaults.
    public static func read(checkpoint path: String) throws -> Config {
        let (text, training, schema) = try CheckpointIO.readConfigText(path: path)
        var config = Config()
        do {
            if schema == 1 {
                try config.read(json: text, source: "\(path) (config attribute)")
            } else {
                config.model = try ModelConfig.fromJSON(text, source: "\(path) (config attribute)")
                if let training { try config.read(json: training, source: "\(path) (training attribute)") }
            }
        } catch let error as ConfigError {
            throw CheckpointError(error.message)
        }
        return config
    }

    /// The config as YAML, in field-table order, with each field's doc as a comment (the run
    /// directory's config.yaml, best.yaml, `config` without `--json`).
    public func yaml() -> String {
        Config.fields.map { "\($0.name): \($0.get(self))    # \($0.doc)" }.joined(separator: "\n") + "\n"
    }

    /// β(epoch) = klWeight · min(epoch / klWarmupEpochs, 1).
    public func klWeight(atEpoch epoch: Int) -> Double {
        train.klWarmupEpochs == 0 ? model.klWeight : model.klWeight * min(Double(epoch) / Double(train.klWarmupEpochs), 1)
    }

    /// Weight decay ramped linearly from 0 over weightDecayWarmupEpochs.
    public func weightDecay(atEpoch epoch: Int) -> Double {
        train.weightDecayWarmupEpochs == 0
            ? train.weightDecay : train.weightDecay * min(Double(epoch) / Double(train.weightDecayWarmupEpochs), 1)
    }
}
