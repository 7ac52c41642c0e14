import ArgumentParser
import Model
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
