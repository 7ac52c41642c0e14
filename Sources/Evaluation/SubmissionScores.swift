import Foundation
import HDF5
import Metrics
import Support

/// `lflow-dist evaluate`: the native NLB metrics of a submission against an evaluation target
/// file, as `nlb_tools.evaluation.evaluate` computes them, for every group present in both.
public enum Evaluator {
    public struct Scores: Codable, Equatable, Sendable {
        public var coBps: Double
        public var fpBps: Double?
        public var velR2: Double?
        public var psthR2: Double?
        /// dmfc_rsg only, in place of vel R²: the neural speed–tp correlation.
        public var tpCorr: Double?

        enum CodingKeys: String, CodingKey {
            case coBps = "co-bps", fpBps = "fp-bps", velR2 = "vel R2", psthR2 = "psth R2", tpCorr = "tp corr"
        }
    }

    /// Scores every submission group that the target file also has. When each file has exactly
    /// one group and only their names differ (a submission written under the data file's name,
    /// say), that group is scored against the target's, and `note` says so.
    public static func evaluate(submission: String, targets: String, note: (String) -> Void = { _ in }) throws -> [String: Scores] {
        let sub = try H5File.open(submission), tgt = try H5File.open(targets)
        let submitted = try sub.children(groups: true).sorted().filter { sub.has("\($0)/eval_rates_heldout") }
        let targeted = try tgt.children(groups: true).sorted().filter { tgt.has("\($0)/eval_spikes_heldout") }
        guard !submitted.isEmpty else {
            throw EvaluationError("'\(submission)' has no group with eval_rates_heldout to score")
        }
        if submitted.count == 1, targeted.count == 1, submitted[0] != targeted[0] {
            note("note: '\(submission)' has one group, \(submitted[0]), and '\(targets)' one, \(targeted[0]); scoring the one against the other. nlb_tools.evaluation.evaluate matches groups by name: write the submission with --dataset-name \(targeted[0]).")
            return [targeted[0]: try score(group: targeted[0], submissionGroup: submitted[0], sub: sub, tgt: tgt)]
        }
        var results: [String: Scores] = [:]
        for group in submitted {
            guard targeted.contains(group) else {
                throw EvaluationError("'\(targets)' has no \(group)/eval_spikes_heldout, so '\(submission)' group \(group) cannot be scored. Use the target file made for this dataset\(targeted.isEmpty ? "" : " (it has \(targeted.joined(separator: ", ")))").")
            }
            results[group] = try score(group: group, submissionGroup: group, sub: sub, tgt: tgt)
        }
        return results
    }

