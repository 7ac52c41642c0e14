import Checkpoint
import Data
import Distributed
import Foundation
import HDF5
import Kernels
import Model
import Support

/// The latent paths of a model for many trials: z_t, v_t (second order), the encoder state h_t
/// and the force f(z_t) = A z_t, each (trials, T+F, H), over every rank of a communicator (the
/// same chunking as `Predictor`, so the result does not depend on the world size).
public enum LatentPaths {
    public struct Paths {
        public var trials: Int, steps: Int, hidden: Int
        public var z: [Float], v: [Float], h: [Float], force: [Float]    // (trials, steps, H) each

        /// The paths of the given trials (positions in this set).
        public func subset(_ rows: [Int]) -> Paths {
            let width = steps * hidden
            func pick(_ values: [Float]) -> [Float] {
                values.isEmpty ? [] : rows.flatMap { values[($0 * width)..<(($0 + 1) * width)] }
            }
            return Paths(trials: rows.count, steps: steps, hidden: hidden, z: pick(z), v: pick(v), h: pick(h), force: pick(force))
        }

        /// Rows (trial, step) of one part, as Double, for fitting.
        public func rows(_ part: KeyPath<Paths, [Float]>, trials subset: [Int]? = nil) -> [Double] {
            let values = self[keyPath: part], width = steps * hidden
            guard let subset else { return values.map(Double.init) }
            return subset.flatMap { i in values[(i * width)..<((i + 1) * width)].map(Double.init) }
        }
    }

    /// Posterior-mean latents of `trials` of one set on rank 0 (nil elsewhere): `samples` = 0
    /// is the deterministic mean path (no noise, no dropout: what `inspect` computes); N > 0
    /// averages N sampled paths (posterior and Langevin noise, no dropout). `chunk`: trials per
    /// forward pass (`Predictor.chunkSize`; at most the model's `maxBatch`, which is the default).
    public static func compute(model: LangevinFlow<Float>, tensors: NLBTensors, trials: [Int], set: TrialSet,
                               samples: Int, seed: Int, chunk: Int? = nil, comm: Communicator) throws -> Paths? {
        let steps = model.dims.steps, h = model.config.hidden, width = steps * h
        let batch = Batch<Float>(dims: model.dims, capacity: model.maxBatch)
        let all = try Predictor.distributed(trials: trials, chunk: min(chunk ?? model.maxBatch, model.maxBatch), width: 4 * width, comm: comm) { chunk in
            let b = chunk.count
            batch.load(trials: chunk, split: set, from: tensors)
            var sums = [Double](repeating: 0, count: b * 3 * width)
            let keys = Predictor.noiseKeys(chunk, set: set, tensors: tensors)
            let passes = max(samples, 1)
            for sample in 0..<passes {
                let noise = NoiseContext.predictionPass(sample, of: samples, seed: seed, trialIndices: keys)
                model.forward(batch, noise: noise, klWeight: 0)
                // (steps, b, H) time-major → (b, steps, H) per part.
                for (part, source) in [model.dynamics.positions, model.dynamics.velocities, model.states].enumerated() {
                    guard source.count > 0 else { continue }
                    for t in 0..<steps {
                        for j in 0..<b {
                            for k in 0..<h { sums[(part * b + j) * width + t * h + k] += Double(source[(t * b + j) * h + k]) }
                        }
                    }
                }
            }
            var out = [Float](repeating: 0, count: b * 4 * width)
            for j in 0..<b {
                for part in 0..<3 {
                    for i in 0..<width { out[(j * 4 + part) * width + i] = Float(sums[(part * b + j) * width + i] / Double(passes)) }
                }
            }
            // The force of the mean path: f = z A (A symmetric), per trial.
            let a = model.forceMatrix
            for j in 0..<b {
                out.withUnsafeMutableBufferPointer { o in
                    Float.gemm(transA: false, transB: false, m: steps, n: h, k: h, alpha: 1, a: o.baseAddress! + (j * 4) * width, lda: h,
                               b: a, ldb: h, beta: 0, c: o.baseAddress! + (j * 4 + 3) * width, ldc: h)
                }
            }
            return out
        }
        guard let all else { return nil }
        var paths = Paths(trials: trials.count, steps: steps, hidden: h, z: [], v: [], h: [], force: [])
        for (part, keyPath) in [\Paths.z, \Paths.v, \Paths.h, \Paths.force].enumerated() {
            var values = [Float](repeating: 0, count: trials.count * width)
            for j in 0..<trials.count {
                for i in 0..<width { values[j * width + i] = all[(j * 4 + part) * width + i] }
            }
            paths[keyPath: keyPath as WritableKeyPath<Paths, [Float]>] = values
        }
        if model.config.dynamics == .firstOrder { paths.v = [] }
        return paths
    }

    /// Writes `paths` of each set as `<set>/z`, `<set>/v`, `<set>/h`, `<set>/force` (trials, T+F, H)
    /// and `<set>/trials` (the trial indices into the data file), atomically.
    public static func write(path: String, sets: [(name: String, trials: [Int], paths: Paths)], extra: [String: Tensor3] = [:],
                             attributes: [String: String]) throws {
        try AtomicFile.write(path) { temporary in
            let file = try H5File.create(temporary)
            for (name, trials, paths) in sets {
                let shape = [paths.trials, paths.steps, paths.hidden]
                try file.write("\(name)/z", shape: shape, floats: paths.z)
                if !paths.v.isEmpty { try file.write("\(name)/v", shape: shape, floats: paths.v) }
                try file.write("\(name)/h", shape: shape, floats: paths.h)
                try file.write("\(name)/force", shape: shape, floats: paths.force)
                try file.write("\(name)/trials", shape: [trials.count], int64s: trials.map(Int64.init))
            }
            for (key, t) in extra.sorted(by: { $0.key < $1.key }) { try file.write(key, shape: t.shape, floats: t.values) }
            for (key, value) in attributes.sorted(by: { $0.key < $1.key }) { try file.writeAttribute(key, string: value) }
            try file.flush()
        }
    }
}
