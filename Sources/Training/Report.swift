import Data
import Foundation
import HDF5
import Kernels
import Metrics
import Model

/// The metrics of a trained model on the validation split, as the NLB evaluation would compute
/// them if the validation trials were the eval trials.
public struct ValidationReport: Codable, Sendable {
    public var trials: Int
    public var coBps: Double
    public var fpBps: Double?
    public var velR2: Double?
    public var psthR2: Double?
    /// Lorenz only: R² of the inferred rates against the true rates (all bins, all neurons).
    public var rateR2: Double?
    /// Lorenz only: the same for the held-out neurons, which the encoder never sees.
    public var rateR2HeldOut: Double?
    /// co-bps of the smoothed-spikes baseline (Gaussian-smoothed held-in spikes → Poisson GLM).
    public var baselineCoBps: Double
    public var minutes: Double?

    enum CodingKeys: String, CodingKey {
        case trials, coBps = "co-bps", fpBps = "fp-bps", velR2 = "vel R2", psthR2 = "psth R2", rateR2 = "rate R2"
        case rateR2HeldOut = "rate R2 held-out"
        case baselineCoBps = "smoothed-spikes co-bps", minutes
    }

    /// A printed table.
    public var table: String {
        func pad(_ name: String) -> String { name.padding(toLength: 24, withPad: " ", startingAt: 0) }
        func row(_ name: String, _ v: Double?) -> String? { v.map { "  " + pad(name) + String(format: " %8.4f", $0) } }
        return (["  " + pad("validation trials") + String(format: " %8d", trials)] + [
            row("co-bps", coBps), row("fp-bps", fpBps), row("vel R2", velR2), row("psth R2", psthR2),
            row("rate R2 (ground truth)", rateR2), row("rate R2, held-out only", rateR2HeldOut),
            row("smoothed-spikes co-bps", baselineCoBps),
        ].compactMap { $0 }).joined(separator: "\n")
    }
}

public enum Reporter {
    /// Metrics of `model` on the validation trials; rates with `samples` passes.
    public static func validationReport(model: LangevinFlow<Float>, tensors: NLBTensors, split: ValidationSplit,
                                        samples: Int, seed: Int, truthPath: String?) throws -> ValidationReport {
        let dims = model.dims, steps = dims.steps, nIn = dims.heldIn, nHo = dims.heldOut, n = dims.outputs
        let valid = split.validation, T = dims.bins
        let rates = Predictor.rates(model: model, tensors: tensors, trials: valid, set: .train, samples: samples, seed: seed)
        func rateSlice(_ r: [Float], trials: Int, bins: Range<Int>, neurons: Range<Int>) -> [Double] {
            Predictor.slice(r, trials: trials, steps: steps, width: n, bins: bins, neurons: neurons).map(Double.init)
        }
        func spikes(_ t: Tensor3, _ trials: [Int]) -> [Double] {
            trials.flatMap { i in (0..<(t.bins * t.channels)).map { Double(t.values[i * t.bins * t.channels + $0]) } }
        }
        let coBps = NLBMetrics.bitsPerSpike(rates: rateSlice(rates, trials: valid.count, bins: 0..<T, neurons: nIn..<n),
                                            spikes: spikes(tensors.trainHeldOut, valid), neurons: nHo)
        var report = ValidationReport(trials: valid.count, coBps: coBps,
                                      baselineCoBps: SmoothedSpikes.coBps(tensors: tensors, split: split))
        if let fIn = tensors.trainHeldInForward, let fOut = tensors.trainHeldOutForward {
            report.fpBps = NLBMetrics.bitsPerSpike(
                rates: rateSlice(rates, trials: valid.count, bins: T..<steps, neurons: 0..<n),
                spikes: NLBMetrics.concatenateLastAxis(spikes(fIn, valid), width: nIn, spikes(fOut, valid), width: nHo),
                neurons: n)
        }
        if let behavior = tensors.trainBehavior {
            let trainRates = Predictor.rates(model: model, tensors: tensors, trials: split.training, set: .train, samples: samples, seed: seed)
            report.velR2 = NLBMetrics.velocityR2(
                trainRates: rateSlice(trainRates, trials: split.training.count, bins: 0..<T, neurons: 0..<n),
                trainBehavior: spikes(behavior, split.training),
                evalRates: rateSlice(rates, trials: valid.count, bins: 0..<T, neurons: 0..<n),
                evalBehavior: spikes(behavior, valid), features: n, outputs: behavior.channels)
        }
        if let truthPath, let truth = try? H5File.open(truthPath), truth.has("truth/train_rates"), truth.has("train_cond_idx") {
            let trueRates = try truth.readDoubles("truth/train_rates").values          // (n_train, steps, N)
            let trueValid = valid.flatMap { i in trueRates[(i * steps * n)..<((i + 1) * steps * n)] }
            report.rateR2 = NLBMetrics.r2Score(yTrue: trueValid, yPred: rateSlice(rates, trials: valid.count, bins: 0..<steps, neurons: 0..<n), outputs: n)
            let trueHeldOut = (0..<(trueValid.count / n)).flatMap { r in trueValid[(r * n + nIn)..<((r + 1) * n)] }
            report.rateR2HeldOut = NLBMetrics.r2Score(yTrue: trueHeldOut, yPred: rateSlice(rates, trials: valid.count, bins: 0..<steps, neurons: nIn..<n), outputs: nHo)
            // PSTH: the true rates of each condition (shared by its trials) against the mean
            // inferred rates of its validation trials.
            let conditionOf = try truth.readDoubles("train_cond_idx").values.map { Int($0) }
            let conditions = Array(Set(valid.map { conditionOf[$0] })).sorted()
            var psth: [Double] = []
            var members: [[Int]] = []
            for c in conditions {
                let local = valid.indices.filter { conditionOf[valid[$0]] == c }
                members.append(local)
                let first = valid[local[0]]
                psth.append(contentsOf: trueRates[(first * steps * n)..<(first * steps * n + T * n)])
            }
            report.psthR2 = NLBMetrics.psthR2(psth: psth, evalRates: rateSlice(rates, trials: valid.count, bins: 0..<T, neurons: 0..<n),
                                              conditions: members, bins: T, neurons: n)
        }
        return report
    }
}

