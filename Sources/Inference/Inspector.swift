import Checkpoint
import Data
import Foundation
import HDF5
import Kernels
import Model
import Support

/// `lflow-dist inspect`: the llm.c-style debug state of one deterministic forward and backward.
public enum Inspector {
    public struct Result {
        public var loss: LossValues
        public var trials: Int
    }

    /// Loads `checkpoint`, runs the first `trials` training trials of `dataPath` in deterministic
    /// mode in Double precision, and writes log-rates, latents, loss parts and gradients to `out`.
    public static func run(checkpoint: String, dataPath: String, trials: Int, out: String) throws -> Result {
        let config = try CheckpointIO.readConfig(path: checkpoint)
        let tensors = try NLBTensors.load(path: dataPath)
        guard trials > 0 && trials <= tensors.trainCount else {
            throw InspectError("--trials \(trials) is out of range: '\(dataPath)' has \(tensors.trainCount) training trials")
        }
        let dims = DataDims(tensors)
        let model = LangevinFlow<Double>(config: config, dims: dims, maxBatch: trials)
        try CheckpointIO.read(path: checkpoint, into: model.params.values, layout: model.params.layout)

        let batch = Batch<Double>(dims: dims, capacity: trials)
        batch.load(trials: Array(0..<trials), split: .train, from: tensors)
        let loss = model.forward(batch, noise: .deterministic(batch: trials), klWeight: config.klWeight)
        model.params.grads.zero()
        model.backward()

        let steps = dims.steps, d = config.decoderWidth, nOut = dims.outputs
        let file = try H5File.create(out)
        try file.write("log_rates", shape: [trials, steps, nOut],
                       doubles: trialMajor(model.logRates.ptr, steps: steps, batch: trials, width: nOut))
        try file.write("latents", shape: [trials, steps, d],
                       doubles: trialMajor(model.latents.ptr, steps: steps, batch: trials, width: d))
        try file.write("loss/reconstruction", shape: [], doubles: [loss.reconstruction])
        try file.write("loss/kl", shape: [], doubles: [loss.kl])
        try file.write("loss/total", shape: [], doubles: [loss.total])
        for entry in model.params.layout.entries {
            let g = Array(UnsafeBufferPointer(start: model.params.grads.ptr + entry.offset, count: entry.count))
            try file.write("grad/\(entry.name)", shape: entry.shape, doubles: g)
        }
        try file.writeAttribute("config", string: config.json())
        try file.writeAttribute("mode", string: "deterministic (no dropout, no coordinated dropout, mean path), float64")
        return Result(loss: loss, trials: trials)
    }

    /// (steps, B, W) time-major → (B, steps, W) trial-major.
    static func trialMajor(_ p: UnsafePointer<Double>, steps: Int, batch: Int, width: Int) -> [Double] {
        var out = [Double](repeating: 0, count: steps * batch * width)
        for t in 0..<steps {
            for b in 0..<batch {
                for w in 0..<width { out[(b * steps + t) * width + w] = p[(t * batch + b) * width + w] }
            }
        }
        return out
    }
}

public enum InspectFailure {}
public typealias InspectError = Failure<InspectFailure>
