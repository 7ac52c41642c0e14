import ArgumentParser
import Foundation
import RunReport

struct ReportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "report",
        abstract: "Write the HTML report of a training run (train writes it at the end of every run).",
        discussion: """
        One self-contained HTML file, inline SVG figures, no JavaScript and nothing loaded from \
        the network, so it opens anywhere and can be mailed: the training curves with the best \
        epoch marked; the validation metrics next to the smoothed-spikes baseline; the latent \
        trajectories (the first principal components of z and v over time, coloured by \
        condition where the ground truth has conditions, else by the direction of the \
        behaviour); inferred rates against the spikes of a few trials and neurons (with the \
        true rates on synthetic data); the potential's kernel and the force matrix; and, on \
        synthetic data, the inferred latents mapped onto the true ones.

        It reads the run directory (metrics.jsonl, validation.json, latents.h5, best.h5, \
        submission.h5) and the data file and ground truth that latents.h5 names.

        Examples:
          lflow-dist report --run-dir Checkpoints/lorenz
          lflow-dist report --run-dir runs/maze --truth maze/hidden/target.h5 --out maze.html
        """)

    @Option(help: ArgumentHelp("The run directory of a train (or a search trial).", valueName: "dir"))
    var runDir: String

    @Option(help: ArgumentHelp("Where to write the page. Default: <run-dir>/report.html.", valueName: "file.html"))
    var out: String?

    @Option(help: ArgumentHelp("The data file. Default: the one the run recorded.", valueName: "file.h5"))
    var data: String?

    @Option(help: ArgumentHelp("The ground truth (truth/) of synthetic data. Default: the one the run recorded, else the data file.", valueName: "file.h5"))
    var truth: String?

    func run() throws {
        let path = try RunReport.write(runDirectory: runDir, dataPath: data, truthPath: truth, out: out)
        print("wrote \(path)")
    }
}