/// The smoothed-spikes baseline of NLB: held-in spikes smoothed with a Gaussian kernel, then a
/// Poisson GLM (log link, small L2) per held-out neuron fit on the training split.
public enum SmoothedSpikes {
    public static func coBps(tensors: NLBTensors, split: ValidationSplit, kernelBins: Double = 2, alpha: Double = 1e-2) -> Double {
        let heldIn = tensors.trainHeldIn, heldOut = tensors.trainHeldOut
        let T = heldIn.bins, nIn = heldIn.channels, nHo = heldOut.channels, f = nIn + 1
        let radius = Int((3 * kernelBins).rounded(.up))
        let kernel = (-radius...radius).map { exp(-Double($0 * $0) / (2 * kernelBins * kernelBins)) }
        func features(_ trials: [Int]) -> [Double] {
            var x: [Double] = []
            x.reserveCapacity(trials.count * T * f)
            for i in trials {
                for t in 0..<T {
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
                        x.append(weight > 0 ? acc / weight : 0)
                    }
                    x.append(1)
                }
            }
            return x
        }
        func targets(_ trials: [Int], neuron: Int) -> [Double] {
            trials.flatMap { i in (0..<T).map { Double(heldOut[i, $0, neuron]) } }
        }
        let xTrain = features(split.training), xValid = features(split.validation)
        let rowsTrain = xTrain.count / f, rowsValid = xValid.count / f
        var rates = [Double](repeating: 0, count: rowsValid * nHo), spikes = [Double](repeating: 0, count: rowsValid * nHo)
        for neuron in 0..<nHo {
            let y = targets(split.training, neuron: neuron)
            let w = poissonGLM(x: xTrain, y: y, features: f, alpha: alpha * Double(rowsTrain))
            let yValid = targets(split.validation, neuron: neuron)
            for r in 0..<rowsValid {
                var eta = 0.0
                for j in 0..<f { eta += xValid[r * f + j] * w[j] }
                rates[r * nHo + neuron] = exp(min(eta, 20))
                spikes[r * nHo + neuron] = yValid[r]
            }
        }
        return NLBMetrics.bitsPerSpike(rates: rates, spikes: spikes, neurons: nHo)
    }

    /// Newton's method for the L2-penalised Poisson GLM (intercept, the last feature, unpenalised).
    static func poissonGLM(x: [Double], y: [Double], features f: Int, alpha: Double) -> [Double] {
        var w = [Double](repeating: 0, count: f)
        let rows = y.count
        let mean = y.filter { !$0.isNaN }.reduce(0, +) / Double(max(y.filter { !$0.isNaN }.count, 1))
        w[f - 1] = log(max(mean, 1e-3))
        for _ in 0..<30 {
            var grad = [Double](repeating: 0, count: f), hess = [Double](repeating: 0, count: f * f)
            for r in 0..<rows where !y[r].isNaN {
                var eta = 0.0
                for j in 0..<f { eta += x[r * f + j] * w[j] }
                let mu = exp(min(eta, 20))
                for a in 0..<f {
                    grad[a] += (mu - y[r]) * x[r * f + a]
                    for b in a..<f { hess[a * f + b] += mu * x[r * f + a] * x[r * f + b] }
                }
            }
            for a in 0..<f {
                if a < f - 1 { grad[a] += alpha * w[a]; hess[a * f + a] += alpha }
                hess[a * f + a] += 1e-9
                for b in 0..<a { hess[a * f + b] = hess[b * f + a] }
            }
            let step = Cholesky.solve(hess, grad, size: f, columns: 1)
            var change = 0.0
            for j in 0..<f { w[j] -= step[j]; change = max(change, abs(step[j])) }
            if change < 1e-8 { break }
        }
        return w
    }
}

