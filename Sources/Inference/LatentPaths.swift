import Checkpoint
import Data
import Distributed
import Foundation
import HDF5
import Kernels
import Metrics
import Model

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
    /// averages N sampled paths (posterior and Langevin noise, no dropout).
    public static func compute(model: LangevinFlow<Float>, tensors: NLBTensors, trials: [Int], set: TrialSet,
                               samples: Int, seed: Int, comm: Communicator) throws -> Paths? {
        let steps = model.dims.steps, h = model.config.hidden, width = steps * h
        let batch = Batch<Float>(dims: model.dims, capacity: model.maxBatch)
        let all = try Predictor.distributed(trials: trials, chunk: Predictor.chunkSize(model.config), width: 4 * width, comm: comm) { chunk in
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

/// How well a linear map of inferred latents explains the true ones: least squares with an
/// intercept (and a ridge of 1e-6 of the mean feature variance, for rank-deficient features)
/// fitted on one set of rows, R² (uniform average over the true dimensions) on another.
public enum LinearFit {
    public struct Result {
        public var r2: Double
        /// The map's predictions on the scoring rows (rows × outputs).
        public var predictions: [Double]
    }

    public static func score(trainX: [Double], trainY: [Double], testX: [Double], testY: [Double], features p: Int, outputs k: Int) -> Result {
        let n = trainX.count / p, m = testX.count / p
        var xMean = [Double](repeating: 0, count: p), yMean = [Double](repeating: 0, count: k)
        for r in 0..<n {
            for j in 0..<p { xMean[j] += trainX[r * p + j] }
            for j in 0..<k { yMean[j] += trainY[r * k + j] }
        }
        for j in 0..<p { xMean[j] /= Double(n) }
        for j in 0..<k { yMean[j] /= Double(n) }
        var xc = trainX, yc = trainY
        for r in 0..<n {
            for j in 0..<p { xc[r * p + j] -= xMean[j] }
            for j in 0..<k { yc[r * k + j] -= yMean[j] }
        }
        var gram = [Double](repeating: 0, count: p * p), cross = [Double](repeating: 0, count: p * k)
        Double.gemm(transA: true, transB: false, m: p, n: p, k: n, alpha: 1, a: xc, lda: p, b: xc, ldb: p, beta: 0, c: &gram, ldc: p)
        Double.gemm(transA: true, transB: false, m: p, n: k, k: n, alpha: 1, a: xc, lda: p, b: yc, ldb: k, beta: 0, c: &cross, ldc: k)
        let ridge = 1e-6 * max((0..<p).map { gram[$0 * p + $0] }.reduce(0, +) / Double(p), 1e-12)
        for j in 0..<p { gram[j * p + j] += ridge }
        let w = Cholesky.solve(gram, cross, size: p, columns: k)              // (p, k)
        var predictions = [Double](repeating: 0, count: m * k)
        for r in 0..<m {
            for o in 0..<k {
                var v = yMean[o]
                for j in 0..<p { v += (testX[r * p + j] - xMean[j]) * w[j * k + o] }
                predictions[r * k + o] = v
            }
        }
        return Result(r2: NLBMetrics.r2Score(yTrue: testY, yPred: predictions, outputs: k), predictions: predictions)
    }
}

/// The latent R² of a run on synthetic data: how well linear maps of the inferred z, v, [z, v]
/// and h (fitted on training trials) explain the true latents of the validation trials.
public enum LatentReport {
    /// Fills the report's latent R² when `truthPath` has true latents; returns the z map's
    /// predictions for the scoring trials, (trials, T+F, K), for the report's figure.
    @discardableResult
    public static func fit(paths: LatentPaths.Paths, fitRows: [Int], scoreRows: [Int], fitTrials: [Int], scoreTrials: [Int],
                           truthPath: String, tensors: NLBTensors, into report: inout ValidationReport) -> Tensor3? {
        let steps = paths.steps
        guard let (target, k) = trueLatents(truthPath: truthPath, tensors: tensors, steps: steps) else { return nil }
        let yFit = target(fitTrials), yScore = target(scoreTrials)
        func score(_ parts: [KeyPath<LatentPaths.Paths, [Float]>]) -> LinearFit.Result? {
            Self.score(paths: paths, parts: parts, fitRows: fitRows, scoreRows: scoreRows, yFit: yFit, yScore: yScore, outputs: k)
        }
        let z = score([\.z])
        report.latentR2Z = z?.r2
        report.latentR2V = score([\.v])?.r2
        report.latentR2ZV = score([\.z, \.v])?.r2
        report.latentR2H = score([\.h])?.r2
        return z.map { Tensor3(count: scoreTrials.count, bins: steps, channels: k, values: $0.predictions.map(Float.init)) }
    }

    /// The true latents of `truthPath`'s training trials, as a function from trials to their
    /// rows (trials·steps, K), and K; nil when the file has none.
    static func trueLatents(truthPath: String, tensors: NLBTensors, steps: Int) -> (([Int]) -> [Double], Int)? {
        guard let truth = GroundTruth.load(path: truthPath, trainCount: tensors.trainCount, steps: steps,
                                           neurons: tensors.heldIn + tensors.heldOut, heldIn: tensors.heldIn),
              let latents = truth.trainLatents else { return nil }
        let k = truth.latentDimensions
        return ({ trials in trials.flatMap { latents[($0 * steps * k)..<(($0 + 1) * steps * k)] } }, k)
    }

    /// A linear map from the parts (z, v, h, side by side) of the fit rows' paths to `yFit`,
    /// scored on the score rows against `yScore`.
    static func score(paths: LatentPaths.Paths, parts: [KeyPath<LatentPaths.Paths, [Float]>], fitRows: [Int], scoreRows: [Int],
                      yFit: [Double], yScore: [Double], outputs k: Int) -> LinearFit.Result? {
        let steps = paths.steps, h = paths.hidden
        guard parts.allSatisfy({ !paths[keyPath: $0].isEmpty }) else { return nil }
        func features(_ rows: [Int]) -> [Double] {
            let columns = parts.map { paths.rows($0, trials: rows) }
            var x = [Double](repeating: 0, count: rows.count * steps * h * parts.count)
            for r in 0..<(rows.count * steps) {
                for (p, column) in columns.enumerated() {
                    for j in 0..<h { x[(r * parts.count + p) * h + j] = column[r * h + j] }
                }
            }
            return x
        }
        return LinearFit.score(trainX: features(fitRows), trainY: yFit, testX: features(scoreRows), testY: yScore,
                               features: h * parts.count, outputs: k)
    }

    /// The within-trial share of z's variance over the given rows: Σ_j E_trial[Var_t z_j] /
    /// Σ_j Var_{trial, t} z_j; 0 when z is constant within every trial (nil when z never varies).
    public static func motion(paths: LatentPaths.Paths, rows: [Int]) -> Double? {
        let steps = paths.steps, h = paths.hidden
        guard !paths.z.isEmpty, !rows.isEmpty else { return nil }
        var within = 0.0, total = 0.0
        for j in 0..<h {
            var sum = 0.0, square = 0.0, withinJ = 0.0
            for r in rows {
                var s = 0.0, q = 0.0
                for t in 0..<steps { let x = Double(paths.z[(r * steps + t) * h + j]); s += x; q += x * x }
                withinJ += q - s * s / Double(steps)
                sum += s; square += q
            }
            let n = Double(rows.count * steps)
            within += withinJ
            total += square - sum * sum / n
        }
        return total > 0 ? within / total : nil
    }

    /// The per-epoch probe `Trainer.latentProbe` runs, when `truthPath` has true latents (nil
    /// otherwise): the mean paths of up to 256 training and 256 validation trials under the
    /// current weights, the [z, v] map fitted on the first and scored on the second, and the
    /// motion of z on the second. Every rank calls it (the paths are shared out); rank 0 returns.
    public static func probe(model: LangevinFlow<Float>, tensors: NLBTensors, split: ValidationSplit, truthPath: String,
                             seed: Int, comm: Communicator) -> (() throws -> (r2: Double, motion: Double)?)? {
        let fit = Array(split.training.prefix(256)), scored = Array(split.validation.prefix(256))
        guard !fit.isEmpty, !scored.isEmpty,
              let (target, k) = trueLatents(truthPath: truthPath, tensors: tensors, steps: model.dims.steps) else { return nil }
        let yFit = target(fit), yScore = target(scored)
        let fitRows = Array(0..<fit.count), scoreRows = Array(fit.count..<(fit.count + scored.count))
        return {
            guard let paths = try LatentPaths.compute(model: model, tensors: tensors, trials: fit + scored, set: .train,
                                                      samples: 0, seed: seed, comm: comm),
                  let r2 = score(paths: paths, parts: [\.z, \.v], fitRows: fitRows, scoreRows: scoreRows,
                                 yFit: yFit, yScore: yScore, outputs: k)?.r2 else { return nil }
            return (r2, motion(paths: paths, rows: scoreRows) ?? 0)
        }
    }
}
