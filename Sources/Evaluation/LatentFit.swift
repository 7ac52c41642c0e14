import Data
import Distributed
import Foundation
import HDF5
import Inference
import Kernels
import Metrics
import Model
import RunFiles

/// The latent R² of a run on synthetic data: how well linear maps of the inferred z, v, [z, v]
/// and h (fitted on training trials) explain the true latents of the validation trials.
public enum LatentFit {
    /// Fills the report's latent R² when `truthPath` has true latents; returns the z map's
    /// predictions for the scoring trials, (trials, T+F, K), for the report's figure.
    @discardableResult
    public static func fit(paths: LatentPaths.Paths, fitRows: [Int], scoreRows: [Int], fitTrials: [Int], scoreTrials: [Int],
                           truthPath: String, tensors: NLBTensors, into report: inout ValidationScores) -> Tensor3? {
        let steps = paths.steps
        guard let (target, k) = trueLatents(truthPath: truthPath, tensors: tensors, steps: steps) else { return nil }
        let yFit = target(fitTrials), yScore = target(scoreTrials)
        func score(_ parts: [KeyPath<LatentPaths.Paths, [Float]>]) -> (r2: Double, predictions: [Double])? {
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
                      yFit: [Double], yScore: [Double], outputs k: Int) -> (r2: Double, predictions: [Double])? {
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
        // Least squares with an intercept; the ridge of 1e-6 of the mean feature variance only
        // keeps rank-deficient paths (constant units) well posed.
        let map = Ridge(x: features(fitRows), y: yFit, features: h * parts.count, outputs: k, relativeAlpha: 1e-6)
        let predictions = map.predict(features(scoreRows))
        return (NLBMetrics.r2Score(yTrue: yScore, yPred: predictions, outputs: k), predictions)
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
                             seed: Int, chunk: Int, comm: Communicator) -> (() throws -> (r2: Double, motion: Double)?)? {
        let fit = Array(split.training.prefix(256)), scored = Array(split.validation.prefix(256))
        guard !fit.isEmpty, !scored.isEmpty,
              let (target, k) = trueLatents(truthPath: truthPath, tensors: tensors, steps: model.dims.steps) else { return nil }
        let yFit = target(fit), yScore = target(scored)
        let fitRows = Array(0..<fit.count), scoreRows = Array(fit.count..<(fit.count + scored.count))
        return {
            guard let paths = try LatentPaths.compute(model: model, tensors: tensors, trials: fit + scored, set: .train,
                                                      samples: 0, seed: seed, chunk: chunk, comm: comm),
                  let r2 = score(paths: paths, parts: [\.z, \.v], fitRows: fitRows, scoreRows: scoreRows,
                                 yFit: yFit, yScore: yScore, outputs: k)?.r2 else { return nil }
            return (r2, motion(paths: paths, rows: scoreRows) ?? 0)
        }
    }
}
