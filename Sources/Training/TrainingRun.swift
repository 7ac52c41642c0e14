import Data
import Distributed
import Evaluation
import Foundation
import Inference
import Model
import RunFiles
import Support

/// One complete training run in a run directory: train (resuming from the newest checkpoint
/// there), then predict every trial with the best weights over all ranks, and on rank 0
/// evaluate them on the validation split and write validation.json and the NLB submission. `train` runs one on MPI_COMM_WORLD;
/// `search` runs one per grid point on each group's sub-communicator, so a search trial is the
/// same computation as `train` with the same config at the same world size. `warmStart`
/// continues another run's checkpoint (a PBT member's parent); `evaluate: false` stops after
/// training (a PBT generation, which is scored on its validation metric alone).
public enum TrainingRun {
    public struct Outcome {
        public let trainer: Trainer
        /// Rank 0 only.
        public let report: ValidationScores?
        public let submissionPath: String
        /// Rank 0: seconds spent evaluating and writing the submission after training.
        public var evaluationSeconds = 0.0

        /// The record of `job` that this run completed: epochs, the best epoch and validation
        /// metric, the scores (rank 0) and the seconds trained and evaluated in this job.
        public func record(_ job: SearchJob) -> JobResult {
            var result = JobResult(job: job, status: .complete)
            result.epochs = trainer.history.last.map { $0.epoch + 1 }
            result.bestEpoch = trainer.bestEpoch + 1
            result.bestValidMetric = trainer.bestValidMetric
            result.validMetric = trainer.history.last?.validMetric
            result.wallSeconds = trainer.history.reduce(0) { $0 + $1.seconds } + evaluationSeconds
            if let report {
                result.coBps = report.coBps
                result.fpBps = report.fpBps
                result.velR2 = report.velR2
                result.psthR2 = report.psthR2
                result.latentR2 = report.latentR2ZV
            }
            return result
        }
    }

    /// Trains `config` in `context` and, with `evaluate`, ends the run (predictions, metrics,
    /// baseline, latents, submission). `afterEpoch` is called on every rank after each epoch;
    /// `warmStart` continues another run's checkpoint when the run directory has none (a PBT
    /// member's parent).
    public static func run(config: Config, context: RunContext, afterEpoch: ((EpochRecord) -> Void)? = nil,
                           warmStart: WarmStart? = nil, evaluate: Bool = true) throws -> Outcome {
        let started = Date()
        let comm = context.comm, tensors = context.tensors, run = context.run, log = context.log
        // precision: auto becomes float32 or bf16 here, for the whole run (and its checkpoints).
        let config = try PrecisionChoice.resolve(config, dims: DataDims(tensors), run: run, warmStart: warmStart, comm: comm, log: log)
        if comm.isRoot {
            try FileManager.default.createDirectory(atPath: run.path, withIntermediateDirectories: true)
            try config.yaml().write(toFile: run.config, atomically: true, encoding: .utf8)
        }
        let trainer = try Trainer(config: config, context: context)
        trainer.afterEpoch = afterEpoch
        trainer.latentProbe = LatentFit.probe(model: trainer.model, tensors: tensors, split: trainer.split,
                                                 truthPath: context.truth, seed: config.model.seed,
                                                 chunk: Predictor.chunkSize(batchSize: config.train.batchSize), comm: comm)
        trainer.warmStart = warmStart
        try trainer.train()
        let submission = run.submission
        guard evaluate else { return Outcome(trainer: trainer, report: nil, submissionPath: submission) }
        // A preemption signal during the end of the run stops it at the next of these points
        // (agreed over the ranks, like a step boundary): the training is in the checkpoint, and
        // the same command predicts and reports again.
        try trainer.stopIfPreempted()

        // The end of the run, on every rank: the rates of every trial once (the submission and
        // the validation report both use them), and the baseline with its neurons shared out.
        let evaluationStarted = Date()
        log("predicting every trial with the best weights (\(tensors.trainCount) train, \(tensors.evalCount) eval, \(max(config.model.predictionSamples, 1)) sample\(config.model.predictionSamples == 1 ? "" : "s"), \(comm.size) rank\(comm.size == 1 ? "" : "s"))…")
        let rates = try Predictor.all(model: trainer.model, tensors: tensors, samples: config.model.predictionSamples,
                                      seed: config.model.seed, comm: comm, log: log)
        try trainer.stopIfPreempted()
        let baselineStarted = Date()
        let baseline = try SmoothedSpikes.coBps(tensors: tensors, split: trainer.split, fingerprint: trainer.fingerprint,
                                                cacheDirectory: context.cacheDirectory ?? run.path, comm: comm)
        let baselineSeconds = Date().timeIntervalSince(baselineStarted)
        try trainer.stopIfPreempted()
        // The latent paths (deterministic mean path) of the validation trials, which the report
        // draws, and of up to 512 training trials, on which the map to the true latents is fitted.
        let fitTrials = Array(trainer.split.training.prefix(512))
        let paths = try LatentPaths.compute(model: trainer.model, tensors: tensors, trials: fitTrials + trainer.split.validation,
                                            set: .train, samples: 0, seed: config.model.seed, comm: comm)
        try trainer.stopIfPreempted()
        guard comm.isRoot, let rates, let paths else { return Outcome(trainer: trainer, report: nil, submissionPath: submission) }
        let truthFile = context.truth
        var report = try ValidationScores.compute(trainRates: rates.train, dims: trainer.dims, tensors: tensors, split: trainer.split,
                                                   baseline: baseline, truthPath: truthFile)
        let validRows = Array(fitTrials.count..<(fitTrials.count + trainer.split.validation.count))
        let mapped = LatentFit.fit(paths: paths, fitRows: Array(0..<fitTrials.count), scoreRows: validRows,
                                      fitTrials: fitTrials, scoreTrials: trainer.split.validation, truthPath: truthFile,
                                      tensors: tensors, into: &report)
        try LatentPaths.write(path: run.latents,
                              sets: [("valid", trainer.split.validation, paths.subset(validRows))],
                              extra: mapped.map { ["valid/z_mapped": $0] } ?? [:],
                              attributes: ["checkpoint": run.best, "data": context.dataPath, "truth": truthFile,
                                           "description": "deterministic mean-path latents of the validation trials (best weights)"])
        let group = Submission.group(dataPath: context.dataPath, tensors: tensors, explicit: context.datasetName)
        if let note = group.note { log(note) }
        try Submission.write(path: submission, group: group.name, trainRates: rates.train, evalRates: rates.eval,
                             dims: trainer.dims, tensors: tensors)
        report.minutes = Date().timeIntervalSince(started) / 60
        report.endOfRunSeconds = Date().timeIntervalSince(evaluationStarted)
        try JSON.write(report, to: run.validation)
        trainer.events?.scalars(step: trainer.history.last.map { $0.epoch + 1 } ?? 0, report.scalars)
        log(String(format: "end of run (predictions, metrics, baseline, submission): %.1f s, of which the smoothed-spikes baseline %.2f s", report.endOfRunSeconds ?? 0, baselineSeconds))
        return Outcome(trainer: trainer, report: report, submissionPath: submission,
                       evaluationSeconds: Date().timeIntervalSince(evaluationStarted))
    }
}
