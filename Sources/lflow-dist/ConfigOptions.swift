import ArgumentParser
import Data
import Distributed
import Foundation
import Model
import Recipes
import Training

/// The flags shared by every subcommand that builds a config.
struct ConfigOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("A YAML config file (flat key: value). Defaults are the spec's MC_Maze settings.", valueName: "file"))
    var config: String?

    @Option(name: .customLong("set"), help: ArgumentHelp("Override one config field, e.g. --set hidden=64 --set potential=diagonal. Repeatable; applied after the file.", valueName: "key=value"))
    var overrides: [String] = []

    /// Defaults ← file ← --set, then validated.
    func resolve(extra: [String] = []) throws -> Config {
        try ConfigFile.resolve(path: config, overrides: overrides + extra)
    }
}

extension ConfigOptions {
    /// The data file of a training command. Without `data`, rank 0 generates the built-in
    /// Lorenz dataset once at Checkpoints/lorenz.h5 (the others wait).
    static func dataPath(_ data: String?, comm: Communicator, say: (String) -> Void) throws -> String {
        if let data { return data }
        let dataPath = DefaultPaths.builtInData
        if comm.isRoot, try BuiltIn.ensureLorenzData(at: dataPath) {
            say("generated the built-in Lorenz dataset at \(dataPath) (targets: \(BuiltIn.targetsPath(forData: dataPath)))")
        }
        try comm.barrier()
        return dataPath
    }

    /// The config a training command will use, checked before any rank enters a collective or
    /// anything is generated: the config resolves (without --config: the built-in lorenz config
    /// for the built-in data, the built-in NLB recipe for --data), and --data, when given,
    /// exists.
    func plannedConfig(data: String?) throws -> Config {
        guard let data else { return config == nil ? try BuiltIn.lorenzConfig(overrides: overrides) : try resolve() }
        guard FileManager.default.fileExists(atPath: data) else {
            throw DataError("--data '\(data)': no such file. Give an NLB tensor HDF5 file (`lflow-dist synth` writes a test one), or drop --data for the built-in Lorenz data.")
        }
        return config == nil ? try BuiltIn.nlbConfig(trainTrials: try NLBTensors.trainTrialCount(path: data), overrides: overrides) : try resolve()
    }

    /// The one line that says which config a run uses when none was given.
    func configLine(data: String?) -> String? {
        guard config == nil else { return nil }
        guard let data else { return "config: the built-in lorenz config (Configs/lorenz.yaml); --config chooses another" }
        let small = (try? NLBTensors.trainTrialCount(path: data)).map(SmallData.isSmall) ?? false
        return "config: the built-in NLB recipe (Configs/nlb.yaml: \(BuiltIn.nlbRecipeSummary))"
            + (small ? "; with under \(SmallData.trainTrialThreshold) train trials, the small-data settings: \(SmallData.summary)" : "")
            + "; --config chooses another"
    }
}
