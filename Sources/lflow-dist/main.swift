import ArgumentParser
import Distributed

/// lflow-dist: train, inspect and evaluate LangevinFlow models of neural population activity.
struct LflowDist: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "lflow-dist",
        abstract: "LangevinFlow for neural population data: data-parallel training over MPI, NLB in and out.",
        discussion: """
        Every subcommand that takes --config also takes --set key=value (repeatable) to override \
        any config field; `lflow-dist config --fields` lists them all.

        Examples:
          lflow-dist train                       # the built-in Lorenz data and config
          mpirun -n 4 lflow-dist search --ranks-per-trial 2 --grid mass=0.5,1,2 --grid damping=0.3,0.8
          lflow-dist bench                       # training-step speed, against PyTorch if installed
          lflow-dist init --config Configs/tiny.yaml --data data.h5 --out init.h5
          lflow-dist inspect --checkpoint init.h5 --data data.h5 --trials 4 --out state.h5
          lflow-dist prepare --nwb session.nwb --bin-ms 20 --out session.h5   # a lab's NWB recording in (docs/nwb.md)
        """,
        subcommands: [Train.self, SearchCommand.self, BenchCommand.self, Predict.self, LatentsCommand.self, ReportCommand.self, Evaluate.self, Prepare.self, Export.self, Synth.self, Init.self, Inspect.self, ConfigCommand.self])
}

// The preemption handlers are installed when the binary loads (CShims), so that a signal
// during a rank's start-up is seen at its first step boundary. The commands that never look at
// the flag (all but these, which run through WorldJob) get the default action back.
let readsPreemption: [String] = [Train._commandName, SearchCommand._commandName, Predict._commandName, LatentsCommand._commandName, Export._commandName]
if !readsPreemption.contains(CommandLine.arguments.dropFirst().first ?? "") { Preemption.restoreDefaultAction() }

LflowDist.main()