    static func score(group: String, submissionGroup: String, sub: H5File, tgt: H5File) throws -> Scores {
        func read(_ file: H5File, _ key: String) throws -> (shape: [Int], values: [Double]) {
            try file.readDoubles("\(file === sub ? submissionGroup : group)/\(key)")
        }
        let heldoutSpikes = try read(tgt, "eval_spikes_heldout")
        let heldoutRates = try read(sub, "eval_rates_heldout")
        try requireSameShape(heldoutRates.shape, heldoutSpikes.shape, "eval_rates_heldout", "eval_spikes_heldout", group)
        let nHo = heldoutSpikes.shape.last!
        var scores = Scores(coBps: NLBMetrics.bitsPerSpike(rates: heldoutRates.values, spikes: heldoutSpikes.values, neurons: nHo))

        let heldinRates = try read(sub, "eval_rates_heldin")
        let nIn = heldinRates.shape.last!, n = nIn + nHo
        let evalRates = NLBMetrics.concatenateLastAxis(heldinRates.values, width: nIn, heldoutRates.values, width: nHo)

        if group.hasPrefix("dmfc_rsg"), tgt.has("\(group)/eval_behavior") {
            let behavior = try read(tgt, "eval_behavior")
            scores.tpCorr = NLBMetrics.speedTpCorrelation(
                evalSpikesHeldOut: heldoutSpikes.values, heldOut: nHo, evalRates: evalRates, neurons: n,
                bins: heldinRates.shape[1], behavior: behavior.values, behaviorColumns: behavior.shape.last!)
        } else if tgt.has("\(group)/train_behavior") && tgt.has("\(group)/eval_behavior") {
            let trainIn = try read(sub, "train_rates_heldin"), trainOut = try read(sub, "train_rates_heldout")
            let trainRates = NLBMetrics.concatenateLastAxis(trainIn.values, width: nIn, trainOut.values, width: nHo)
            let trainBehavior = try read(tgt, "train_behavior"), evalBehavior = try read(tgt, "eval_behavior")
            let outputs = trainBehavior.shape.last!
            let trainTrials = trainIn.shape[0], evalTrials = heldinRates.shape[0]
            let trainBins = trainIn.shape[1], evalBins = heldinRates.shape[1]
            var trainMask: (shape: [Int], values: [Double]) = ([trainTrials, 1], [Double](repeating: 1, count: trainTrials))
            var evalMask: (shape: [Int], values: [Double]) = ([evalTrials, 1], [Double](repeating: 1, count: evalTrials))
            if tgt.has("\(group)/train_decode_mask") {
                trainMask = try read(tgt, "train_decode_mask")
                evalMask = try read(tgt, "eval_decode_mask")
            }
            let masks = trainMask.shape.count > 1 ? trainMask.shape[1] : 1
            var total = 0.0
            for m in 0..<masks {
                func select(_ values: [Double], trials: Int, bins: Int, width: Int, mask: [Double]) -> [Double] {
                    (0..<trials).filter { mask[$0 * masks + m] != 0 }.flatMap { values[($0 * bins * width)..<(($0 + 1) * bins * width)] }
                }
                total += NLBMetrics.velocityR2(
                    trainRates: select(trainRates, trials: trainTrials, bins: trainBins, width: n, mask: trainMask.values),
                    trainBehavior: select(trainBehavior.values, trials: trainTrials, bins: trainBins, width: outputs, mask: trainMask.values),
                    evalRates: select(evalRates, trials: evalTrials, bins: evalBins, width: n, mask: evalMask.values),
                    evalBehavior: select(evalBehavior.values, trials: evalTrials, bins: evalBins, width: outputs, mask: evalMask.values),
                    features: n, outputs: outputs)
            }
            scores.velR2 = total / Double(masks)
        }
        if tgt.has("\(group)/psth") {
            let psth = try read(tgt, "psth")
            let conditions = try tgt.readIndexLists("\(group)/eval_cond_idx")
            let jitter = tgt.has("\(group)/eval_jitter") ? try read(tgt, "eval_jitter").values.map { Int($0) } : nil
            scores.psthR2 = NLBMetrics.psthR2(psth: psth.values, evalRates: evalRates, conditions: conditions,
                                             bins: psth.shape[1], neurons: n, jitter: jitter)
        }
        if sub.has("\(submissionGroup)/eval_rates_heldin_forward") && tgt.has("\(group)/eval_spikes_heldin_forward") {
            let rIn = try read(sub, "eval_rates_heldin_forward"), rOut = try read(sub, "eval_rates_heldout_forward")
            let sIn = try read(tgt, "eval_spikes_heldin_forward"), sOut = try read(tgt, "eval_spikes_heldout_forward")
            try requireSameShape(rIn.shape, sIn.shape, "eval_rates_heldin_forward", "eval_spikes_heldin_forward", group)
            try requireSameShape(rOut.shape, sOut.shape, "eval_rates_heldout_forward", "eval_spikes_heldout_forward", group)
            scores.fpBps = NLBMetrics.bitsPerSpike(
                rates: NLBMetrics.concatenateLastAxis(rIn.values, width: nIn, rOut.values, width: nHo),
                spikes: NLBMetrics.concatenateLastAxis(sIn.values, width: nIn, sOut.values, width: nHo), neurons: n)
        }
        return scores
    }

    static func requireSameShape(_ a: [Int], _ b: [Int], _ keyA: String, _ keyB: String, _ group: String) throws {
        guard a == b else {
            throw EvaluationError("\(group): the submission's \(keyA) is \(a) but the target's \(keyB) is \(b); they must match")
        }
    }
}

public enum EvaluationFailure {}
public typealias EvaluationError = Failure<EvaluationFailure>
