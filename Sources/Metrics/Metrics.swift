import Foundation
import Kernels

// Metrics: the NLB metrics as nlb_tools computes them (co-bps, fp-bps, vel R², PSTH R², R², tp
// corr) and the ridge regression under them. Pure functions of arrays: no files, no model.

/// The NLB metrics, matching `nlb_tools.evaluation` (0.0.4) on the same arrays.
///
/// Arrays are plain row-major `[Double]` with the last axis = neurons (or outputs); the leading
/// axes (trials, bins) are flattened into `rows`.
public enum NLBMetrics {
    /// Σ (r - y ln r + lnΓ(y+1)) over entries whose spike count is not NaN; r = 0 → 1e-9.
    /// nlb_tools `neg_log_likelihood`.
    public static func poissonNLL(rates: [Double], spikes: [Double]) -> Double {
        precondition(rates.count == spikes.count, "poissonNLL: \(rates.count) rates vs \(spikes.count) spikes")
        var sum = 0.0
        for i in spikes.indices where !spikes[i].isNaN {
            let r = rates[i] == 0 ? 1e-9 : rates[i]
            sum += r - spikes[i] * log(r) + lgamma(spikes[i] + 1)
        }
        return sum
    }

    /// Bits per spike against the null model that predicts each neuron's mean count over all
    /// rows (NaN ignored). nlb_tools `bits_per_spike`; co-bps on held-out eval rates, fp-bps on
    /// the forward bins of [held-in, held-out].
    public static func bitsPerSpike(rates: [Double], spikes: [Double], neurons: Int) -> Double {
        let rows = spikes.count / neurons
        var means = [Double](repeating: 0, count: neurons), counts = [Double](repeating: 0, count: neurons)
        var total = 0.0
        for r in 0..<rows {
            for n in 0..<neurons where !spikes[r * neurons + n].isNaN {
                means[n] += spikes[r * neurons + n]
                counts[n] += 1
                total += spikes[r * neurons + n]
            }
        }
        for n in 0..<neurons { means[n] /= counts[n] }
        let null = (0..<(rows * neurons)).map { means[$0 % neurons] }
        return (poissonNLL(rates: null, spikes: spikes) - poissonNLL(rates: rates, spikes: spikes)) / total / log(2)
    }

    /// Concatenates two row-major arrays along the last axis: (rows, a) ++ (rows, b) → (rows, a + b).
    public static func concatenateLastAxis(_ x: [Double], width a: Int, _ y: [Double], width b: Int) -> [Double] {
        let rows = x.count / a
        var out = [Double](); out.reserveCapacity(rows * (a + b))
        for r in 0..<rows {
            out.append(contentsOf: x[(r * a)..<((r + 1) * a)])
            out.append(contentsOf: y[(r * b)..<((r + 1) * b)])
        }
        return out
    }

    /// sklearn `r2_score(yTrue, yPred)` with multioutput = 'uniform_average' over `outputs`
    /// columns. A constant column scores 1 if predicted exactly, else 0 (sklearn's convention).
    public static func r2Score(yTrue: [Double], yPred: [Double], outputs: Int) -> Double {
        let rows = yTrue.count / outputs
        var total = 0.0
        for o in 0..<outputs {
            var mean = 0.0
            for r in 0..<rows { mean += yTrue[r * outputs + o] }
            mean /= Double(rows)
            var ssRes = 0.0, ssTot = 0.0
            for r in 0..<rows {
                let t = yTrue[r * outputs + o]
                ssRes += (t - yPred[r * outputs + o]) * (t - yPred[r * outputs + o])
                ssTot += (t - mean) * (t - mean)
            }
            total += ssTot == 0 ? (ssRes == 0 ? 1 : 0) : 1 - ssRes / ssTot
        }
        return total / Double(outputs)
    }

    /// The alpha grid of nlb_tools `fit_and_eval_decoder`: logspace(-4, 0, 9).
    public static let ridgeAlphas = (0..<9).map { pow(10, -4 + Double($0) * 0.5) }

