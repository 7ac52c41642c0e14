import ArgumentParser
import Model
import Recipes
import Training

struct ConfigCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "config",
        abstract: "Print the resolved config as YAML, or the table of every config field.",
        discussion: """
        Examples:
          lflow-dist config --config Configs/mc_maze.yaml --set mass=2
          lflow-dist config --fields        # the Markdown table in Configs/README.md
        """)

    @OptionGroup var options: ConfigOptions

    @Flag(name: .long, help: "Print the Markdown table of every field (name, default, allowed values, meaning).")
    var fields = false

    func run() throws {
        if fields {
            print(ConfigFile.markdownTable(), terminator: "")
        } else {
            print(ConfigFile.yaml(try options.resolve()), terminator: "")
        }
    }
}
