import Checkpoint
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
    /// Seconds of the end of the run: predictions, metrics, baseline and submission.
    public var endOfRunSeconds: Double?
    /// With true latents (synthetic data): R² on the validation trials of a linear map, fitted
    /// on training trials, from the inferred z, v, [z, v] and the encoder state h to them.
    public var latentR2Z: Double?
    public var latentR2V: Double?
    public var latentR2ZV: Double?
    public var latentR2H: Double?

    enum CodingKeys: String, CodingKey {
        case trials, coBps = "co-bps", fpBps = "fp-bps", velR2 = "vel R2", psthR2 = "psth R2", rateR2 = "rate R2"
        case rateR2HeldOut = "rate R2 held-out"
        case baselineCoBps = "smoothed-spikes co-bps", minutes, endOfRunSeconds = "end-of-run seconds"
        case latentR2Z = "latent R2 (z)", latentR2V = "latent R2 (v)", latentR2ZV = "latent R2 (z,v)", latentR2H = "latent R2 (h)"
    }

    /// A printed table.
    public var table: String {
        func pad(_ name: String) -> String { name.padding(toLength: 24, withPad: " ", startingAt: 0) }
        func row(_ name: String, _ v: Double?) -> String? { v.map { "  " + pad(name) + String(format: " %8.4f", $0) } }
        return (["  " + pad("validation trials") + String(format: " %8d", trials)] + [
            row("co-bps", coBps), row("fp-bps", fpBps), row("vel R2", velR2), row("psth R2", psthR2),
            row("rate R2 (ground truth)", rateR2), row("rate R2, held-out only", rateR2HeldOut),
            row("smoothed-spikes co-bps", baselineCoBps),
            row("latent R2, z", latentR2Z), row("latent R2, v", latentR2V), row("latent R2, [z, v]", latentR2ZV),
            row("latent R2, h (encoder)", latentR2H),
        ].compactMap { $0 }).joined(separator: "\n")
    }
}

public enum Reporter {
    /// Metrics on the validation trials from `trainRates`, the rates of every training trial
    /// (trial-major (n_train, T+F, Nout), as `Predictor.all` returns them; the submission is
    /// written from the same rates). `baseline` is the smoothed-spikes co-bps of this split.
    public static func validationReport(trainRates: [Float], dims: DataDims, tensors: NLBTensors, split: ValidationSplit,
                                        baseline: Double, truthPath: String?) throws -> ValidationReport {
        let steps = dims.steps, nIn = dims.heldIn, nHo = dims.heldOut, n = dims.outputs
        let valid = split.validation, T = dims.bins
        func rows(_ trials: [Int]) -> [Float] {
            var out: [Float] = []
            out.reserveCapacity(trials.count * steps * n)
            for i in trials { out.append(contentsOf: trainRates[(i * steps * n)..<((i + 1) * steps * n)]) }
            return out
        }
        let rates = rows(valid)
        func rateSlice(_ r: [Float], trials: Int, bins: Range<Int>, neurons: Range<Int>) -> [Double] {
            Predictor.slice(r, trials: trials, steps: steps, width: n, bins: bins, neurons: neurons).map(Double.init)
        }
        func spikes(_ t: Tensor3, _ trials: [Int]) -> [Double] {
            trials.flatMap { i in (0..<(t.bins * t.channels)).map { Double(t.values[i * t.bins * t.channels + $0]) } }
        }
        let coBps = NLBMetrics.bitsPerSpike(rates: rateSlice(rates, trials: valid.count, bins: 0..<T, neurons: nIn..<n),
                                            spikes: spikes(tensors.trainHeldOut, valid), neurons: nHo)
        var report = ValidationReport(trials: valid.count, coBps: coBps, baselineCoBps: baseline)
        if let fIn = tensors.trainHeldInForward, let fOut = tensors.trainHeldOutForward {
            report.fpBps = NLBMetrics.bitsPerSpike(
                rates: rateSlice(rates, trials: valid.count, bins: T..<steps, neurons: 0..<n),
                spikes: NLBMetrics.concatenateLastAxis(spikes(fIn, valid), width: nIn, spikes(fOut, valid), width: nHo),
                neurons: n)
        }
        if let behavior = tensors.trainBehavior {
            report.velR2 = NLBMetrics.velocityR2(
                trainRates: rateSlice(rows(split.training), trials: split.training.count, bins: 0..<T, neurons: 0..<n),
                trainBehavior: spikes(behavior, split.training),
                evalRates: rateSlice(rates, trials: valid.count, bins: 0..<T, neurons: 0..<n),
                evalBehavior: spikes(behavior, valid), features: n, outputs: behavior.channels)
        }
        if let truth = GroundTruth.load(path: truthPath, trainCount: tensors.trainCount, steps: steps, neurons: n, heldIn: nIn),
           let trueRates = truth.trainRates {
            let trueValid = valid.flatMap { i in trueRates[(i * steps * n)..<((i + 1) * steps * n)] }
            report.rateR2 = NLBMetrics.r2Score(yTrue: trueValid, yPred: rateSlice(rates, trials: valid.count, bins: 0..<steps, neurons: 0..<n), outputs: n)
            let trueHeldOut = (0..<(trueValid.count / n)).flatMap { r in trueValid[(r * n + nIn)..<((r + 1) * n)] }
            report.rateR2HeldOut = NLBMetrics.r2Score(yTrue: trueHeldOut, yPred: rateSlice(rates, trials: valid.count, bins: 0..<steps, neurons: nIn..<n), outputs: nHo)
            // PSTH: per condition, the mean true rates of its validation trials against their
            // mean inferred rates.
            if let conditionOf = truth.trainConditions {
                let conditions = Array(Set(valid.map { conditionOf[$0] })).sorted()
                var psth: [Double] = []
                var members: [[Int]] = []
                for c in conditions {
                    let local = valid.indices.filter { conditionOf[valid[$0]] == c }
                    members.append(local)
                    var mean = [Double](repeating: 0, count: T * n)
                    for j in local {
                        let base = valid[j] * steps * n
                        for i in 0..<(T * n) { mean[i] += trueRates[base + i] / Double(local.count) }
                    }
                    psth.append(contentsOf: mean)
                }
                report.psthR2 = NLBMetrics.psthR2(psth: psth, evalRates: rateSlice(rates, trials: valid.count, bins: 0..<T, neurons: 0..<n),
                                                  conditions: members, bins: T, neurons: n)
            }
        }
        return report
    }
}

