import Data
import Foundation
import Model
import Support
import Training

// Recipes: what a run starts from: config files (YAML), the built-in Lorenz config and NLB recipe,
// the built-in data, and the default paths. No training, prediction or evaluation.

/// The built-in default run: Lorenz data and the `lorenz` config.
public enum BuiltIn {
    /// The `lorenz` config, embedded so `lflow-dist train` runs from any directory.
    /// Configs/lorenz.yaml is the same text (a test keeps them equal).
    public static let lorenzConfigText = """
        # The built-in Lorenz default: a small model that trains in minutes on 2 cores.
        # lagged: h_t has not seen x_t, so the rates cannot copy the input spikes (measured:
        # validation co-bps 0.159 vs 0.155 and rate R² 0.89 vs -1.6 with `current`).
        encoderInput: lagged
        hidden: 32
        groups: 4
        heads: 2
        feedForward: 64
        batchSize: 64
        learningRate: 0.005
        cdKeep: 0.7
        dropout: 0.05
        decoderDropout: 0.05
        klWarmupEpochs: 30
        weightDecayWarmupEpochs: 30
        lrPatience: 8
        epochs: 120
        predictionSamples: 10
        # The data informs the Langevin path at every step (an inferred innovation u_t from h_t, its
        # KL the transition KL) and the KL is counted per entry: measured on the built-in Lorenz data,
        # seeds 0-2, 120 epochs, [z, v] explains 0.876-0.880 of the true latents (the spec's
        # initial-only posterior: 0.045-0.075) at the same co-bps (0.1602/0.1742/0.1688 vs
        # 0.1595/0.1763/0.1686); blind seeds 3-4: [z, v] 0.869/0.872, co-bps 0.1670/0.1683.
        # The spec's behaviour: --set posterior=initial --set klScale=perTrial.
        posterior: perStep
        klScale: perEntry
        # An energy potential (A = k·BᵀB/b, positive semi-definite) and the implicit midpoint step,
        # stable at every dt, so the time step can be 10× the spec's and the position z moves
        # (issue 43). Measured on the built-in Lorenz data, 120 epochs, 2 ranks, against the lines
        # above with the spec's potential, step and dt 0.01 (co-bps / [z, v] / z motion):
        # seeds 0-2 0.1604/0.1755/0.1686, 0.863/0.864/0.872, 0.52/0.55/0.48 (before: 0.1600/0.1741/
        # 0.1689, 0.868/0.866/0.866, 0.01/0.00/0.00); blind seeds 3-4 0.1680/0.1687, 0.860/0.856,
        # 0.49/0.53 (before: 0.1670/0.1683, 0.861/0.865, 0.00/0.00). The spec's physics:
        # --set stiffness=paper --set integrator=explicit --set dt=0.01.
        stiffness: gram
        integrator: midpoint
        dt: 0.1

        """

    /// The built-in recipe for NLB-shaped data: what `train --data FILE` uses without
    /// --config. Configs/nlb.yaml is the same text (a test keeps them equal).
    public static let nlbRecipeText = """
        # The built-in recipe for NLB-shaped data (20 ms bins): what `lflow-dist train --data FILE`
        # uses without --config. Measured on nlbsynth data; see docs/quality.md.
        hidden: 280
        encoderInput: lagged
        # A second GRU runs backwards and is summed into h_t (measured on nlbsynth data, docs/quality.md,
        # "The bidirectional encoder": +0.0005 to +0.0013 co-bps on four screens): h_0, which the initial posterior reads,
        # has seen the whole trial, and with lagged input no step has seen its own bin.
        encoder: bidirectional
        heads: 2
        feedForward: 512
        batchSize: 256
        learningRate: 0.003
        weightDecay: 0.00002
        damping: 0.55
        cdKeep: 0.5
        epochs: 2000
        klWarmupEpochs: 200
        weightDecayWarmupEpochs: 200
        dropout: 0.05
        decoderDropout: 0.05
        positionalEncoding: sinusoidal
        weightAverage: 0.999
        klScale: perEntry

        """

    /// The recipe in one line, for the start of a run.
    public static let nlbRecipeSummary = "a bidirectional encoder with lagged input (a reverse GRU summed into h_t: h_0 sees the whole trial, and no h_t after the first its own bin), a sinusoidal positional encoding for the Transformer, dropout 0.05, validation and prediction on a moving average of the weights (decay 0.999), the KL per entry like the reconstruction (klScale perEntry), the KL and weight-decay warm-ups over the first tenth of the run, otherwise the released code's MC_Maze settings"

    /// The built-in NLB recipe for a file with `trainTrials` train trials: under
    /// `SmallData.trainTrialThreshold` with the small-data adjustments, then `overrides`.
    public static func nlbConfig(trainTrials: Int, overrides: [String]) throws -> Config {
        let small = SmallData.isSmall(trainTrials: trainTrials) ? SmallData.overrides : []
        return try config(text: nlbRecipeText, source: "built-in NLB recipe", overrides: small + overrides)
    }

    public static func lorenzConfig(overrides: [String]) throws -> Config {
        try config(text: lorenzConfigText, source: "built-in lorenz config", overrides: overrides)
    }

    /// The defaults, then a built-in config file's text, then the command line's overrides, validated.
    static func config(text: String, source: String, overrides: [String]) throws -> Config {
        var config = Config()
        try ConfigFile.apply(text: text, source: source, to: &config)
        try config.apply(overrides: overrides)
        try config.validate()
        return config
    }

    /// Generates the built-in Lorenz data at `path` unless a readable file is already there.
    /// Safe when several runs start at once in one directory.
    /// Returns true when it generated.
    @discardableResult
    public static func ensureLorenzData(at path: String) throws -> Bool {
        if (try? NLBTensors.load(path: path)) != nil { return false }
        let directory = (path as NSString).deletingLastPathComponent
        if !directory.isEmpty { try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true) }
        let data = Lorenz.generate(LorenzSpec())
        // Atomically, targets first: two runs started together in one directory each write
        // their own temporary files and rename the same bytes into place, and a run that finds
        // the data file finds it whole, with its targets beside it.
        try AtomicFile.write(targetsPath(forData: path)) { try data.writeTargets(path: $0) }
        try AtomicFile.write(path) { try data.write(path: $0) }
        return true
    }

    /// foo.h5 → foo-targets.h5
    public static func targetsPath(forData path: String) -> String {
        (path.hasSuffix(".h5") ? String(path.dropLast(3)) : path) + "-targets.h5"
    }
}

/// Where commands read and write when not told: the one place these paths are spelled.
public enum DefaultPaths {
    public static let root = "Checkpoints"
    /// The built-in Lorenz data (generated once; its targets beside it).
    public static let builtInData = root + "/lorenz.h5"

    /// `train`'s run directory for a data file: Checkpoints/<file name without .h5>.
    public static func trainRun(data: String) -> String { root + "/" + stem(data) }

    /// `search`'s: Checkpoints/search-<file name without .h5>.
    public static func searchRun(data: String) -> String { root + "/search-" + stem(data) }

    static func stem(_ path: String) -> String { URL(fileURLWithPath: path).deletingPathExtension().lastPathComponent }
}
