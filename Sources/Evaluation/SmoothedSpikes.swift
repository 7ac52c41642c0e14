import Data
import Distributed
import Foundation
import Inference
import Kernels
import Metrics
import Support

/// The smoothed-spikes baseline of NLB: held-in spikes smoothed with a Gaussian kernel, then a
/// Poisson GLM (log link, small L2) per held-out neuron fit on the training split, scored as
/// co-bps on the validation split. It depends only on the data file and the split, so it is
/// computed once and kept in a cache file (`baseline.json`) keyed by the data fingerprint, the
/// validation fraction and the seed; a search computes it once for all its trials.
public enum SmoothedSpikes {
    /// The cached value, or a new one, computed with the held-out neurons shared over `comm`'s
    /// ranks (rank 0 writes the cache). Collective.
    public static func coBps(tensors: NLBTensors, split: ValidationSplit, fingerprint: String, cacheDirectory: String,
                             comm: Communicator) throws -> Double {
        let cachePath = cacheDirectory + "/baseline.json"
        let key = "\(fingerprint) validationFraction=\(split.fraction) seed=\(split.seed)"
        var cached = [Double.nan]
        if comm.isRoot, let table = JSON.read([String: Double].self, from: cachePath), let value = table[key] {
            cached[0] = value
        }
        try comm.broadcast(&cached, count: 1, root: 0)
        if !cached[0].isNaN { return cached[0] }

        let fit = fitShare(tensors: tensors, split: split, rank: comm.rank, size: comm.size)
        // Every rank's (NLL model, NLL null, spikes) sums; co-bps needs only their totals.
        let totals = try comm.sum([fit.modelNLL, fit.nullNLL, fit.spikes])
        let value = (totals[1] - totals[0]) / totals[2] / log(2)
        if comm.isRoot {
            var table = JSON.read([String: Double].self, from: cachePath) ?? [:]
            table[key] = value
            try? JSON.write(table, to: cachePath)
        }
        return value
    }

    /// The Poisson NLL sums of the model and of the null model (each neuron's mean validation
    /// count) over the validation split, and the spike total, for this rank's share of the
    /// held-out neurons.
    static func fitShare(tensors: NLBTensors, split: ValidationSplit, rank: Int, size: Int, kernelBins: Double = 2,
                         alpha: Double = 1e-2) -> (modelNLL: Double, nullNLL: Double, spikes: Double) {
        let heldOut = tensors.trainHeldOut, nHo = heldOut.channels, T = heldOut.bins
        let neurons = Partition(count: nHo, parts: size).range(rank)
        guard !neurons.isEmpty else { return (0, 0, 0) }
        let xTrain = features(tensors: tensors, trials: split.training, kernelBins: kernelBins)
        let xValid = features(tensors: tensors, trials: split.validation, kernelBins: kernelBins)
        let f = tensors.heldIn + 1, rowsTrain = xTrain.count / f, rowsValid = xValid.count / f
        func targets(_ trials: [Int], neuron: Int) -> [Double] {
            trials.flatMap { i in (0..<T).map { Double(heldOut[i, $0, neuron]) } }
        }
        let share = Array(neurons)
        let yTrain = share.flatMap { targets(split.training, neuron: $0) }                // (neurons, rows)
        let w = poissonGLM(x: xTrain, y: yTrain, features: f, neurons: share.count, alpha: alpha * Double(rowsTrain))
        // ETA (rowsValid, neurons) = X W
        var eta = [Double](repeating: 0, count: rowsValid * share.count)
        Double.gemm(transA: false, transB: false, m: rowsValid, n: share.count, k: f, alpha: 1, a: xValid, lda: f,
                    b: w, ldb: share.count, beta: 0, c: &eta, ldc: share.count)
        var sums = (modelNLL: 0.0, nullNLL: 0.0, spikes: 0.0)
        for (j, neuron) in share.enumerated() {
            let y = targets(split.validation, neuron: neuron)
            let observed = y.filter { !$0.isNaN }
            let mean = observed.reduce(0, +) / Double(max(observed.count, 1))
            let rates = (0..<rowsValid).map { exp(min(eta[$0 * share.count + j], 20)) }
            sums.modelNLL += NLBMetrics.poissonNLL(rates: rates, spikes: y)
            sums.nullNLL += NLBMetrics.poissonNLL(rates: [Double](repeating: mean, count: y.count), spikes: y)
            sums.spikes += observed.reduce(0, +)
        }
        return sums
    }

