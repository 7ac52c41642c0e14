import ArgumentParser
import Foundation

struct Prepare: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Make a spikes file that train reads from an NWB file (trials aligned to an event, or a continuous session cut into windows).",
        discussion: """
        Runs `python3 -m lflow_dist.prepare` (pynwb and nlb_tools' NWB reader, in the project's \
        Python package) with the same arguments: `lflow-dist prepare -- --help` (or no arguments) \
        lists its flags. \
        With --align, trials from the NWB trials table aligned to that column over --window; \
        without it, the whole session binned and cut into overlapping windows, which predict, \
        latents and export merge back onto the session's time base. Held-out neurons: the units \
        table's heldout column, else a split train draws from --held-out-fraction and --seed. \
        The file's layout: docs/outputs.md, "The spikes file"; a walk-through: docs/nwb.md.

        Examples:
          lflow-dist prepare --nwb sub-01_ses-01.nwb --bin-ms 20 --align move_onset_time --window -250,450 --out reach.h5
          lflow-dist prepare --nwb sleep.nwb --bin-ms 20 --chop-ms 1000 --overlap-ms 200 --out sleep.h5
          mpirun -n 2 lflow-dist train --config Configs/mc_maze.yaml --data reach.h5
        """)

    @Argument(parsing: .allUnrecognized, help: "The arguments of python3 -m lflow_dist.prepare.")
    var arguments: [String] = []

    func run() throws {
        try PythonModule.run("lflow_dist.prepare", arguments: arguments.isEmpty ? ["--help"] : arguments)
    }
}