    /// nlb_tools `fit_and_eval_decoder`: drops rows whose first behaviour column is NaN, picks
    /// alpha by `GridSearchCV(Ridge(), alphas)` (5-fold KFold without shuffling, mean R²), refits
    /// on all training rows and returns the eval R².
    public static func velocityR2(trainRates: [Double], trainBehavior: [Double], evalRates: [Double],
                                  evalBehavior: [Double], features: Int, outputs: Int) -> Double {
        let (xTrain, yTrain) = dropNaNRows(trainRates, trainBehavior, features: features, outputs: outputs)
        let (xEval, yEval) = dropNaNRows(evalRates, evalBehavior, features: features, outputs: outputs)
        let n = xTrain.count / features
        let folds = 5
        // Each fold's moments once (matrix products), then every alpha and fold from sums of them.
        var bounds = [0]
        for fold in 0..<folds { bounds.append(bounds[fold] + n / folds + (fold < n % folds ? 1 : 0)) }
        let shift = Moments.columnMeans(xTrain, rows: n, width: features), yShift = Moments.columnMeans(yTrain, rows: n, width: outputs)
        let parts = (0..<folds).map { Moments(x: xTrain, y: yTrain, rows: bounds[$0]..<bounds[$0 + 1], features: features, outputs: outputs,
                                              xShift: shift, yShift: yShift) }
        var bestAlpha = ridgeAlphas[0], bestScore = -Double.infinity
        for alpha in ridgeAlphas {
            var score = 0.0
            for fold in 0..<folds {
                let model = Ridge(moments: Moments.sum(parts.indices.filter { $0 != fold }.map { parts[$0] }), alpha: alpha)
                let xTest = Array(xTrain[(bounds[fold] * features)..<(bounds[fold + 1] * features)])
                let yTest = Array(yTrain[(bounds[fold] * outputs)..<(bounds[fold + 1] * outputs)])
                score += r2Score(yTrue: yTest, yPred: model.predict(xTest), outputs: outputs)
            }
            score /= Double(folds)
            if score > bestScore { bestScore = score; bestAlpha = alpha }     // first best wins ties
        }
        let model = Ridge(moments: Moments.sum(parts), alpha: bestAlpha)
        return r2Score(yTrue: yEval, yPred: model.predict(xEval), outputs: outputs)
    }

    static func dropNaNRows(_ x: [Double], _ y: [Double], features: Int, outputs: Int) -> ([Double], [Double]) {
        var xs: [Double] = [], ys: [Double] = []
        for r in 0..<(y.count / outputs) where !y[r * outputs].isNaN {
            xs.append(contentsOf: x[(r * features)..<((r + 1) * features)])
            ys.append(contentsOf: y[(r * outputs)..<((r + 1) * outputs)])
        }
        return (xs, ys)
    }

    /// PSTH R²: each condition's mean eval rates against `psth` (conditions × bins × neurons),
    /// over the bins where the psth is not NaN. `jitter` (dmfc_rsg) shifts each trial's rates
    /// later by that many bins before averaging, as nlb_tools `eval_psth` does.
    public static func psthR2(psth: [Double], evalRates: [Double], conditions: [[Int]], bins: Int, neurons: Int,
                              jitter: [Int]? = nil) -> Double {
        var truth: [Double] = [], predicted: [Double] = []
        for (i, trials) in conditions.enumerated() where !trials.isEmpty {
            for t in 0..<bins where !psth[(i * bins + t) * neurons].isNaN {
                for n in 0..<neurons {
                    var mean = 0.0
                    for trial in trials {
                        let source = t - (jitter?[trial] ?? 0)
                        mean += source >= 0 && source < bins ? evalRates[(trial * bins + source) * neurons + n] : .nan
                    }
                    predicted.append(mean / Double(trials.count))
                    truth.append(psth[(i * bins + t) * neurons + n])
                }
            }
        }
        return r2Score(yTrue: truth, yPred: predicted, outputs: neurons)
    }

