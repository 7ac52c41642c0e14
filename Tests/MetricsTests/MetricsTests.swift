import Foundation
import Testing
import Metrics
@testable import Training

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
