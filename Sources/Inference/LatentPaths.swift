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
        /// What the readout multiplies (`LangevinFlow.factors`)      // (trials, steps, factorCount)
        public var factorCount: Int = 0
        public var factors: [Float] = []

        /// The paths of the given trials (positions in this set).
        public func subset(_ rows: [Int]) -> Paths {
            let width = steps * hidden
            func pick(_ values: [Float], _ width: Int) -> [Float] {
                values.isEmpty ? [] : rows.flatMap { values[($0 * width)..<(($0 + 1) * width)] }
            }
            return Paths(trials: rows.count, steps: steps, hidden: hidden, z: pick(z, width), v: pick(v, width), h: pick(h, width),
                         force: pick(force, width), factorCount: factorCount, factors: pick(factors, steps * factorCount))
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
        let f = model.factors.width, factorWidth = steps * f
        // Per trial: z, v, h, force (width each), then the factors (factorWidth).
        let perTrial = 4 * width + factorWidth
        let batch = Batch<Float>(dims: model.dims, capacity: model.maxBatch)
        let all = try Predictor.distributed(trials: trials, chunk: min(chunk ?? model.maxBatch, model.maxBatch), width: perTrial, comm: comm) { chunk in
            let b = chunk.count
            batch.load(trials: chunk, split: set, from: tensors)
            var sums = [Double](repeating: 0, count: b * (3 * width + factorWidth))
            let keys = Predictor.noiseKeys(chunk, set: set, tensors: tensors)
            let passes = max(samples, 1)
            for sample in 0..<passes {
                let noise = NoiseContext.predictionPass(sample, of: samples, seed: seed, trialIndices: keys)
                model.forward(batch, noise: noise, klWeight: 0)
                // (steps, b, K) time-major → (b, steps, K) per part.
                let parts: [(UnsafePointer<Float>?, Int, Int)] = [
                    (model.dynamics.positions.count > 0 ? UnsafePointer(model.dynamics.positions.ptr) : nil, h, 0),
                    (model.dynamics.velocities.count > 0 ? UnsafePointer(model.dynamics.velocities.ptr) : nil, h, b * width),
                    (model.states.count > 0 ? UnsafePointer(model.states.ptr) : nil, h, 2 * b * width),
                    (UnsafePointer(model.factors.values), f, 3 * b * width),
                ]
                for (source, k, base) in parts {
                    guard let source else { continue }
                    for t in 0..<steps {
                        for j in 0..<b {
                            for c in 0..<k { sums[base + j * steps * k + t * k + c] += Double(source[(t * b + j) * k + c]) }
                        }
                    }
                }
            }
            var out = [Float](repeating: 0, count: b * perTrial)
            for j in 0..<b {
                for part in 0..<3 {
                    for i in 0..<width { out[j * perTrial + part * width + i] = Float(sums[(part * b + j) * width + i] / Double(passes)) }
                }
                for i in 0..<factorWidth { out[j * perTrial + 4 * width + i] = Float(sums[3 * b * width + j * factorWidth + i] / Double(passes)) }
            }
            // The force of the mean path: f = z A (A symmetric), per trial.
            let a = model.forceMatrix
            for j in 0..<b {
                out.withUnsafeMutableBufferPointer { o in
                    Float.gemm(transA: false, transB: false, m: steps, n: h, k: h, alpha: 1, a: o.baseAddress! + j * perTrial, lda: h,
                               b: a, ldb: h, beta: 0, c: o.baseAddress! + j * perTrial + 3 * width, ldc: h)
                }
            }
            return out
        }
        guard let all else { return nil }
        var paths = Paths(trials: trials.count, steps: steps, hidden: h, z: [], v: [], h: [], force: [], factorCount: f, factors: [])
        for (part, keyPath) in [\Paths.z, \Paths.v, \Paths.h, \Paths.force].enumerated() {
            var values = [Float](repeating: 0, count: trials.count * width)
            for j in 0..<trials.count {
                for i in 0..<width { values[j * width + i] = all[j * perTrial + part * width + i] }
            }
            paths[keyPath: keyPath as WritableKeyPath<Paths, [Float]>] = values
        }
        paths.factors = (0..<trials.count).flatMap { j in all[(j * perTrial + 4 * width)..<((j + 1) * perTrial)] }
        if model.config.dynamics == .firstOrder { paths.v = [] }
        return paths
    }

    /// Writes `paths` of each set as `<set>/z`, `<set>/v`, `<set>/h`, `<set>/force` (trials, T+F, H)
    /// and `<set>/trials` (the trial indices into the data file), atomically.
    public static func write(path: String, sets: [(name: String, trials: [Int], paths: Paths)], extra: [String: Tensor3] = [:],
                             attributes: [String: String], more: ((H5File) throws -> Void)? = nil) throws {
        try AtomicFile.write(path) { temporary in
            let file = try H5File.create(temporary)
            for (name, trials, paths) in sets {
                let shape = [paths.trials, paths.steps, paths.hidden]
                try file.write("\(name)/z", shape: shape, floats: paths.z)
                if !paths.v.isEmpty { try file.write("\(name)/v", shape: shape, floats: paths.v) }
                try file.write("\(name)/h", shape: shape, floats: paths.h)
                try file.write("\(name)/force", shape: shape, floats: paths.force)
                if !paths.factors.isEmpty { try file.write("\(name)/factors", shape: [paths.trials, paths.steps, paths.factorCount], floats: paths.factors) }
                try file.write("\(name)/trials", shape: [trials.count], int64s: trials.map(Int64.init))
            }
            for (key, t) in extra.sorted(by: { $0.key < $1.key }) { try file.write(key, shape: t.shape, floats: t.values) }
            for (key, value) in attributes.sorted(by: { $0.key < $1.key }) { try file.writeAttribute(key, string: value) }
            try more?(file)
            try file.flush()
        }
    }
}