    /// Gaussian-smoothed held-in spikes (renormalised at the edges and around NaN bins) and a
    /// constant 1, row-major (trials × T, Nin + 1).
    static func features(tensors: NLBTensors, trials: [Int], kernelBins: Double) -> [Double] {
        let heldIn = tensors.trainHeldIn, T = heldIn.bins, nIn = heldIn.channels, f = nIn + 1
        let radius = Int((3 * kernelBins).rounded(.up))
        let kernel = (-radius...radius).map { exp(-Double($0 * $0) / (2 * kernelBins * kernelBins)) }
        var x = [Double](repeating: 0, count: trials.count * T * f)
        for (row, i) in trials.enumerated() {
            for t in 0..<T {
                let out = (row * T + t) * f
                for c in 0..<nIn {
                    var acc = 0.0, weight = 0.0
                    for (k, w) in kernel.enumerated() {
                        let s = t + k - radius
                        guard s >= 0 && s < T else { continue }
                        let v = Double(heldIn[i, s, c])
                        guard !v.isNaN else { continue }
                        acc += w * v
                        weight += w
                    }
                    x[out + c] = weight > 0 ? acc / weight : 0
                }
                x[out + nIn] = 1
            }
        }
        return x
    }

    /// Newton's method for the L2-penalised Poisson GLM of several neurons at once (the
    /// intercept, the last feature, is not penalised); `y` is (neurons, rows), the result
    /// W (features, neurons). The linear predictors and gradients of every neuron are two
    /// matrix products per iteration, X W and Xᵀ(μ - y). Each neuron's Hessian Xᵀ diag(μ) X is
    /// estimated in float32 from every other row (it only steers the steps; the gradient, and
    /// so the optimum, are exact in double), rebuilt while its steps are large and reused near
    /// the optimum (chord method).
    static func poissonGLM(x: [Double], y: [Double], features f: Int, neurons m: Int, alpha: Double) -> [Double] {
        let rows = y.count / max(m, 1)
        let observed = y.map { $0.isNaN ? 0.0 : 1.0 }, target = y.map { $0.isNaN ? 0.0 : $0 }
        var w = [Double](repeating: 0, count: f * m)
        for j in 0..<m {
            let count = observed[(j * rows)..<((j + 1) * rows)].reduce(0, +)
            w[(f - 1) * m + j] = log(max(target[(j * rows)..<((j + 1) * rows)].reduce(0, +) / max(count, 1), 1e-3))
        }
        var eta = [Double](repeating: 0, count: rows * m), mu = eta, residual = eta
        var grad = [Double](repeating: 0, count: f * m)
        // The Hessian from every other row (scaled by 2): it steers the steps, and half the rows
        // steer as well; the float copy of X is made once.
        let sampled = stride(from: 0, to: rows, by: 2).map { $0 }
        let xFloat = sampled.flatMap { r in x[(r * f)..<((r + 1) * f)].map(Float.init) }
        var weighted = [Float](repeating: 0, count: sampled.count * f), hessian32 = [Float](repeating: 0, count: f * f)
        var hessians = [[Double]](repeating: [], count: m)
        var lastStep = [Double](repeating: .infinity, count: m), done = [Bool](repeating: false, count: m)
        for _ in 0..<100 where done.contains(false) {
            Double.gemm(transA: false, transB: false, m: rows, n: m, k: f, alpha: 1, a: x, lda: f, b: w, ldb: m, beta: 0, c: &eta, ldc: m)
            for r in 0..<rows {
                for j in 0..<m {
                    mu[r * m + j] = observed[j * rows + r] * exp(min(eta[r * m + j], 20))
                    residual[r * m + j] = mu[r * m + j] - observed[j * rows + r] * target[j * rows + r]
                }
            }
            Double.gemm(transA: true, transB: false, m: f, n: m, k: rows, alpha: 1, a: x, lda: f, b: residual, ldb: m, beta: 0, c: &grad, ldc: m)
            for j in 0..<m where !done[j] {
                if lastStep[j] > 1e-2 || hessians[j].isEmpty {
                    // Xᵀ diag(μ) X = (√μ X)ᵀ (√μ X)
                    for (i, r) in sampled.enumerated() {
                        let s = Float(mu[r * m + j].squareRoot())
                        for c in 0..<f { weighted[i * f + c] = s * xFloat[i * f + c] }
                    }
                    Float.gemm(transA: true, transB: false, m: f, n: f, k: sampled.count, alpha: 1, a: weighted, lda: f,
                               b: weighted, ldb: f, beta: 0, c: &hessian32, ldc: f)
                    let scale = Double(rows) / Double(sampled.count)
                    var h = hessian32.map { Double($0) * scale }
                    for a in 0..<(f - 1) { h[a * f + a] += alpha }
                    for a in 0..<f { h[a * f + a] += 1e-9 }
                    hessians[j] = h
                }
                var g = (0..<f).map { grad[$0 * m + j] }
                for a in 0..<(f - 1) { g[a] += alpha * w[a * m + j] }
                let step = Cholesky.solve(hessians[j], g, size: f, columns: 1)
                var change = 0.0
                for c in 0..<f { w[c * m + j] -= step[c]; change = max(change, abs(step[c])) }
                lastStep[j] = change
                if change < 1e-8 { done[j] = true }
            }
        }
        return w
    }
}
