import ArgumentParser
import Data
import Checkpoint
import Distributed
import Evaluation
import Foundation
import Model
import Recipes
import RunReport
import Training

struct Train: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Train LangevinFlow on an NLB tensor file (default: the built-in Lorenz data).",
        discussion: """
        Preemption: SIGTERM or SIGUSR1 (e.g. SLURM's --signal=USR1@120) stops every rank at the \
        same step, writes a checkpoint and exits with status 75 (requeue). Running the same \
        command again in the same run directory resumes from the newest valid checkpoint \
        (ckpt-<step>.h5, written every checkpointEvery epochs; the newest keepCheckpoints are kept), \
        bit for bit at the same world size.

        Each epoch: a seeded shuffle of the training trials, KL and weight-decay warm-up, Adam \
        with gradient clipping; then the validation loss (deterministic, final KL weight) drives \
        ReduceLROnPlateau, early stopping and the choice of the best weights. At the end the best \
        weights are evaluated on the validation split (co-bps, fp-bps, vel R², PSTH R², and rate \
        R² against the ground truth on Lorenz data, next to a smoothed-spikes baseline) and used \
        for the NLB submission file.

        The run directory gets metrics.jsonl (one JSON line per epoch), best.h5 (checkpoint of the \
        best weights), submission.h5 and validation.json.

        Examples:
          lflow-dist train                                  # built-in Lorenz data, lorenz config
          lflow-dist train --config Configs/mc_maze.yaml --data mc_maze_20.h5 --run-dir Checkpoints/maze
          lflow-dist train --config Configs/tiny.yaml --set epochs=5
        """)

    @OptionGroup var options: ConfigOptions

    @Option(help: ArgumentHelp("NLB tensor HDF5 file. Without it the built-in Lorenz data is generated (once) at Checkpoints/lorenz.h5 and the built-in lorenz config is the default.", valueName: "file.h5"))
    var data: String?

    @Option(help: ArgumentHelp("Where the run writes its files. Default: Checkpoints/<data file name>.", valueName: "dir"))
    var runDir: String?

    @Flag(help: "Require a checkpoint to resume from (without it, an existing checkpoint in the run directory is resumed anyway, and a missing one starts a fresh run).")
    var resume = false

    @Option(help: ArgumentHelp("Submission group name. Default: the data file's dataset_name attribute, else the NLB dataset its shapes match, else its file name.", valueName: "name"))
    var datasetName: String?

    @Option(help: ArgumentHelp("A file with the ground truth of synthetic data under truth/ (nlbsynth's hidden/target.h5): rate, PSTH and latent R² at the end. Default: the data file, when it has truth/ (synth writes it). Training never reads it.", valueName: "file.h5"))
    var truth: String?

    func run() throws {
        // Config and data-path problems are refused on every rank before any collective.
        try WorldJob.run(preflight: { _ in
            if let truth, !FileManager.default.fileExists(atPath: truth) {
                throw ValidationError("--truth '\(truth)': no such file. Give the file with the ground truth (nlbsynth's hidden/target.h5), or drop --truth.")
            }
            return try options.plannedConfig(data: data)
        }, body: train)
    }

    func train(comm: Communicator, config: Config) throws {
        let say: (String) -> Void = comm.isRoot ? { lflow_dist.say($0) } : { _ in }
        let started = Date()
        comm.deadline = CollectiveDeadline(seconds: config.collectiveTimeoutSeconds)
        if let line = options.configLine(data: data) { say(line) }
        let dataPath = try ConfigOptions.dataPath(data, comm: comm, say: say)
        let tensors = try NLBTensors.load(path: dataPath)
        let runDirectory = runDir ?? DefaultPaths.trainRun(data: dataPath)
        if resume {
            guard !RunCheckpoints(directory: runDirectory).paths().isEmpty else {
                throw ValidationError("--resume: no checkpoint (\(RunCheckpoints.prefix)*.h5) in '\(runDirectory)'. Check --run-dir, or drop --resume to start a fresh run.")
            }
        }
        let outcome = try TrainingRun.run(config: config, tensors: tensors, dataPath: dataPath, runDirectory: runDirectory,
                                          datasetName: datasetName, comm: comm, log: say, truthPath: truth)
        guard let report = outcome.report else { return }
        say("\nvalidation metrics (best weights, epoch \(outcome.trainer.bestEpoch + 1)):\n" + report.table)
        let page: String
        do { page = try RunReport.write(runDirectory: runDirectory, dataPath: dataPath, truthPath: truth) } catch {
            page = "not written (\(error))"
        }
        say(String(format: "\ndone in %.1f minutes. submission: %@  checkpoint: %@", Date().timeIntervalSince(started) / 60,
                   outcome.submissionPath, outcome.trainer.bestCheckpointPath))
        say("report: \(page)")
    }
}
