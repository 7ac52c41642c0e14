import ArgumentParser
import Model
import Recipes
import Training

struct ConfigCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "config",
        abstract: "Print the resolved config as YAML, or the table of every config field.",
        discussion: """
        A config has three parts: the model (what a checkpoint is: its `config` attribute), its
        training and the job (the checkpoint's `training` attribute). Files and --set name their
        fields flat. A file may begin from profiles, applied first, in order: `base: nlb`,
        `base: [mc_maze, smallData]` (a name that is not a built-in profile is NAME.yaml beside
        the file); `base: spec` is the spec's model and training, the defaults. The printed
        config is resolved: every field, no bases.

        Examples:
          lflow-dist config --config Configs/mc_maze.yaml --set mass=2
          lflow-dist config --fields        # the Markdown table in Configs/README.md
          lflow-dist config --fields --json > python/lflow_dist/fields.json   # what the Python package reads
        """)

    @OptionGroup var options: ConfigOptions

    @Flag(name: .long, help: "Print the Markdown table of every field (name, default, allowed values, meaning).")
    var fields = false

    @Flag(name: .long, help: "JSON instead: the resolved config, every part in one flat object, or, with --fields, every field (name, part, kind, default, choices, allowed values, meaning), the file the Python package builds its Config from.")
    var json = false

    func run() throws {
        if fields {
            print(json ? ConfigFile.fieldsJSON() : ConfigFile.markdownTable(), terminator: "")
        } else if json {
            print(try options.resolve().json())
        } else {
            print(try options.resolve().yaml(), terminator: "")
        }
    }
}