/// The NLB submission file: one group named as the dataset, float32 rates in expected spikes
/// per bin, which `nlb_tools.evaluation.evaluate` scores unchanged.
public enum Submission {
    /// Writes the submission from the rates of every training and eval trial (trial-major
    /// (n, T+F, Nout), as `Predictor.all` returns them), atomically: a kill leaves no half file.
    public static func write(path: String, group: String, trainRates: [Float], evalRates: [Float], dims: DataDims,
                             tensors: NLBTensors) throws {
        let steps = dims.steps, nIn = dims.heldIn, n = dims.outputs, T = dims.bins
        try AtomicFile.write(path) { temporary in
            let file = try H5File.create(temporary)
            func write(_ key: String, _ rates: [Float], trials: Int, bins: Range<Int>, neurons: Range<Int>) throws {
                try file.write("\(group)/\(key)", shape: [trials, bins.count, neurons.count],
                               floats: Predictor.slice(rates, trials: trials, steps: steps, width: n, bins: bins, neurons: neurons))
            }
            try write("train_rates_heldin", trainRates, trials: tensors.trainCount, bins: 0..<T, neurons: 0..<nIn)
            try write("train_rates_heldout", trainRates, trials: tensors.trainCount, bins: 0..<T, neurons: nIn..<n)
            if tensors.evalCount > 0 {
                try write("eval_rates_heldin", evalRates, trials: tensors.evalCount, bins: 0..<T, neurons: 0..<nIn)
                try write("eval_rates_heldout", evalRates, trials: tensors.evalCount, bins: 0..<T, neurons: nIn..<n)
                if steps > T {
                    try write("eval_rates_heldin_forward", evalRates, trials: tensors.evalCount, bins: T..<steps, neurons: 0..<nIn)
                    try write("eval_rates_heldout_forward", evalRates, trials: tensors.evalCount, bins: T..<steps, neurons: nIn..<n)
                }
            }
            try file.flush()
        }
    }

    /// The submission's group: `explicit` (--dataset-name), else the data file's `dataset_name`
    /// attribute, else the NLB dataset whose neuron counts and bins the data has (with a note),
    /// else the file's stem (with a warning: nlb_tools' evaluate scores only NLB names).
    public static func group(dataPath: String, tensors: NLBTensors, explicit: String?) -> (name: String, note: String?) {
        if let explicit { return (explicit, nil) }
        if let file = try? H5File.open(dataPath), let name = try? file.readAttributeString("dataset_name") { return (name, nil) }
        if let match = nlbDataset(heldIn: tensors.heldIn, heldOut: tensors.heldOut, bins: tensors.bins) {
            return (match, "note: '\(dataPath)' has no dataset_name attribute; its \(tensors.heldIn) held-in and \(tensors.heldOut) held-out neurons and \(tensors.bins) bins are those of NLB's \(match), so the submission group is \(match) (--dataset-name sets another).")
        }
        let stem = URL(fileURLWithPath: dataPath).deletingPathExtension().lastPathComponent
        return (stem, "warning: '\(dataPath)' has no dataset_name attribute and its shapes match no NLB dataset, so the submission group is '\(stem)', which nlb_tools.evaluation.evaluate will not score (it knows mc_maze, mc_rtt, area2_bump, dmfc_rsg and mc_maze_large/medium/small, with _20 for 20 ms bins). Pass --dataset-name to name it.")
    }