    /// dmfc_rsg's "tp corr", nlb_tools `speed_tp_correlation`: each eval trial's neural speed
    /// (mean norm of the rate change between consecutive bins of its set–go period, the bins
    /// whose first held-out spike count is not NaN) correlated (Pearson) with its produced
    /// interval tp (the behaviour's last column) within each condition (distinct values of the
    /// behaviour's first three columns), averaged over conditions.
    public static func speedTpCorrelation(evalSpikesHeldOut: [Double], heldOut: Int, evalRates: [Double], neurons: Int,
                                          bins: Int, behavior: [Double], behaviorColumns: Int) -> Double {
        let trials = evalRates.count / (bins * neurons)
        let speeds = (0..<trials).map { trial -> Double in
            let rows = (0..<bins).filter { !evalSpikesHeldOut[(trial * bins + $0) * heldOut].isNaN }
            guard rows.count > 1 else { return .nan }
            var total = 0.0
            for (a, b) in zip(rows, rows.dropFirst()) {
                var squares = 0.0
                for n in 0..<neurons {
                    let d = evalRates[(trial * bins + b) * neurons + n] - evalRates[(trial * bins + a) * neurons + n]
                    squares += d * d
                }
                total += squares.squareRoot()
            }
            return total / Double(rows.count - 1)
        }
        func key(_ trial: Int) -> [Double] { (0..<3).map { behavior[trial * behaviorColumns + $0] } }
        var conditions: [[Double]] = []
        for trial in 0..<trials where !key(trial).allSatisfy(\.isNaN) && !conditions.contains(key(trial)) {
            conditions.append(key(trial))
        }
        let rs = conditions.map { condition -> Double in
            let members = (0..<trials).filter { key($0) == condition }
            return pearson(members.map { speeds[$0] }, members.map { behavior[$0 * behaviorColumns + behaviorColumns - 1] })
        }
        return rs.reduce(0, +) / Double(rs.count)
    }

    /// Pearson's r (scipy.stats.pearsonr).
    public static func pearson(_ x: [Double], _ y: [Double]) -> Double {
        let n = Double(x.count)
        let mx = x.reduce(0, +) / n, my = y.reduce(0, +) / n
        var sxy = 0.0, sxx = 0.0, syy = 0.0
        for i in x.indices {
            sxy += (x[i] - mx) * (y[i] - my)
            sxx += (x[i] - mx) * (x[i] - mx)
            syy += (y[i] - my) * (y[i] - my)
        }
        return sxy / (sxx * syy).squareRoot()
    }
}

/// Ridge regression with an intercept, as sklearn `Ridge(alpha, fit_intercept=True)`: centre
/// X and y, solve (XcᵀXc + αI) w = Xcᵀyc by Cholesky, intercept = ȳ - x̄ᵀw.
/// Sums over some rows of x and y, taken about fixed shifts (the means of all the rows, which
/// keeps the centring below free of cancellation): count, Σx, Σy, Σxxᵀ, Σxyᵀ. Moments of
/// disjoint row sets add, so the ridge of any union of folds needs no pass over the data.
public struct Moments {
    public var count = 0.0
    public var xSum: [Double], ySum: [Double], xx: [Double], xy: [Double]
    public let xShift: [Double], yShift: [Double]
    let features: Int, outputs: Int

    public init(x: [Double], y: [Double], rows: Range<Int>, features f: Int, outputs o: Int, xShift: [Double], yShift: [Double]) {
        features = f
        outputs = o
        self.xShift = xShift
        self.yShift = yShift
        let n = rows.count
        var xs = [Double](repeating: 0, count: n * f), ys = [Double](repeating: 0, count: n * o)
        for (i, r) in rows.enumerated() {
            for j in 0..<f { xs[i * f + j] = x[r * f + j] - xShift[j] }
            for j in 0..<o { ys[i * o + j] = y[r * o + j] - yShift[j] }
        }
        count = Double(n)
        xSum = Self.columnMeans(xs, rows: n, width: f).map { $0 * Double(n) }
        ySum = Self.columnMeans(ys, rows: n, width: o).map { $0 * Double(n) }
        xx = [Double](repeating: 0, count: f * f)
        xy = [Double](repeating: 0, count: f * o)
        if n > 0 {
            Double.gemm(transA: true, transB: false, m: f, n: f, k: n, alpha: 1, a: xs, lda: f, b: xs, ldb: f, beta: 0, c: &xx, ldc: f)
            Double.gemm(transA: true, transB: false, m: f, n: o, k: n, alpha: 1, a: xs, lda: f, b: ys, ldb: o, beta: 0, c: &xy, ldc: o)
        }
    }

    public static func sum(_ parts: [Moments]) -> Moments {
        var total = parts[0]
        for p in parts.dropFirst() {
            total.count += p.count
            for i in total.xSum.indices { total.xSum[i] += p.xSum[i] }
            for i in total.ySum.indices { total.ySum[i] += p.ySum[i] }
            for i in total.xx.indices { total.xx[i] += p.xx[i] }
            for i in total.xy.indices { total.xy[i] += p.xy[i] }
        }
        return total
    }

