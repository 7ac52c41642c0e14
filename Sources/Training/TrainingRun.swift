import Data
import Distributed
import Foundation
import Model

/// One complete training run in a run directory: train (resuming from the newest checkpoint
/// there), then, on the communicator's rank 0, evaluate the best weights on the validation split
/// and write validation.json and the NLB submission. `train` runs one on MPI_COMM_WORLD;
/// `search` runs one per grid point on each group's sub-communicator, so a search trial is the
/// same computation as `train` with the same config at the same world size.
public enum TrainingRun {
    public struct Outcome {
        public let trainer: Trainer
        /// Rank 0 only.
        public let report: ValidationReport?
        public let submissionPath: String
        /// Rank 0: seconds spent evaluating and writing the submission after training.
        public var evaluationSeconds = 0.0
    }

    public static func run(config: Config, tensors: NLBTensors, dataPath: String, runDirectory: String,
                           datasetName: String?, comm: Communicator, log: @escaping (String) -> Void,
                           afterEpoch: ((EpochRecord) -> Void)? = nil) throws -> Outcome {
        let started = Date()
        if comm.isRoot {
            try FileManager.default.createDirectory(atPath: runDirectory, withIntermediateDirectories: true)
            try ConfigFile.yaml(config).write(toFile: runDirectory + "/config.yaml", atomically: true, encoding: .utf8)
        }
        let trainer = try Trainer(config: config, tensors: tensors, runDirectory: runDirectory, comm: comm, log: log)
        trainer.afterEpoch = afterEpoch
        try trainer.train()
        let submission = runDirectory + "/submission.h5"
        // The end-of-run report and the submission are rank 0's alone.
        guard comm.isRoot else { return Outcome(trainer: trainer, report: nil, submissionPath: submission) }

        let evaluationStarted = Date()
        log("evaluating the best weights on the validation split (\(config.predictionSamples) samples)…")
        var report = try Reporter.validationReport(model: trainer.model, tensors: tensors, split: trainer.split,
                                                   samples: config.predictionSamples, seed: config.seed, truthPath: dataPath)
        try Submission.write(path: submission, group: datasetName ?? Submission.defaultGroup(dataPath: dataPath),
                             model: trainer.model, tensors: tensors, samples: config.predictionSamples, seed: config.seed)
        report.minutes = Date().timeIntervalSince(started) / 60
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try encoder.encode(report).write(to: URL(fileURLWithPath: runDirectory + "/validation.json"), options: .atomic)
        return Outcome(trainer: trainer, report: report, submissionPath: submission,
                       evaluationSeconds: Date().timeIntervalSince(evaluationStarted))
    }
}
