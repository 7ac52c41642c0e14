import Checkpoint
import Data
import Distributed
import Foundation
import HDF5
import Kernels
import Model
import RunFiles
import Support

/// Checkpoint cadence and resume: what the trainer writes into a resumable checkpoint (its
/// state, the optimiser's and the scheduler's) and how it continues from the newest one. The
/// files themselves (names, tensors, clean-up) are `RunCheckpoints`'.
extension Trainer {
    var checkpoints: RunCheckpoints { RunCheckpoints(run) }

    /// Resumable checkpoints in the run directory, newest (highest step) first.
    func checkpointPaths() -> [String] { checkpoints.paths() }

    /// True on every rank when any rank received SIGTERM/SIGUSR1 (one tiny allreduce per step).
    func stepAgreement(lossFinite: Bool) throws -> (preempted: Bool, nonFinite: Bool) {
        var flags = [Preemption.requested ? 1.0 : 0.0, lossFinite ? 0 : 1]
        try flags.withUnsafeMutableBufferPointer { try comm.allreduceMax($0.baseAddress!, count: 2) }
        return (flags[0] > 0, flags[1] > 0)
    }

    /// Between the phases of the end of a run (every rank calls it): when any rank received
    /// SIGTERM/SIGUSR1, throws `Preempted` on every rank. Training is complete by then, in the
    /// newest checkpoint, so the same command only predicts and reports again.
    func stopIfPreempted() throws {
        guard try stepAgreement(lossFinite: true).preempted else { return }
        let path = checkpointPaths().first ?? run.best
        log("preempted at the end of the run, after training: \(path) holds it all. Run the same command again to predict and report.")
        throw Preempted(checkpoint: path)
    }

    /// Rank 0 writes `ckpt-<step>.h5` atomically with everything needed to continue bit for
    /// bit, then keeps the newest `keepCheckpoints`. Returns the path.
    @discardableResult
    func saveCheckpoint(_ state: TrainerState) throws -> String {
        let path = checkpoints.path(step: step)
        guard comm.isRoot else { return path }
        let layout = model.params.layout
        let stateJSON = try JSON.string(state)
        let schedulerJSON = try JSON.string(scheduler)
        try CheckpointIO.write(path: path, config: config.model, training: config.trainingJSON()) { file in
            try RunCheckpoints.writeTensors(to: file, layout: layout, parameters: self.model.params.values, adam: self.adam, best: self.bestParameters,
                                   average: self.average?.values)
            try file.writeAttribute("step", int: Int64(self.step))
            try file.writeAttribute("optimizer_step", int: Int64(self.adam.step))
            try file.writeAttribute("epoch", int: Int64(state.epoch))
            try file.writeAttribute("world_size", int: Int64(self.comm.size))
            try file.writeAttribute("data_fingerprint", string: fingerprint)
            try file.writeAttribute("data_path", string: self.tensors.path)
            let cursor = state.epoch * self.trainingKeys.count + min(state.batchCursor * self.config.train.batchSize, self.trainingKeys.count)
            try file.writeAttribute("sampler_cursor", int: Int64(cursor))
            try file.writeAttribute("scheduler", string: schedulerJSON)
            try file.writeAttribute("learning_rate", double: self.scheduler.learningRate)
            try file.writeAttribute("best_valid_metric", double: self.bestValidMetric)
            try file.writeAttribute("best_epoch", int: Int64(self.bestEpoch))
            try file.writeAttribute("trainer_state", string: stateJSON)
        }
        checkpoints.prune(keeping: config.run.keepCheckpoints)
        return path
    }

