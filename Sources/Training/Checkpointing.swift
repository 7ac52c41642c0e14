import Checkpoint
import Data
import Distributed
import Foundation
import HDF5
import Kernels
import Model

/// Sums of the epoch in progress, for its logged training loss.
public struct EpochSums: Codable, Equatable, Sendable {
    public var reconstruction = 0.0
    public var kl = 0.0
    public var observed = 0
    public var trials = 0
    public var normSum = 0.0
    public var batches = 0
}

/// Where training stands, besides the tensors: enough to continue bit for bit.
public struct TrainerState: Codable, Equatable, Sendable {
    /// The epoch in progress (or the next one when `batchCursor` is 0).
    public var epoch: Int
    /// Global batches of `epoch` already taken (the data cursor; the same at any world size).
    public var batchCursor: Int
    public var partial: EpochSums
    /// Seconds of training (whole epochs, with validation and checkpoints) over every session.
    public var trainingSeconds: Double?
    /// With `maxMinutes`: the epochs planned to fit in the budget (nil until planned).
    public var plannedEpochs: Int?

    public init(epoch: Int, batchCursor: Int, partial: EpochSums, trainingSeconds: Double? = nil, plannedEpochs: Int? = nil) {
        self.epoch = epoch
        self.batchCursor = batchCursor
        self.partial = partial
        self.trainingSeconds = trainingSeconds
        self.plannedEpochs = plannedEpochs
    }
}

/// Training stopped at a step boundary because of SIGTERM or SIGUSR1; a checkpoint was written.
public struct Preempted: Error, CustomStringConvertible {
    public let checkpoint: String
    /// The exit status that tells a wrapper to requeue the job (EX_TEMPFAIL).
    public static let exitCode: Int32 = 75
    public var description: String { "preempted; resume from \(checkpoint) by running the same command again" }
}

/// Fault injection for the one kill a test cannot place from outside: in the middle of a
/// checkpoint write (`LFLOW_TEST_KILL_DURING_CHECKPOINT=N`: SIGKILL inside the N-th write).
/// Kills at any other moment are real SIGKILLs sent by the tests.
enum TestHooks {
    static let killDuringCheckpoint = ProcessInfo.processInfo.environment["LFLOW_TEST_KILL_DURING_CHECKPOINT"].flatMap(Int.init)
    nonisolated(unsafe) static var checkpointsWritten = 0
}

