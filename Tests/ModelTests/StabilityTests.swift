import Testing
import Foundation
import Kernels
@testable import Model

/// The integrator check (`LangevinStability`): its stiffness bound holds for any kernel, it is
/// nearly reached, and its verdicts are consistent with the mean path it models.
@Suite("Langevin stability")
struct StabilityTests {
    /// ‖A‖₂ of a symmetric matrix, by power iteration on A².
    func spectralNorm(_ a: UnsafePointer<Double>, _ h: Int) -> Double {
        var x = (0..<h).map { 1 + 0.1 * Double($0 % 7) }
        var norm = 0.0
        for _ in 0..<400 {
            var y = [Double](repeating: 0, count: h)
            for r in 0..<h { for c in 0..<h { y[r] += a[r * h + c] * x[c] } }
            var z = [Double](repeating: 0, count: h)
            for r in 0..<h { for c in 0..<h { z[r] += a[r * h + c] * y[c] } }
            let n = z.reduce(0) { $0 + $1 * $1 }.squareRoot()
            norm = n.squareRoot() / x.reduce(0) { $0 + $1 * $1 }.squareRoot().squareRoot()
            x = z.map { $0 / n }
        }
        return norm
    }

    @Test("‖A‖ ≤ the stiffness bound for random and aligned kernels, and the aligned one nearly reaches it",
          arguments: ModelConfig.Potential.allCases)
    func bound(form: ModelConfig.Potential) {
        var config = ModelConfig()
        config.hidden = 48; config.groups = 4; config.kernelSize = 3; config.coupling = -0.7; config.potential = form
        let dims = DataDims(bins: 4, forwardBins: 2, heldIn: 3, heldOut: 2)
        let params = ParameterSet<Double>(layout: ParameterLayout(config: config, dims: dims))
        let potential = CoupledOscillatorPotential<Double>(config: config, layout: params.layout)
        let rho = LangevinStability.stiffness(config)
        let w = params.value("potential.conv_z"), count = params.layout["potential.conv_z"]!.count
        for seed in 0..<4 {
            fillRandom(w, count: count, seed: seed, scale: 1)
            potential.build(params: params)
            let norm = spectralNorm(potential.forceMatrix.ptr, config.hidden)
            #expect(norm <= rho * (1 + 1e-9), "seed \(seed): ‖A‖ \(norm) > bound \(rho)")
        }
        // Every tap equal and positive: the potential the bound is built from.
        for i in 0..<count { w[i] = 1 }
        potential.build(params: params)
        let aligned = spectralNorm(potential.forceMatrix.ptr, config.hidden)
        #expect(aligned <= rho * (1 + 1e-9) && aligned >= 0.85 * rho, "aligned ‖A‖ \(aligned), bound \(rho)")
    }

    @Test("A refused config's suggested dt, coupling and mass are accepted, and the spec's defaults pass")
    func suggestions() throws {
        #expect(LangevinStability.problem(ModelConfig(), steps: 180) == nil)
        var c = ModelConfig()
        c.dt = 0.5; c.damping = 0.05; c.hidden = 64
        let message = try #require(LangevinStability.problem(c, steps: 60))
        #expect(message.contains("dt 0.5") && message.contains("NaN"), "\(message)")
        func value(after prefix: String) throws -> Double {
            let range = try #require(message.range(of: prefix))
            let tail = message[range.upperBound...].prefix { "0123456789.e-".contains($0) }
            return try #require(Double(tail.hasSuffix(".") ? String(tail.dropLast()) : String(tail)))
        }
        var byDt = c; byDt.dt = try value(after: "dt ≤ ")
        var byCoupling = c; byCoupling.coupling = try value(after: "|coupling| ≤ ")
        var byMass = c; byMass.mass = try value(after: "mass ≥ ")
        for fixed in [byDt, byCoupling, byMass] {
            #expect(LangevinStability.problem(fixed, steps: 60) == nil, "dt \(fixed.dt) coupling \(fixed.coupling) mass \(fixed.mass)")
        }
        var first = c; first.dynamics = .firstOrder
        #expect(LangevinStability.problem(first, steps: 60)?.contains("firstOrder") == true)
    }

    @Test("Every shipped config passes the check at its data's trial length")
    func shippedConfigs() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let dir = root.appendingPathComponent("Configs")
        let files = try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.hasSuffix(".yaml") }
        #expect(files.count >= 5)
        for file in files {
            var c = ModelConfig()
            let text = try String(contentsOf: dir.appendingPathComponent(file), encoding: .utf8)
            for line in text.split(separator: "\n") {
                let body = line.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false)[0]
                let parts = body.split(separator: ":", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
                guard parts.count == 2, !parts[1].isEmpty else { continue }
                if let field = ModelConfig.field(named: parts[0]) { try field.set(&c, parts[1]) }      // the model's keys
            }
            // 180 steps: longer than any NLB trial here (MC_RTT 600 ms at 5 ms is 120 + 40).
            #expect(LangevinStability.problem(c, steps: 180) == nil, "\(file) is refused: \(LangevinStability.problem(c, steps: 180) ?? "")")
        }
    }

    @Test("The modelled growth is the mean path's: an aligned kernel's latent path grows as predicted")
    func pathGrowth() {
        // One eigen-direction of A with eigenvalue λ evolves under M(λ); the largest-|λ| repulsive
        // direction of the aligned kernel's A is checked against the 2×2 recursion directly.
        var c = ModelConfig()
        c.hidden = 48; c.groups = 4; c.dt = 0.3; c.damping = 0.2; c.coupling = -1
        let dims = DataDims(bins: 4, forwardBins: 2, heldIn: 3, heldOut: 2)
        let params = ParameterSet<Double>(layout: ParameterLayout(config: c, dims: dims))
        let potential = CoupledOscillatorPotential<Double>(config: c, layout: params.layout)
        let w = params.value("potential.conv_z")
        for i in 0..<params.layout["potential.conv_z"]!.count { w[i] = 1 }
        potential.build(params: params)
        let h = c.hidden, a = potential.forceMatrix.ptr
        // The mean path, the spec's step without noise: z ← z + Δt·v, v ← (1−γ)(v − Δt·A z_old/m).
        var z = [Double](repeating: 1, count: h), v = [Double](repeating: 0, count: h)
        let steps = 30
        for _ in 0..<steps {
            var force = [Double](repeating: 0, count: h)
            for r in 0..<h { for k in 0..<h { force[r] += a[r * h + k] * z[k] } }
            for i in 0..<h { z[i] += c.dt * v[i] }
            for i in 0..<h { v[i] = (1 - c.damping) * (v[i] - c.dt * force[i] / c.mass) }
        }
        let start = Double(h).squareRoot()
        let end = (z + v).reduce(0) { $0 + $1 * $1 }.squareRoot()
        let observed = log10(end / start)
        let bound = LangevinStability.log10Amplification(c, steps: steps + 1)
        #expect(observed <= bound + 1e-6, "path grew 10^\(observed), bound 10^\(bound)")
        // The extreme eigenvalue of this A (repulsive: coupling < 0), and the recursion's growth for it.
        let norm = spectralNorm(a, h)
        let expected = LangevinStability.log10Norm(c, lambda: -norm, power: steps)
        #expect(abs(observed - expected) < 0.5, "path grew 10^\(observed), its top mode predicts 10^\(expected)")
        #expect(expected >= bound - 1.5, "the top mode's growth 10^\(expected) is far below the bound 10^\(bound): the check is not tight")
    }
}
