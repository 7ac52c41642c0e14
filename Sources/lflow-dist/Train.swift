import ArgumentParser
import Data
import Checkpoint
import Distributed
import Evaluation
import Foundation
import Model
import Recipes
import RunFiles
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

        With ensemble: K (K > 1) the run trains K models one after another in member-1 … member-K \
        (seeds seed … seed+K−1, each a run as above; under maxMinutes each gets an equal share of \
        what the ones before it left), and submission.h5 holds the mean of their rates; \
        jobs/j<k>.json holds member k's record (the record a search keeps of its jobs). Resuming keeps \
        finished members.

        Examples:
          lflow-dist train                                  # built-in Lorenz data, lorenz config
          lflow-dist train --config Configs/mc_maze.yaml --data mc_maze_20.h5 --run-dir Checkpoints/maze
          lflow-dist train --config Configs/tiny.yaml --set epochs=5
          mpirun -n 2 lflow-dist train --config Configs/mc_maze_small.yaml --data mc_maze_small_20.h5 --set maxMinutes=12   # an ensemble of 4
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
        comm.deadline = CollectiveDeadline(seconds: config.run.collectiveTimeoutSeconds)
        if let line = options.configLine(data: data) { say(line) }
        let dataPath = try ConfigOptions.dataPath(data, comm: comm, say: say)
        let tensors = try NLBTensors.load(path: dataPath)
        let run = RunDirectory(runDir ?? DefaultPaths.trainRun(data: dataPath))
        if resume {
            // An ensemble's checkpoints are in its members' run directories.
            let directories = config.run.ensemble > 1 ? (1...config.run.ensemble).map { run.member($0) } : [run]
            guard directories.contains(where: { !RunCheckpoints($0).paths().isEmpty }) else {
                throw ValidationError("--resume: no checkpoint (\(RunDirectory.checkpointPrefix)*.h5) in '\(run)'. Check --run-dir, or drop --resume to start a fresh run.")
            }
        }
        let context = RunContext(tensors: tensors, dataPath: dataPath, run: run, comm: comm, log: say, datasetName: datasetName,
                                 truthPath: truth)
        if config.run.ensemble > 1 {
            let outcome = try EnsembleRun.run(config: config, context: context)
            guard comm.isRoot else { return }
            var table = "\nensemble of \(outcome.members.count): the mean rates of\n  member  seed  best epoch  validation co-bps  minutes"
            for m in outcome.members {
                let best = m.bestEpoch.map { "\($0)" } ?? "–"
                let seed = m.job.values.first { $0.field == "seed" }?.value ?? "?"
                table += String(format: "\n  %6d  %4@  ", m.job.trial, seed) + String(repeating: " ", count: max(0, 10 - best.count)) + best
                    + String(format: "  %17.4f  %7.1f", m.coBps ?? .nan, (m.wallSeconds ?? .nan) / 60)
            }
            say(table + "\n  (each member on its own validation split, which the others may have trained on: the ensemble's own score needs held-out data, e.g. `lflow-dist evaluate` on the eval trials)")
            let page: String
            do { page = try RunReport.write(runDirectory: outcome.firstMember.path, dataPath: dataPath, truthPath: truth) } catch {
                page = "not written (\(error))"
            }
            say(String(format: "\ndone in %.1f minutes. submission: %@  members: %@/member-*/best.h5", Date().timeIntervalSince(started) / 60,
                       outcome.submissionPath, run.path))
            say("report (member 1): \(page)")
            return
        }
        let outcome = try TrainingRun.run(config: config, context: context)
        guard let report = outcome.report else { return }
        say("\nvalidation metrics (best weights, epoch \(outcome.trainer.bestEpoch + 1)):\n" + report.table)
        let page: String
        do { page = try RunReport.write(runDirectory: run.path, dataPath: dataPath, truthPath: truth) } catch {
            page = "not written (\(error))"
        }
        say(String(format: "\ndone in %.1f minutes. submission: %@  checkpoint: %@", Date().timeIntervalSince(started) / 60,
                   outcome.submissionPath, run.best))
        say("report: \(page)")
    }
}
