import ArgumentParser
import Checkpoint
import Data
import Distributed
import Evaluation
import Foundation
import Inference
import Model
import Training

struct Predict: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write the NLB submission file (rates for train and eval trials) from a checkpoint.",
        discussion: """
        Log-rates are averaged over --samples stochastic passes (posterior and Langevin noise, \
        no dropout) and then exponentiated; --samples 0 is one deterministic mean-path pass. Rates \
        are float32 expected spikes per bin, in one group named as the dataset, which \
        nlb_tools.evaluation.evaluate scores unchanged.

        Under mpirun the trials are shared out over the ranks (in chunks of min(batchSize, 64) \
        trials, whichever rank predicts them) and rank 0 writes the file, which is bitwise the \
        same at any number of ranks. Progress with an ETA is printed every 10 s.

        An ensemble: give --checkpoint once per model (for example the best.h5 of the trials of \
        `search --grid seed=0,1`) and the file holds the mean of their rates (expected spikes per \
        bin), each model predicted with its own config's seed and samples. The models may differ \
        in any config field; each must fit the data file.

        Examples:
          lflow-dist predict --checkpoint Checkpoints/lorenz/best.h5 --data Checkpoints/lorenz.h5 --out sub.h5 --samples 50
          mpirun -n 8 lflow-dist predict --checkpoint best.h5 --data mc_maze_20.h5 --out sub.h5 --dataset-name mc_maze_20
          mpirun -n 2 lflow-dist predict --checkpoint s/trials/t000_seed=0/best.h5 --checkpoint s/trials/t001_seed=1/best.h5 --data mc_rtt.h5 --out sub.h5
        """)

    @Option(help: ArgumentHelp("Checkpoint (best.h5 of a run, or one written by init). Repeat it for an ensemble: the rates of the models are averaged.", valueName: "ckpt.h5"))
    var checkpoint: [String]

    @Option(help: ArgumentHelp("NLB tensor file with the trials to predict.", valueName: "file.h5"))
    var data: String

    @Option(help: ArgumentHelp("Submission file to write.", valueName: "sub.h5"))
    var out: String

    @Option(help: "Stochastic passes to average in log-rate space; 0 = deterministic mean path. Default: the checkpoint config's predictionSamples.")
    var samples: Int?

    @Option(help: ArgumentHelp("Group name, e.g. mc_maze_20. Default: the data file's dataset_name attribute, else the NLB dataset its shapes match, else its file name (with a warning).", valueName: "name"))
    var datasetName: String?

    func validate() throws {
        if checkpoint.isEmpty { throw ValidationError("--checkpoint: give the checkpoint to predict with (best.h5 of a run), once per model of an ensemble") }
        if let samples, samples < 0 { throw ValidationError("--samples must be >= 0 (got \(samples))") }
    }

    func run() throws {
        // Files are read and checked on every rank before any collective.
        try WorldJob.run(preflight: { _ in try checkpoint.map { try Config.read(checkpoint: $0) } }, body: predict)
    }

    func predict(comm: Communicator, configs: [Config]) throws {
        let say: (String) -> Void = comm.isRoot ? { lflow_dist.say($0) } : { _ in }
        comm.deadline = CollectiveDeadline(seconds: configs.map(\.run.collectiveTimeoutSeconds).max() ?? 0)
        let started = Date()
        let tensors = try NLBTensors.load(path: data)
        // Every model is sized and checked against the data before any predicts. The model is
        // the checkpoint's `config`; only the chunk of trials per pass (from the training's batch,
        // as at the end of training) and the watchdog come from its `training` attribute.
        let models = try zip(checkpoint, configs).map {
            try Predictor.model(checkpoint: $0, tensors: tensors, config: $1.model, chunk: Predictor.chunkSize(batchSize: $1.train.batchSize))
        }
        let members = zip(models, configs).enumerated().map { index, pair in
            (model: pair.0, samples: samples ?? pair.1.model.predictionSamples, seed: pair.1.model.seed,
             label: models.count > 1 ? "model \(index + 1) of \(models.count) (\(checkpoint[index])): " : "")
        }
        guard let rates = try Predictor.ensemble(members, tensors: tensors, comm: comm, log: say), comm.isRoot else { return }
        let group = Submission.group(dataPath: data, tensors: tensors, explicit: datasetName)
        if let note = group.note { say(note) }
        try Submission.write(path: out, group: group.name, trainRates: rates.train, evalRates: rates.eval, dims: models[0].dims, tensors: tensors)
        say(String(format: "wrote %@: group %@, %d train and %d eval trials%@ (%.1f s)", out, group.name, tensors.trainCount,
                   tensors.evalCount, models.count > 1 ? ", the mean rates of \(models.count) models" : "", Date().timeIntervalSince(started)))
    }
}
