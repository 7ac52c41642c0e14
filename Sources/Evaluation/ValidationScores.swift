import Data
import Foundation
import HDF5
import Inference
import Kernels
import Metrics
import Model
import RunFiles

// Evaluation: scores against data: the validation metrics of a run, latent fits against true
// latents, the smoothed-spikes baseline, the NLB submission and its scoring. It uses Inference's
// rates; it may not train.

extension ValidationScores {
    /// Metrics on the validation trials from `trainRates`, the rates of every training trial
    /// (trial-major (n_train, T+F, Nout), as `Predictor.all` returns them; the submission is
    /// written from the same rates). `baseline` is the smoothed-spikes co-bps of this split.
    public static func compute(trainRates: [Float], dims: DataDims, tensors: NLBTensors, split: ValidationSplit,
                                        baseline: Double, truthPath: String?) throws -> ValidationScores {
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
        var report = ValidationScores(trials: valid.count, coBps: coBps, baselineCoBps: baseline)
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

extension ValidationScores {
    /// The scores as TensorBoard scalars under final/ (the best weights on the validation split).
    public var scalars: [(tag: String, value: Double)] {
        let pairs: [(String, Double?)] = [
            ("final/co_bps", coBps), ("final/fp_bps", fpBps), ("final/vel_r2", velR2), ("final/psth_r2", psthR2),
            ("final/rate_r2", rateR2), ("final/smoothed_spikes_co_bps", baselineCoBps), ("final/latent_r2_zv", latentR2ZV),
            ("final/latent_r2_h", latentR2H),
        ]
        return pairs.compactMap { tag, value in value.map { (tag, $0) } }
    }
}
