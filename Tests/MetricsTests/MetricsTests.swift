import Foundation
import Testing
import HDF5
import Metrics
@testable import Evaluation

/// Native metrics against nlb_tools 0.0.4 on the same arrays (fixtures made by
/// Fixtures/make_fixtures.py with nlb_tools' own `evaluate`).
@Suite("NLB metrics against nlb_tools")
struct MetricsTests {
    static let fixtures = Bundle.module.url(forResource: "Fixtures", withExtension: nil)!.path

    struct Expected: Decodable {
        var evaluate: [String: Double]
        var single: [String: Double]
    }

    func expected(_ name: String) throws -> Expected {
        try JSONDecoder().decode(Expected.self, from: Data(contentsOf: URL(fileURLWithPath: "\(Self.fixtures)/\(name)_expected.json")))
    }

    @Test("evaluate() agrees with nlb_tools.evaluation.evaluate to 1e-6", arguments: ["case1", "case2"])
    func evaluate(_ name: String) throws {
        let want = try expected(name).evaluate
        let got = try Evaluator.evaluate(submission: "\(Self.fixtures)/\(name)_submission.h5",
                                         targets: "\(Self.fixtures)/\(name)_targets.h5")["mc_maze_20"]!
        #expect(abs(got.coBps - want["co-bps"]!) < 1e-6, "co-bps \(got.coBps) vs \(want["co-bps"]!)")
        #expect(abs(got.fpBps! - want["fp-bps"]!) < 1e-6, "fp-bps \(got.fpBps!) vs \(want["fp-bps"]!)")
        #expect(abs(got.velR2! - want["vel R2"]!) < 1e-6, "vel R2 \(got.velR2!) vs \(want["vel R2"]!)")
        #expect(abs(got.psthR2! - want["psth R2"]!) < 1e-6, "psth R2 \(got.psthR2!) vs \(want["psth R2"]!)")
    }

    /// Files written by nlb_tools' own `save_to_h5` (Fixtures/make_nlb_layout_fixtures.py):
    /// variable-length `*_cond_idx`, dmfc_rsg's `eval_jitter` and tp corr, float32 spikes.
    @Test("evaluate() on targets and submissions written by nlb_tools.save_to_h5 equals nlb_tools.evaluation.evaluate to 1e-6",
          arguments: [("nlbmaze", "mc_maze_20"), ("nlbrsg", "dmfc_rsg_20")])
    func nlbToolsLayouts(_ name: String, _ group: String) throws {
        let want = try expected(name).evaluate
        let got = try #require(try Evaluator.evaluate(submission: "\(Self.fixtures)/\(name)_submission.h5",
                                                      targets: "\(Self.fixtures)/\(name)_targets.h5")[group])
        let pairs: [(String, Double?)] = [("co-bps", got.coBps), ("fp-bps", got.fpBps), ("psth R2", got.psthR2),
                                          ("vel R2", got.velR2), ("tp corr", got.tpCorr)]
        for (metric, value) in pairs where want[metric] != nil {
            let value = try #require(value, "\(name): no \(metric)")
            #expect(abs(value - want[metric]!) < 1e-6, "\(name) \(metric): \(value) vs nlb_tools \(want[metric]!)")
        }
        #expect(pairs.compactMap(\.1).count == want.count, "\(name): computed \(pairs) for \(want)")
    }

    @Test("A one-group submission under another name is scored against the one-group target, with a note")
    func groupNameMismatch() throws {
        let dir = NSTemporaryDirectory() + "lflow-metrics-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let renamed = "\(dir)/input.h5"
        let source = try H5File.open("\(Self.fixtures)/nlbmaze_submission.h5")
        do {
            let out = try H5File.create(renamed)
            for key in try source.children(of: "mc_maze_20") {
                let (shape, values) = try source.readFloats("mc_maze_20/\(key)")
                try out.write("input/\(key)", shape: shape, floats: values)
            }
        }
        var notes: [String] = []
        let got = try Evaluator.evaluate(submission: renamed, targets: "\(Self.fixtures)/nlbmaze_targets.h5") { notes.append($0) }
        #expect(abs(got["mc_maze_20"]!.coBps - (try expected("nlbmaze").evaluate["co-bps"]!)) < 1e-6)
        #expect(notes.count == 1 && notes[0].contains("--dataset-name mc_maze_20"), "\(notes)")
    }

    @Test("Index lists read the same from nlb_tools' variable-length layout and from a rectangular array; h5py bools read as 0/1")
    func indexLists() throws {
        let targets = try H5File.open("\(Self.fixtures)/nlbmaze_targets.h5")
        let lists = try targets.readIndexLists("mc_maze_20/eval_cond_idx")
        #expect(lists.count == 6 && lists.flatMap { $0 }.sorted() == Array(0..<24), "\(lists)")
        let masks = try H5File.open("\(Self.fixtures)/nlbdecodemask.h5").readDoubles("area2_bump_20/train_decode_mask")
        #expect(masks.shape == [7, 2] && masks.values.allSatisfy { $0 == 0 || $0 == 1 })
    }

    @Test("Zero rates are replaced by 1e-9 and NaN spikes are masked, as nlb_tools does")
    func edges() {
        let nll = NLBMetrics.poissonNLL(rates: [0, 2, 5], spikes: [1, .nan, 0])
        #expect(abs(nll - (1e-9 - log(1e-9) + 5)) < 1e-9)
        // Predicting each neuron's mean count is the null model: 0 bits per spike. Rows are
        // [1, 2], [3, NaN], [0, 2], so the means (NaN ignored) are 4/3 and 2.
        let spikes: [Double] = [1, 2, 3, .nan, 0, 2]
        let rates: [Double] = [4.0 / 3, 2, 4.0 / 3, 2, 4.0 / 3, 2]
        #expect(abs(NLBMetrics.bitsPerSpike(rates: rates, spikes: spikes, neurons: 2)) < 1e-12)
        // Better-than-null rates give positive bits per spike.
        let sharp: [Double] = [1, 2, 3, 2, 1e-3, 2]
        #expect(NLBMetrics.bitsPerSpike(rates: sharp, spikes: spikes, neurons: 2) > 0)
    }

    @Test("r2_score and ridge basics")
    func r2() {
        #expect(NLBMetrics.r2Score(yTrue: [1, 2, 3, 4], yPred: [1, 2, 3, 4], outputs: 1) == 1)
        #expect(abs(NLBMetrics.r2Score(yTrue: [1, 2, 3, 4], yPred: [2.5, 2.5, 2.5, 2.5], outputs: 1)) < 1e-15)
        // y = 2x + 1 is recovered (almost) exactly with a tiny alpha.
        let x: [Double] = [0, 1, 2, 3, 4], y = x.map { 2 * $0 + 1 }
        let ridge = Ridge(x: x, y: y, features: 1, outputs: 1, alpha: 1e-10)
        #expect(abs(ridge.weights[0] - 2) < 1e-9 && abs(ridge.intercept[0] - 1) < 1e-9)
        #expect(NLBMetrics.ridgeAlphas.count == 9 && NLBMetrics.ridgeAlphas.first! == 1e-4 && NLBMetrics.ridgeAlphas.last! == 1)
    }
}
