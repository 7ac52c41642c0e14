import ArgumentParser
import Checkpoint
import Data
import Distributed
import Foundation
import HDF5
import Inference
import Model
import RunFiles
import Training

struct Export: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write a run's inferred rates, z, v and factors into a copy of the NWB file its data came from.",
        discussion: """
        Predicts the rates (the checkpoint config's predictionSamples, as predict) and the mean \
        latent paths (as latents) of every trial of the run's spikes file, puts them on the \
        session's time base (a continuous session's windows merged, trials at their own times), \
        writes them to <run-dir>/export.h5, and then `python3 -m lflow_dist.export` copies the \
        NWB file to --out and adds a processing module lflow_dist with them (rates in Hz, the \
        units' ids, the model's config and the run). The input NWB file is never opened for \
        writing.

        The data file is the run's (the data attribute of <run-dir>/latents.h5) unless --data \
        names another spikes file of the same recording. Under mpirun the trials are shared out \
        over the ranks and rank 0 writes.

        Examples:
          lflow-dist export --run-dir Checkpoints/sleep --nwb sleep.nwb --out sleep-lflow.nwb
          mpirun -n 2 lflow-dist export --run-dir Checkpoints/reach --nwb reach.nwb --out reach-lflow.nwb --force
        """)

    @Option(help: ArgumentHelp("Run directory of a finished train on a spikes file.", valueName: "dir"))
    var runDir: String

    @Option(help: ArgumentHelp("The NWB file the data was prepared from (read only).", valueName: "file.nwb"))
    var nwb: String

    @Option(help: ArgumentHelp("The NWB file to write: a copy of --nwb with the module added.", valueName: "file.nwb"))
    var out: String

    @Option(help: ArgumentHelp("Checkpoint to use. Default: <run-dir>/best.h5.", valueName: "ckpt.h5"))
    var checkpoint: String?

    @Option(help: ArgumentHelp("Spikes file to run. Default: the run's data file.", valueName: "file.h5"))
    var data: String?

    @Flag(help: "Replace --out if it exists.")
    var force = false

    func run() throws {
        let run = RunDirectory(runDir)
        let checkpoint = checkpoint ?? run.best
        try WorldJob.run(preflight: { _ -> (Config, String) in
            guard FileManager.default.fileExists(atPath: checkpoint) else {
                throw RecordingCommandError("'\(checkpoint)' does not exist: export needs a finished run (its best.h5) or --checkpoint")
            }
            let config = try Config.read(checkpoint: checkpoint)
            if let data { return (config, data) }
            guard let file = try? H5File.open(run.latents), let path = try? file.readAttributeString("data") else {
                throw RecordingCommandError("cannot tell which data file the run in '\(runDir)' trained on ('\(run.latents)' is missing or has no data attribute); pass --data FILE.h5")
            }
            return (config, path)
        }, body: { comm, plan in
            try write(comm: comm, config: plan.0, dataPath: plan.1, checkpoint: checkpoint, run: run)
        })
    }

    func write(comm: Communicator, config: Config, dataPath: String, checkpoint: String, run: RunDirectory) throws {
        let say: (String) -> Void = comm.isRoot ? { lflow_dist.say($0) } : { _ in }
        comm.deadline = CollectiveDeadline(seconds: config.run.collectiveTimeoutSeconds)
        let tensors = try NLBTensors.load(path: dataPath)
        guard let recording = tensors.recording else {
            throw AgreedFailure(reason: RecordingCommandError("'\(dataPath)' is an NLB tensor file, which holds no session times or unit ids to put rates back into NWB; export works on spikes files (`lflow-dist prepare` makes one from the NWB file). For NLB data, predict writes the submission."))
        }
        let model = try Predictor.model(checkpoint: checkpoint, tensors: tensors, config: config.model,
                                        chunk: Predictor.chunkSize(batchSize: config.train.batchSize))
        let member = (model: model, samples: config.model.predictionSamples, seed: config.model.seed, label: "")
        let rates = try Predictor.ensemble([member], tensors: tensors, comm: comm, log: say)
        let paths = try LatentPaths.compute(model: model, tensors: tensors, trials: Array(0..<tensors.trainCount), set: .train,
                                            samples: 0, seed: config.model.seed, comm: comm)
        guard comm.isRoot, let rates, let paths else { return }
        let session = run.export
        try RecordingOutputs.writeExport(path: session, rates: rates.train, paths: paths, dims: model.dims, recording: recording, attributes: [
            "config": config.model.json(), "checkpoint": checkpoint, "data": dataPath, "run_dir": run.path,
        ])
        say("wrote \(session): rates, z, v and factors of \(tensors.trainCount) \(recording.kind == .session ? "windows merged onto \(recording.windows!.sessionBins) session bins" : "trials")")
        try PythonModule.run("lflow_dist.export", arguments: ["--session", session, "--nwb", nwb, "--out", out] + (force ? ["--force"] : []))
    }
}