extension Trainer {
    static let checkpointPrefix = "ckpt-"
    static let jsonEncoder: JSONEncoder = {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys]
        e.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        return e
    }()
    static let jsonDecoder: JSONDecoder = {
        let d = JSONDecoder()
        d.nonConformingFloatDecodingStrategy = .convertFromString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        return d
    }()

    /// Resumable checkpoints in the run directory, newest (highest step) first.
    func checkpointPaths() -> [String] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: runDirectory)) ?? []
        return names.filter { $0.hasPrefix(Self.checkpointPrefix) && $0.hasSuffix(".h5") }.sorted(by: >)
            .map { runDirectory + "/" + $0 }
    }

    /// True on every rank when any rank received SIGTERM/SIGUSR1 (one tiny allreduce per step).
    func stepAgreement(lossFinite: Bool) throws -> (preempted: Bool, nonFinite: Bool) {
        var flags = [Preemption.requested ? 1.0 : 0.0, lossFinite ? 0 : 1]
        try flags.withUnsafeMutableBufferPointer { try comm.allreduceMax($0.baseAddress!, count: 2) }
        return (flags[0] > 0, flags[1] > 0)
    }

    /// The tensors of a resumable checkpoint: parameters, both Adam moments, the best weights
    /// and the weight average (when on), each a group of PyTorch names. (`bench` times exactly
    /// this.)
    static func writeTensors(to file: H5File, layout: ParameterLayout, parameters: Buffer<Float>, adam: Adam<Float>,
                             best: Buffer<Float>, average: Buffer<Float>? = nil) throws {
        try CheckpointIO.writeGroup("model", of: parameters, layout: layout, to: file)
        try CheckpointIO.writeGroup("optimizer/exp_avg", of: adam.exp_avg, layout: layout, to: file)
        TestHooks.checkpointsWritten += 1
        if TestHooks.checkpointsWritten == TestHooks.killDuringCheckpoint { kill(getpid(), SIGKILL) }
        try CheckpointIO.writeGroup("optimizer/exp_avg_sq", of: adam.exp_avg_sq, layout: layout, to: file)
        try CheckpointIO.writeGroup("best_model", of: best, layout: layout, to: file)
        if let average { try CheckpointIO.writeGroup("weight_average", of: average, layout: layout, to: file) }
    }

    /// Rank 0 writes `ckpt-<step>.h5` atomically with everything needed to continue bit for
    /// bit, then keeps the newest `keepCheckpoints`. Returns the path.
    @discardableResult
    func saveCheckpoint(_ state: TrainerState) throws -> String {
        let path = runDirectory + "/" + Self.checkpointPrefix + String(format: "%010d", step) + ".h5"
        guard comm.isRoot else { return path }
        let layout = model.params.layout
        let stateJSON = String(decoding: try Self.jsonEncoder.encode(state), as: UTF8.self)
        let schedulerJSON = String(decoding: try Self.jsonEncoder.encode(scheduler), as: UTF8.self)
        try CheckpointIO.write(path: path, config: config) { file in
            try Self.writeTensors(to: file, layout: layout, parameters: self.model.params.values, adam: self.adam, best: self.bestParameters,
                                   average: self.average?.values)
            try file.writeAttribute("step", int: Int64(self.step))
            try file.writeAttribute("optimizer_step", int: Int64(self.adam.step))
            try file.writeAttribute("epoch", int: Int64(state.epoch))
            try file.writeAttribute("world_size", int: Int64(self.comm.size))
            try file.writeAttribute("data_fingerprint", string: fingerprint)
            try file.writeAttribute("data_path", string: self.tensors.path)
            let cursor = state.epoch * self.trainingKeys.count + min(state.batchCursor * self.config.batchSize, self.trainingKeys.count)
            try file.writeAttribute("sampler_cursor", int: Int64(cursor))
            try file.writeAttribute("scheduler", string: schedulerJSON)
            try file.writeAttribute("learning_rate", double: self.scheduler.learningRate)
            try file.writeAttribute("best_valid_metric", double: self.bestValidLoss)
            try file.writeAttribute("best_epoch", int: Int64(self.bestEpoch))
            try file.writeAttribute("trainer_state", string: stateJSON)
        }
        for old in checkpointPaths().dropFirst(config.keepCheckpoints) { try? FileManager.default.removeItem(atPath: old) }
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
                let file = try H5File.open(path)
                let stored = try CheckpointIO.readConfig(path: path)
                // Fields that manage the run rather than shape its trajectory so far may change
                // between the interrupted run and the resumed one (e.g. more epochs).
                let differing = Config.fields.filter { !Config.runManagementFields.contains($0.name) && $0.get(config) != $0.get(stored) }
                guard differing.isEmpty else {
                    let what = differing.map { "\($0.name): \($0.get(stored)) in the checkpoint, \($0.get(config)) now" }
                    throw TrainingError("the run directory '\(runDirectory)' holds checkpoints of another config (\(what.joined(separator: "; "))). Use the same config to resume, or another --run-dir to start afresh.")
                }
                let theirFingerprint = try file.readAttributeString("data_fingerprint")
                guard theirFingerprint == fingerprint else {
                    throw TrainingError("'\(path)' was trained on other data (fingerprint \(theirFingerprint), '\(tensors.path)' is \(fingerprint)). Use the same data file to resume, or another --run-dir.")
                }
                let layout = model.params.layout
                try CheckpointIO.readGroup("model", path: path, into: model.params.values, layout: layout)
                try CheckpointIO.readGroup("optimizer/exp_avg", path: path, into: adam.exp_avg, layout: layout)
                try CheckpointIO.readGroup("optimizer/exp_avg_sq", path: path, into: adam.exp_avg_sq, layout: layout)
                try CheckpointIO.readGroup("best_model", path: path, into: bestParameters, layout: layout)
                if let average { try CheckpointIO.readGroup("weight_average", path: path, into: average.values, layout: layout) }
                let state = try Self.jsonDecoder.decode(TrainerState.self, from: Data(try file.readAttributeString("trainer_state").utf8))
                scheduler = try Self.jsonDecoder.decode(PlateauScheduler.self, from: Data(try file.readAttributeString("scheduler").utf8))
                step = Int(try file.readAttributeInt("step"))
                adam.step = Int(try file.readAttributeInt("optimizer_step"))
                bestValidLoss = try file.readAttributeDouble("best_valid_metric")
                bestEpoch = Int(try file.readAttributeInt("best_epoch"))
                let worldSize = Int(try file.readAttributeInt("world_size"))
                log("resuming from \(path): epoch \(state.epoch + 1), step \(step)" + (worldSize == comm.size ? "" : " (written by \(worldSize) ranks, continuing on \(comm.size): same data cursor and optimiser state, not bit-identical)"))
                return state
            } catch let error as TrainingError {
                throw error
            } catch {
                log("warning: skipping a checkpoint that cannot be used: \(error)")
            }
        }
        throw TrainingError("no checkpoint in '\(runDirectory)' could be loaded (tried \(candidates.count)); see the warnings above. Move them away to start afresh.")
    }

    /// Rank 0, at start: removes what a killed run left half written (the temporary files of
    /// atomic writes: `.<name>.tmp-<pid>` of checkpoints, `.dat.nosync*` of Foundation's), so
    /// every file in the run directory is a complete one.
    func removeStaleTemporaries() {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: runDirectory)) ?? []
        for name in names where name.hasPrefix(".") && (name.contains(".tmp-") || name.hasPrefix(".dat.nosync")) {
            try? FileManager.default.removeItem(atPath: runDirectory + "/" + name)
        }
    }

    /// Keeps the first `epochs` lines of metrics.jsonl (those a resumed run has already done).
    func keepMetricsLines(_ epochs: Int) throws {
        let existing = (try? String(contentsOfFile: metricsPath, encoding: .utf8)) ?? ""
        let lines = existing.split(separator: "\n", omittingEmptySubsequences: true).prefix(epochs)
        history = lines.compactMap { try? JSONDecoder().decode(EpochRecord.self, from: Data($0.utf8)) }
        try (lines.map { $0 + "\n" }.joined()).write(toFile: metricsPath, atomically: true, encoding: .utf8)
    }
}