    /// Restores the newest checkpoint of the run directory that loads and verifies; a corrupt
    /// or truncated one is skipped with a warning naming it. Returns nil for a fresh run.
    /// Every rank reads the same file, so every replica resumes identically.
    func resumeFromNewestCheckpoint() throws -> TrainerState? {
        let candidates = checkpointPaths()
        guard !candidates.isEmpty else { return nil }
        for path in candidates {
            do {
                return try load(checkpoint: path, adjustable: [])
            } catch let error as TrainingError {
                throw error
            } catch {
                log("warning: skipping a checkpoint that cannot be used: \(error)")
            }
        }
        throw TrainingError("no checkpoint in '\(run)' could be loaded (tried \(candidates.count)); see the warnings above. Move them away to start afresh.")
    }

    /// Restores everything training needs from the resumable checkpoint at `path` (written by
    /// this run or, for a `WarmStart`, by another): weights, Adam, the best weights, the weight
    /// average, the scheduler and the step counters. The checkpoint's config must equal this
    /// one except in run-management fields and in `adjustable` (PBT's explored fields); when
    /// the learning rate is among the changed ones, the scheduler continues from the new value.
    func load(checkpoint path: String, adjustable: Set<String>) throws -> TrainerState {
        let file = try H5File.open(path)
        let stored = try Config.read(checkpoint: path)
        // Fields that manage the run rather than shape its trajectory so far may change
        // between the interrupted run and the resumed one (e.g. more epochs).
        let differing = Config.fields.filter {
            !Config.runManagementFields.contains($0.name) && !adjustable.contains($0.name) && $0.get(config) != $0.get(stored)
        }
        guard differing.isEmpty else {
            let what = differing.map { "\($0.name): \($0.get(stored)) in the checkpoint, \($0.get(config)) now" }
            throw TrainingError(adjustable.isEmpty
                ? "the run directory '\(run)' holds checkpoints of another config (\(what.joined(separator: "; "))). Use the same config to resume, or another --run-dir to start afresh."
                : "'\(path)' was written with another config (\(what.joined(separator: "; "))), and only \(adjustable.sorted().joined(separator: ", ")) may change when training continues from it.")
        }
        let theirFingerprint = try file.readAttributeString("data_fingerprint")
        guard theirFingerprint == fingerprint else {
            throw TrainingError("'\(path)' was trained on other data (fingerprint \(theirFingerprint), '\(tensors.path)' is \(fingerprint)). Use the same data file to resume, or another --run-dir.")
        }
        let layout = model.params.layout
        try RunCheckpoints.readTensors(path: path, layout: layout, parameters: model.params.values, adam: adam,
                                       best: bestParameters, average: average?.values)
        let state = try JSON.decode(TrainerState.self, from: try file.readAttributeString("trainer_state"))
        scheduler = try JSON.decode(PlateauScheduler.self, from: try file.readAttributeString("scheduler"))
        if stored.train.learningRate != config.train.learningRate { scheduler.learningRate = config.train.learningRate }
        step = Int(try file.readAttributeInt("step"))
        adam.step = Int(try file.readAttributeInt("optimizer_step"))
        bestValidMetric = try file.readAttributeDouble("best_valid_metric")
        bestEpoch = Int(try file.readAttributeInt("best_epoch"))
        let worldSize = Int(try file.readAttributeInt("world_size"))
        let verb = adjustable.isEmpty ? "resuming from" : "continuing from"
        log("\(verb) \(path): epoch \(state.epoch + 1), step \(step)" + (worldSize == comm.size ? "" : " (written by \(worldSize) ranks, continuing on \(comm.size): same data cursor and optimiser state, not bit-identical)"))
        return state
    }

    /// Keeps the first `epochs` lines of metrics.jsonl (those a resumed run has already done).
    func keepMetricsLines(_ epochs: Int) throws {
        let existing = (try? String(contentsOfFile: run.metrics, encoding: .utf8)) ?? ""
        let lines = existing.split(separator: "\n", omittingEmptySubsequences: true).prefix(epochs)
        history = EpochRecord.records(lines: lines)
        try (lines.map { $0 + "\n" }.joined()).write(toFile: run.metrics, atomically: true, encoding: .utf8)
    }
}
