import ArgumentParser
import Checkpoint
import Data
import Distributed
import Evaluation
import Foundation
import Inference
import Model
import Training

struct LatentsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "latents",
        abstract: "Write the posterior-mean latent paths (z, v, h and the force) of every train and eval trial.",
        discussion: """
        For each trial, in the data file's order: z_t, v_t (second-order dynamics), the encoder \
        state h_t and the potential's force f(z_t) = A z_t, each (trials, T+F, H), and the \
        factors (what the readout multiplies: the F factors with `factors` > 0, else the \
        decoder's output), under train/ and eval/ (with train/trials and eval/trials, the \
        indices). On a continuous session (a spikes file of kind session, from `prepare`) the \
        windows' paths are also merged onto the session's bins: session/z, session/v, \
        session/h, session/factors (session bins, width) and session/time (s). --samples 0 (the \
        default) is the deterministic mean path: the posterior means propagated without noise \
        and without dropout, exactly what `inspect` computes (in float32 here); --samples N \
        averages N sampled paths. Attributes name the checkpoint and the data file. It ends by \
        saying how much z moves: the share of z's variance that lies within trials (near 0 when z \
        holds its initial value, as under the spec's initial-only posterior).

        Under mpirun the trials are shared out over the ranks (as in predict) and rank 0 writes.

        Examples:
          lflow-dist latents --checkpoint Checkpoints/lorenz/best.h5 --data Checkpoints/lorenz.h5 --out latents.h5
          mpirun -n 4 lflow-dist latents --checkpoint best.h5 --data mc_maze_20.h5 --out latents.h5 --samples 20

        Reading them in Python:
          import h5py; z = h5py.File("latents.h5")["train/z"][()]     # (trials, T+F, H)
        """)

    @Option(help: ArgumentHelp("Checkpoint (best.h5 of a run).", valueName: "ckpt.h5"))
    var checkpoint: String

    @Option(help: ArgumentHelp("NLB tensor file whose trials to run.", valueName: "file.h5"))
    var data: String

    @Option(help: ArgumentHelp("Latents file to write.", valueName: "latents.h5"))
    var out: String

    @Option(help: "Sampled paths to average; 0 = the deterministic mean path.")
    var samples = 0

    func validate() throws {
        if samples < 0 { throw ValidationError("--samples must be >= 0 (got \(samples))") }
    }

    func run() throws {
        try WorldJob.run(preflight: { _ in try Config.read(checkpoint: checkpoint) }, body: write)
    }

    func write(comm: Communicator, config: Config) throws {
        let say: (String) -> Void = comm.isRoot ? { lflow_dist.say($0) } : { _ in }
        comm.deadline = CollectiveDeadline(seconds: config.run.collectiveTimeoutSeconds)
        let started = Date()
        let tensors = try NLBTensors.load(path: data)
        let model = try Predictor.model(checkpoint: checkpoint, tensors: tensors, config: config.model,
                                        chunk: Predictor.chunkSize(batchSize: config.train.batchSize))
        var sets: [(name: String, trials: [Int], paths: LatentPaths.Paths)] = []
        for (name, count, set) in [("train", tensors.trainCount, TrialSet.train), ("eval", tensors.evalCount, TrialSet.eval)] where count > 0 {
            let trials = Array(0..<count)
            if let paths = try LatentPaths.compute(model: model, tensors: tensors, trials: trials, set: set, samples: samples,
                                                   seed: config.model.seed, comm: comm) {
                sets.append((name, trials, paths))
            }
        }
        guard comm.isRoot else { return }
        try LatentPaths.write(path: out, sets: sets, attributes: [
            "checkpoint": checkpoint, "data": data,
            "samples": samples == 0 ? "0 (deterministic mean path)" : "\(samples) sampled paths averaged",
            "config": config.model.json(),
        ]) { file in
            // A continuous session's paths, merged from its windows onto its bins.
            if let recording = tensors.recording, let train = sets.first(where: { $0.name == "train" }) {
                try RecordingOutputs.writeSessionPaths(train.paths, bins: tensors.bins, recording: recording, into: file)
            }
        }
        say(String(format: "wrote %@: latents of %d train and %d eval trials, H=%d, %d steps (%.1f s)", out, tensors.trainCount,
                   tensors.evalCount, config.model.hidden, model.dims.steps, Date().timeIntervalSince(started)))
        // How much z moves: a path the data does not inform after t = 0 stays at z_0.
        for set in sets {
            if let share = LatentFit.motion(paths: set.paths, rows: Array(set.trials.indices)) {
                say(String(format: "  %@: %.0f%% of z's variance lies within trials%@", set.name, 100 * share,
                           share < 0.05 ? " (z barely moves over a trial: its path carries little dynamics)" : ""))
            }
        }
    }
}