    public static func columnMeans(_ values: [Double], rows: Int, width: Int) -> [Double] {
        var mean = [Double](repeating: 0, count: width)
        for r in 0..<rows { for j in 0..<width { mean[j] += values[r * width + j] } }
        return mean.map { $0 / Double(max(rows, 1)) }
    }
}

public struct Ridge {
    public let weights: [Double]     // (features, outputs)
    public let intercept: [Double]   // (outputs)
    let features: Int, outputs: Int

    public init(x: [Double], y: [Double], features: Int, outputs: Int, alpha: Double) {
        let rows = x.count / features
        self.init(moments: Moments(x: x, y: y, rows: 0..<rows, features: features, outputs: outputs,
                                   xShift: Moments.columnMeans(x, rows: rows, width: features),
                                   yShift: Moments.columnMeans(y, rows: rows, width: outputs)), alpha: alpha)
    }

    /// Least squares with an intercept, kept well posed for rank-deficient features (latent
    /// paths with constant units) by a ridge of `relativeAlpha` times the mean centred sum of
    /// squares of the features.
    public init(x: [Double], y: [Double], features: Int, outputs: Int, relativeAlpha: Double) {
        let rows = x.count / features
        let m = Moments(x: x, y: y, rows: 0..<rows, features: features, outputs: outputs,
                        xShift: Moments.columnMeans(x, rows: rows, width: features),
                        yShift: Moments.columnMeans(y, rows: rows, width: outputs))
        let meanSquares = (0..<features).map { m.xx[$0 * features + $0] - m.xSum[$0] * m.xSum[$0] / max(m.count, 1) }
            .reduce(0, +) / Double(features)
        self.init(moments: m, alpha: relativeAlpha * max(meanSquares, 1e-12))
    }

    /// The ridge of the rows the moments sum over: centre them, solve (XcᵀXc + αI) w = Xcᵀyc.
    public init(moments m: Moments, alpha: Double) {
        let f = m.features, o = m.outputs, n = m.count
        features = f
        outputs = o
        let xMean = m.xSum.map { $0 / n }, yMean = m.ySum.map { $0 / n }       // about the shifts
        var gram = m.xx, rhs = m.xy
        for a in 0..<f {
            for b in 0..<f { gram[a * f + b] -= n * xMean[a] * xMean[b] }
            for c in 0..<o { rhs[a * o + c] -= n * xMean[a] * yMean[c] }
            gram[a * f + a] += alpha
        }
        weights = Cholesky.solve(gram, rhs, size: f, columns: o)
        var b = (0..<o).map { yMean[$0] + m.yShift[$0] }
        for c in 0..<o { for j in 0..<f { b[c] -= (xMean[j] + m.xShift[j]) * weights[j * o + c] } }
        intercept = b
    }

    public func predict(_ x: [Double]) -> [Double] {
        let rows = x.count / features
        var out = [Double](repeating: 0, count: rows * outputs)
        for r in 0..<rows {
            for o in 0..<outputs {
                var acc = intercept[o]
                for f in 0..<features { acc += x[r * features + f] * weights[f * outputs + o] }
                out[r * outputs + o] = acc
            }
        }
        return out
    }
}

/// Cholesky solve of A X = B for symmetric positive-definite A (size × size), B (size × columns).
public enum Cholesky {
    public static func solve(_ a: [Double], _ b: [Double], size n: Int, columns m: Int) -> [Double] {
        var l = [Double](repeating: 0, count: n * n)
        for i in 0..<n {
            for j in 0...i {
                var sum = a[i * n + j]
                for k in 0..<j { sum -= l[i * n + k] * l[j * n + k] }
                l[i * n + j] = i == j ? max(sum, 1e-300).squareRoot() : sum / l[j * n + j]
            }
        }
        var x = b
        for c in 0..<m {
            for i in 0..<n {           // L z = b
                var sum = x[i * m + c]
                for k in 0..<i { sum -= l[i * n + k] * x[k * m + c] }
                x[i * m + c] = sum / l[i * n + i]
            }
            for i in stride(from: n - 1, through: 0, by: -1) {    // Lᵀ x = z
                var sum = x[i * m + c]
                for k in (i + 1)..<max(n, i + 1) { sum -= l[k * n + i] * x[k * m + c] }
                x[i * m + c] = sum / l[i * n + i]
            }
        }
        return x
    }
}
