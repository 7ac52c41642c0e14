import ArgumentParser
import Checkpoint
import Data
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

        Example:
          lflow-dist predict --checkpoint Checkpoints/lorenz/best.h5 --data Checkpoints/lorenz.h5 --out sub.h5 --samples 50
        """)

    @Option(help: ArgumentHelp("Checkpoint (best.h5 of a run, or one written by init).", valueName: "ckpt.h5"))
    var checkpoint: String

    @Option(help: ArgumentHelp("NLB tensor file with the trials to predict.", valueName: "file.h5"))
    var data: String

    @Option(help: ArgumentHelp("Submission file to write.", valueName: "sub.h5"))
    var out: String

    @Option(help: "Stochastic passes to average in log-rate space; 0 = deterministic mean path. Default: the checkpoint config's predictionSamples.")
    var samples: Int?

    @Option(help: ArgumentHelp("Group name, e.g. mc_maze_20. Default: the data file's dataset_name attribute, else its file name.", valueName: "name"))
    var datasetName: String?

    func validate() throws {
        if let samples, samples < 0 { throw ValidationError("--samples must be >= 0 (got \(samples))") }
    }

    func run() throws {
        let config = try CheckpointIO.readConfig(path: checkpoint)
        let tensors = try NLBTensors.load(path: data)
        let model = LangevinFlow<Float>(config: config, dims: DataDims(tensors), maxBatch: min(config.batchSize, 256))
        try CheckpointIO.read(path: checkpoint, into: model.params.values, layout: model.params.layout)
        let group = datasetName ?? Submission.defaultGroup(dataPath: data)
        try Submission.write(path: out, group: group, model: model, tensors: tensors,
                             samples: samples ?? config.predictionSamples, seed: config.seed)
        print("wrote \(out): group \(group), \(tensors.trainCount) train and \(tensors.evalCount) eval trials")
    }
}
