import Foundation
import HDF5
import Kernels
import Model
import RunFiles

/// The resumable checkpoints of a run directory, `ckpt-<step>.h5`: their names, the newest
/// first, the tensors each holds, and the clean-up of what a killed run left half written.
/// What a checkpoint means for training (its state, when to write one) is the trainer's.
public struct RunCheckpoints {
    public let run: RunDirectory
    var directory: String { run.path }

    public init(_ run: RunDirectory) { self.run = run }

    /// The checkpoint written after `step` optimiser steps.
    public func path(step: Int) -> String { run.checkpoint(step: step) }

    /// The checkpoints of the directory, newest (highest step) first.
    public func paths() -> [String] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        return names.filter { $0.hasPrefix(RunDirectory.checkpointPrefix) && $0.hasSuffix(".h5") }.sorted(by: >).map { directory + "/" + $0 }
    }

    /// Removes all but the newest `keep`.
    public func prune(keeping keep: Int) {
        for old in paths().dropFirst(keep) { try? FileManager.default.removeItem(atPath: old) }
    }

    /// Removes what a killed run left half written (the temporary files of atomic writes:
    /// `.<name>.tmp-<pid>`, and Foundation's `.dat.nosync*`), so every file in the directory
    /// is a complete one.
    public func removeStaleTemporaries() {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        for name in names where name.hasPrefix(".") && (name.contains(".tmp-") || name.hasPrefix(".dat.nosync")) {
            try? FileManager.default.removeItem(atPath: directory + "/" + name)
        }
    }

    /// The tensors of a resumable checkpoint: parameters, both Adam moments, the best weights
    /// and the weight average (when on), each a group of PyTorch names. (`bench` times exactly
    /// this.)
    public static func writeTensors(to file: H5File, layout: ParameterLayout, parameters: Buffer<Float>, adam: Adam<Float>,
                                    best: Buffer<Float>, average: Buffer<Float>? = nil) throws {
        try CheckpointIO.writeGroup("model", of: parameters, layout: layout, to: file)
        try CheckpointIO.writeGroup("optimizer/exp_avg", of: adam.exp_avg, layout: layout, to: file)
        try CheckpointIO.writeGroup("optimizer/exp_avg_sq", of: adam.exp_avg_sq, layout: layout, to: file)
        try CheckpointIO.writeGroup("best_model", of: best, layout: layout, to: file)
        if let average { try CheckpointIO.writeGroup("weight_average", of: average, layout: layout, to: file) }
    }

    /// Reads what `writeTensors` wrote, checking names, shapes and checksums.
    public static func readTensors(path: String, layout: ParameterLayout, parameters: Buffer<Float>, adam: Adam<Float>,
                                   best: Buffer<Float>, average: Buffer<Float>?) throws {
        try CheckpointIO.readGroup("model", path: path, into: parameters, layout: layout)
        try CheckpointIO.readGroup("optimizer/exp_avg", path: path, into: adam.exp_avg, layout: layout)
        try CheckpointIO.readGroup("optimizer/exp_avg_sq", path: path, into: adam.exp_avg_sq, layout: layout)
        try CheckpointIO.readGroup("best_model", path: path, into: best, layout: layout)
        if let average { try CheckpointIO.readGroup("weight_average", path: path, into: average, layout: layout) }
    }
}