/// The NLB submission file: one group named as the dataset, float32 rates in expected spikes
/// per bin, which `nlb_tools.evaluation.evaluate` scores unchanged.
public enum Submission {
    public static func write(path: String, group: String, model: LangevinFlow<Float>, tensors: NLBTensors,
                             samples: Int, seed: Int) throws {
        let dims = model.dims, steps = dims.steps, nIn = dims.heldIn, n = dims.outputs, T = dims.bins
        let file = try H5File.create(path)
        func write(_ key: String, _ rates: [Float], trials: Int, bins: Range<Int>, neurons: Range<Int>) throws {
            try file.write("\(group)/\(key)", shape: [trials, bins.count, neurons.count],
                           floats: Predictor.slice(rates, trials: trials, steps: steps, width: n, bins: bins, neurons: neurons))
        }
        let trainRates = Predictor.rates(model: model, tensors: tensors, trials: Array(0..<tensors.trainCount), set: .train, samples: samples, seed: seed)
        try write("train_rates_heldin", trainRates, trials: tensors.trainCount, bins: 0..<T, neurons: 0..<nIn)
        try write("train_rates_heldout", trainRates, trials: tensors.trainCount, bins: 0..<T, neurons: nIn..<n)
        if tensors.evalCount > 0 {
            let evalRates = Predictor.rates(model: model, tensors: tensors, trials: Array(0..<tensors.evalCount), set: .eval, samples: samples, seed: seed)
            try write("eval_rates_heldin", evalRates, trials: tensors.evalCount, bins: 0..<T, neurons: 0..<nIn)
            try write("eval_rates_heldout", evalRates, trials: tensors.evalCount, bins: 0..<T, neurons: nIn..<n)
            if steps > T {
                try write("eval_rates_heldin_forward", evalRates, trials: tensors.evalCount, bins: T..<steps, neurons: 0..<nIn)
                try write("eval_rates_heldout_forward", evalRates, trials: tensors.evalCount, bins: T..<steps, neurons: nIn..<n)
            }
        }
        try file.flush()
    }

    /// The group name: the data file's `dataset_name` attribute, else its file name stem.
    public static func defaultGroup(dataPath: String) -> String {
        if let file = try? H5File.open(dataPath), let name = try? file.readAttributeString("dataset_name") { return name }
        return URL(fileURLWithPath: dataPath).deletingPathExtension().lastPathComponent
    }
}