    /// NLB'21's datasets: held-in and held-out neurons, and bins of the observed window at 5 ms.
    static let nlbDatasets: [(name: String, heldIn: Int, heldOut: Int, bins5ms: Int)] = [
        ("mc_maze", 137, 45, 140), ("mc_rtt", 98, 32, 120), ("area2_bump", 49, 16, 120), ("dmfc_rsg", 40, 14, 300),
        ("mc_maze_large", 122, 40, 140), ("mc_maze_medium", 114, 38, 140), ("mc_maze_small", 107, 35, 140),
    ]

    /// The NLB group name (`mc_maze` at 5 ms, `mc_maze_20` at 20 ms) of data with these shapes.
    public static func nlbDataset(heldIn: Int, heldOut: Int, bins: Int) -> String? {
        for d in nlbDatasets where d.heldIn == heldIn && d.heldOut == heldOut {
            if bins == d.bins5ms { return d.name }
            if bins * 4 == d.bins5ms { return d.name + "_20" }
        }
        return nil
    }
}

/// Ground truth of synthetic data, for the report: true rates, latents and conditions of the
/// training trials, from a file with a `truth/` group (the built-in Lorenz data itself, or the
/// hidden target file of `nlbsynth`).
public struct GroundTruth {
    /// (n_train, T+F, N), held-in then held-out neurons.
    public var trainRates: [Double]?
    /// (n_train, T+F, K).
    public var trainLatents: [Double]?
    public var latentDimensions = 0
    /// The condition of each training trial.
    public var trainConditions: [Int]?

    /// Reads what `path` has; nil when it has no ground truth that fits this data's shapes.
    public static func load(path: String?, trainCount: Int, steps: Int, neurons: Int, heldIn: Int) -> GroundTruth? {
        guard let path, let file = try? H5File.open(path), file.has("truth") else { return nil }
        var truth = GroundTruth()
        if let (shape, values) = try? file.readDoubles("truth/train_rates"), shape == [trainCount, steps, neurons] {
            truth.trainRates = values
        } else if let pieces = try? ["heldin", "heldout", "heldin_forward", "heldout_forward"].map({ try file.readDoubles("truth/train_rates_\($0)") }),
                  pieces[0].shape.count == 3, pieces[0].shape[0] == trainCount, pieces[0].shape[2] == heldIn,
                  pieces[0].shape[1] + pieces[2].shape[1] == steps, pieces[0].shape[2] + pieces[1].shape[2] == neurons {
            // nlbsynth: rates split like the spikes; join them into (n, T+F, N).
            let T = pieces[0].shape[1], F = pieces[2].shape[1], nHo = neurons - heldIn
            var rates = [Double](repeating: 0, count: trainCount * steps * neurons)
            for i in 0..<trainCount {
                for t in 0..<steps {
                    let (a, b, bins) = t < T ? (pieces[0].values, pieces[1].values, T) : (pieces[2].values, pieces[3].values, F)
                    let tt = t < T ? t : t - T
                    for c in 0..<heldIn { rates[(i * steps + t) * neurons + c] = a[(i * bins + tt) * heldIn + c] }
                    for c in 0..<nHo { rates[(i * steps + t) * neurons + heldIn + c] = b[(i * bins + tt) * nHo + c] }
                }
            }
            truth.trainRates = rates
        }
        if let (shape, values) = try? file.readDoubles("truth/train_latents"), shape.count == 3, shape[0] == trainCount, shape[1] == steps {
            truth.trainLatents = values
            truth.latentDimensions = shape[2]
        }
        if let (shape, values) = try? file.readDoubles("truth/train_conditions"), shape.first == trainCount {
            truth.trainConditions = values.map { Int($0) }
        } else if let (shape, values) = try? file.readDoubles("train_cond_idx"), shape.first == trainCount {
            truth.trainConditions = values.map { Int($0) }          // the Lorenz file: one condition per trial
        }
        return truth.trainRates == nil && truth.trainLatents == nil ? nil : truth
    }
}
