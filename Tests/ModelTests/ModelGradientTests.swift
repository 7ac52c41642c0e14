import Testing
import Foundation
import Kernels
@testable import Model

/// Finite-difference checks in Double for each layer (parameters and inputs) and for the whole
/// model (every parameter tensor), over every option the spec names.

let tinyDims = DataDims(bins: 4, forwardBins: 2, heldIn: 3, heldOut: 2)
let tolerance = 1e-5

func tinyConfig(_ edit: (inout ModelConfig) -> Void = { _ in }) -> ModelConfig {
    var c = ModelConfig()
    c.hidden = 6
    c.groups = 2
    c.kernelSize = 3
    c.heads = 2
    c.feedForward = 5
    c.dropout = 0.3
    c.decoderDropout = 0.25
    c.cdKeep = 0.6
    c.coupling = 0.8
    c.dt = 0.1          // larger than the default so the force matters in a few steps
    c.mass = 1.3
    c.damping = 0.4
    c.temperature = 0.9
    c.velocityPriorVar = 0.3
    edit(&c)
    return c
}

/// Parameters initialised as in training, then moved off their 1/0/zero inits so every
/// gradient is non-trivial.
func perturbedParameters(_ config: ModelConfig, dims: DataDims = tinyDims, seed: Int = 3) -> ParameterSet<Double> {
    let params = ParameterSet<Double>(layout: ParameterLayout(config: config, dims: dims))
    params.initialise(seed: seed)
    let jitter = Buffer<Double>(count: params.values.count)
    fillRandom(jitter.ptr, count: jitter.count, seed: seed + 100, scale: 0.2)
    for i in 0..<jitter.count { params.values[i] += jitter[i] }
    return params
}

/// Indices checked in a tensor: all of a small one, an even spread of a large one.
func sampleIndices(_ count: Int, limit: Int = 48) -> [Int] {
    count <= limit ? Array(0..<count) : (0..<limit).map { $0 * count / limit }
}

/// Checks d loss / d p against central differences on `p[0..<count]`; `analytic` is the
/// gradient buffer the model filled.
func expectGradient(_ label: String, loss: () -> Double, p: UnsafeMutablePointer<Double>,
                    analytic: UnsafePointer<Double>, count: Int) {
    let idx = sampleIndices(count)
    var numeric: [Double] = []
    for i in idx {
        numeric.append(numericGradient(of: loss, wrt: p + i, count: 1)[0])
    }
    let a = idx.map { analytic[$0] }
    let err = relativeError(a, numeric)
    #expect(err <= tolerance, "\(label): relative error \(err)")
    #expect(a.contains { $0 != 0 } || numeric.allSatisfy { abs($0) < 1e-9 }, "\(label): gradient is all zero")
}

func stochasticNoise(batch: Int) -> NoiseContext {
    NoiseContext(stochastic: true, seed: 11, epoch: 2, step: 5, trialIndices: (0..<batch).map { $0 * 7 + 1 })
}

func randomTargets(_ batch: Batch<Double>, seed: Int, missing: Bool = true) {
    let n = batch.targets.count
    fillRandom(batch.targets.ptr, count: n, seed: seed, scale: 1)
    for i in 0..<n { batch.targets[i] = (2 * (batch.targets[i] + 1)).rounded(.down) }   // counts 0…3
    if missing { batch.targets[1] = .nan; batch.targets[n / 2] = .nan }
}

@Suite("Layer gradients")
struct LayerGradientTests {
    /// d (Σ weights ⊙ h) / d (parameters, input) of one GRU, the spec's forward one or the
    /// reverse one of a bidirectional encoder.
    func checkEncoder(input: ModelConfig.EncoderInput, stochastic: Bool, reversed: Bool) {
        let config = tinyConfig { $0.encoderInput = input; if reversed { $0.encoder = .bidirectional } }
        let params = perturbedParameters(config)
        let b = 3, steps = tinyDims.steps, h = config.hidden
        let encoder = GRUEncoder<Double>(config: config, dims: tinyDims, maxBatch: b, layout: params.layout, reversed: reversed)
        let x = Buffer<Double>(count: tinyDims.bins * b * tinyDims.heldIn)
        fillRandom(x.ptr, count: x.count, seed: 5, scale: 2)
        let weights = Buffer<Double>(count: steps * b * h)
        fillRandom(weights.ptr, count: weights.count, seed: 6)
        let noise = stochastic ? stochasticNoise(batch: b) : .deterministic(batch: b)
        func loss() -> Double {
            encoder.forward(x: x.ptr, batch: b, params: params, noise: noise)
            return (0..<weights.count).reduce(0) { $0 + encoder.states[$1] * weights[$1] }
        }
        _ = loss()
        params.grads.zero()
        let dStates = Buffer<Double>(weights.array)
        let dx = Buffer<Double>(count: x.count)
        encoder.backward(dStates: dStates.ptr, dx: dx.ptr, x: x.ptr, batch: b, params: params)
        let prefix = GRUEncoder<Double>.prefix(reversed: reversed)
        for name in ["weight_ih", "weight_hh", "bias_ih", "bias_hh"].map({ "\(prefix).\($0)" }) {
            expectGradient(name, loss: loss, p: params.value(name), analytic: params.grad(name),
                           count: params.layout[name]!.count)
        }
        if reversed {
            for name in ["encoder.weight_ih", "encoder.weight_hh"] {
                let grad = params.grad(name)
                #expect((0..<params.layout[name]!.count).allSatisfy { grad[$0] == 0 }, "\(name) is the forward GRU's, untouched")
            }
        }
        expectGradient("\(prefix) input", loss: loss, p: x.ptr, analytic: dx.ptr, count: x.count)
    }

    @Test("GRU encoder: parameters and input", arguments: ModelConfig.EncoderInput.allCases, [false, true])
    func encoder(input: ModelConfig.EncoderInput, stochastic: Bool) {
        checkEncoder(input: input, stochastic: stochastic, reversed: false)
    }

    @Test("Reverse GRU of the bidirectional encoder: parameters and input", arguments: ModelConfig.EncoderInput.allCases, [false, true])
    func reverseEncoder(input: ModelConfig.EncoderInput, stochastic: Bool) {
        checkEncoder(input: input, stochastic: stochastic, reversed: true)
    }

    @Test("Bidirectional encoder with lagged input: h_t never depends on x_t (t ≥ 1; the forward GRU's first step reads x_0), and h_0 sees every bin")
    func bidirectionalLeavesOneOut() {
        let config = tinyConfig { $0.encoderInput = .lagged; $0.encoder = .bidirectional; $0.cdKeep = 1 }
        let b = 2, h = config.hidden, bins = tinyDims.bins
        let model = LangevinFlow<Double>(config: config, dims: tinyDims, maxBatch: b)
        model.params.values.copy(from: perturbedParameters(config).values)
        let batch = Batch<Double>(dims: tinyDims, capacity: b)
        randomTargets(batch, seed: 53, missing: false)
        func states() -> [Double] {
            _ = model.forward(batch, noise: .deterministic(batch: b), klWeight: 0.5)
            return Array(UnsafeBufferPointer(start: model.states.ptr, count: tinyDims.steps * b * h))
        }
        let base = states()
        for t in 1..<bins {
            // Change trial 0's held-in counts at bin t only.
            let row = batch.targets.ptr + (t * b) * tinyDims.outputs
            let saved = Array(UnsafeBufferPointer(start: row, count: tinyDims.heldIn))
            for i in 0..<tinyDims.heldIn { row[i] += 3 }
            let moved = states()
            for i in 0..<tinyDims.heldIn { row[i] = saved[i] }
            let atT = (0..<h).map { moved[t * b * h + $0] - base[t * b * h + $0] }
            #expect(atT.allSatisfy { $0 == 0 }, "h_\(t) moved with x_\(t)")
            #expect((0..<h).contains { moved[$0] != base[$0] }, "h_0 did not see x_\(t)")
        }
    }

    @Test("Posterior heads: parameters and h0", arguments: [false, true])
    func posterior(stochastic: Bool) {
        let config = tinyConfig()
        let params = perturbedParameters(config)
        let b = 3, h = config.hidden, klScale = 0.37
        let head = PosteriorHead<Double>(latent: "v", hidden: h, maxBatch: b, layout: params.layout)
        let h0 = Buffer<Double>(count: b * h)
        fillRandom(h0.ptr, count: h0.count, seed: 8, scale: 3)
        let sample = Buffer<Double>(count: b * h)
        let weights = Buffer<Double>(count: b * h)
        fillRandom(weights.ptr, count: weights.count, seed: 9)
        let noise = stochastic ? stochasticNoise(batch: b) : .deterministic(batch: b)
        func loss() -> Double {
            let kl = head.forward(h0: h0.ptr, sample: sample.ptr, batch: b, params: params, noise: noise)
            return klScale * kl + (0..<weights.count).reduce(0) { $0 + sample[$1] * weights[$1] }
        }
        _ = loss()
        params.grads.zero()
        let dh0 = Buffer<Double>(count: b * h)
        head.backward(dSample: weights.ptr, klScale: klScale, h0: h0.ptr, dh0: dh0.ptr, batch: b, params: params)
        for name in ["linear_v_means.weight", "linear_v_means.bias", "linear_v_logvar.weight", "linear_v_logvar.bias"] {
            expectGradient(name, loss: loss, p: params.value(name), analytic: params.grad(name),
                           count: params.layout[name]!.count)
        }
        expectGradient("posterior input h0", loss: loss, p: h0.ptr, analytic: dh0.ptr, count: h0.count)
    }

    @Test("Per-step posterior head (steps rows per trial): parameters and h_t", arguments: [false, true])
    func innovationHead(stochastic: Bool) {
        let config = tinyConfig { $0.posterior = .perStep }
        let params = perturbedParameters(config)
        let b = 3, h = config.hidden, steps = tinyDims.steps - 1, klScale = 0.41
        let head = PosteriorHead<Double>(latent: "u", hidden: h, maxBatch: b, layout: params.layout, steps: steps)
        let states = Buffer<Double>(count: steps * b * h)
        fillRandom(states.ptr, count: states.count, seed: 81, scale: 3)
        let sample = Buffer<Double>(count: steps * b * h), weights = Buffer<Double>(count: steps * b * h)
        fillRandom(weights.ptr, count: weights.count, seed: 82)
        let noise = stochastic ? stochasticNoise(batch: b) : .deterministic(batch: b)
        func loss() -> Double {
            let kl = head.forward(h0: states.ptr, sample: sample.ptr, batch: b, params: params, noise: noise)
            return klScale * kl + (0..<weights.count).reduce(0) { $0 + sample[$1] * weights[$1] }
        }
        _ = loss()
        if stochastic {
            // Every step of every trial draws its own noise.
            let eps = (0..<sample.count).map { sample[$0] - head.mean[$0] }
            #expect(Set(eps.map { ($0 * 1e9).rounded() }).count == eps.count)
        }
        params.grads.zero()
        let dStates = Buffer<Double>(count: states.count)
        head.backward(dSample: weights.ptr, klScale: klScale, h0: states.ptr, dh0: dStates.ptr, batch: b, params: params)
        for name in ["linear_u_means.weight", "linear_u_means.bias", "linear_u_logvar.weight", "linear_u_logvar.bias"] {
            expectGradient(name, loss: loss, p: params.value(name), analytic: params.grad(name), count: params.layout[name]!.count)
        }
        expectGradient("per-step posterior input h_t", loss: loss, p: states.ptr, analytic: dStates.ptr, count: states.count)
    }

    @Test("Input-dependent potential φ (kernel-normalised MLP): parameters")
    func inputPotential() {
        let config = tinyConfig { $0.potentialInput = .spikes }
        let params = perturbedParameters(config)
        let b = 3, h = config.hidden, bins = tinyDims.bins
        let phi = InputPotential<Double>(config: config, dims: tinyDims, maxBatch: b, layout: params.layout)
        let x = Buffer<Double>(count: bins * b * tinyDims.heldIn)
        fillRandom(x.ptr, count: x.count, seed: 83, scale: 2)
        let weights = Buffer<Double>(count: bins * b * h)
        fillRandom(weights.ptr, count: weights.count, seed: 84)
        func loss() -> Double {
            phi.forward(x: x.ptr, batch: b, params: params)
            return (0..<weights.count).reduce(0) { $0 + phi.drive[$1] * weights[$1] }
        }
        _ = loss()
        #expect((0..<(bins * b * h)).contains { phi.preActivation[$0] < 0 } && (0..<(bins * b * h)).contains { phi.preActivation[$0] > 0 },
                "the ReLU is exercised on both sides")
        params.grads.zero()
        phi.dDrive.copy(from: weights)
        phi.backward(x: x.ptr, batch: b, params: params)
        for name in ["potential.layer_x.0.weight", "potential.layer_x.0.bias", "potential.layer_x.2.weight", "potential.layer_x.2.bias"] {
            expectGradient(name, loss: loss, p: params.value(name), analytic: params.grad(name), count: params.layout[name]!.count)
        }
        // Kernel-normalised: scaling a weight row leaves φ unchanged.
        _ = loss()
        let before = Array(UnsafeBufferPointer(start: phi.drive.ptr, count: bins * b * h))
        let w = params.value("potential.layer_x.0.weight")
        for i in 0..<tinyDims.heldIn { w[i] *= 3 }
        _ = loss()
        let after = Array(UnsafeBufferPointer(start: phi.drive.ptr, count: bins * b * h))
        #expect(zip(before, after).allSatisfy { abs($0 - $1) < 1e-12 })
    }

    @Test("Potential force matrix: kernel", arguments: ModelConfig.Potential.allCases, ModelConfig.Stiffness.allCases)
    func potential(form: ModelConfig.Potential, stiffness: ModelConfig.Stiffness) {
        let config = tinyConfig { $0.potential = form; $0.stiffness = stiffness }
        let params = perturbedParameters(config)
        let potential = CoupledOscillatorPotential<Double>(config: config, layout: params.layout)
        let h = config.hidden
        let weights = Buffer<Double>(count: h * h)
        fillRandom(weights.ptr, count: weights.count, seed: 12)
        func loss() -> Double {
            potential.build(params: params)
            return (0..<weights.count).reduce(0) { $0 + potential.forceMatrix[$1] * weights[$1] }
        }
        _ = loss()
        params.grads.zero()
        potential.backward(dForceMatrix: weights.ptr, params: params)
        expectGradient("potential.conv_z (\(form), \(stiffness))", loss: loss, p: params.value("potential.conv_z"),
                       analytic: params.grad("potential.conv_z"), count: params.layout["potential.conv_z"]!.count)
    }

    @Test("Force matrix is symmetric and is ∂U/∂z of the conv1d potential", arguments: ModelConfig.Potential.allCases)
    func forceMatchesPotential(form: ModelConfig.Potential) {
        let config = tinyConfig { $0.potential = form }
        let params = perturbedParameters(config)
        let potential = CoupledOscillatorPotential<Double>(config: config, layout: params.layout)
        potential.build(params: params)
        let h = config.hidden, g = config.groups, l = config.groupLength, k = config.kernelSize
        // U(z) computed directly from the spec's conv1d definition.
        let w = params.value("potential.conv_z")
        func energy(_ z: [Double]) -> Double {
            var norms = [Double](repeating: 0, count: g * g)
            for p in 0..<(g * g) {
                norms[p] = max((0..<k).reduce(0) { $0 + w[p * k + $1] * w[p * k + $1] }.squareRoot(), 1e-8)
            }
            var u = 0.0
            for o in 0..<g {
                for pos in 0..<l {
                    var v = 0.0
                    for i in 0..<g {
                        for tap in 0..<k {
                            let src = pos + tap - k / 2
                            if src >= 0 && src < l { v += w[(o * g + i) * k + tap] / norms[o * g + i] * z[i * l + src] }
                        }
                    }
                    for j in 0..<g where form == .allPairs || j == o { u += v * z[j * l + pos] }
                }
            }
            return config.coupling * u
        }
        var z = [Double](repeating: 0, count: h)
        z.withUnsafeMutableBufferPointer { fillRandom($0.baseAddress!, count: h, seed: 21) }
        for row in 0..<h {
            for col in 0..<h {
                #expect(abs(potential.forceMatrix[row * h + col] - potential.forceMatrix[col * h + row]) < 1e-14)
            }
        }
        for i in 0..<h {
            var zp = z, zm = z
            zp[i] += 1e-6
            zm[i] -= 1e-6
            let numeric = (energy(zp) - energy(zm)) / 2e-6
            let analytic = (0..<h).reduce(0) { $0 + potential.forceMatrix[i * h + $1] * z[$1] }
            #expect(abs(numeric - analytic) <= 1e-6 * max(1, abs(numeric)), "force[\(i)]: \(analytic) vs \(numeric)")
        }
    }

    @Test("Langevin integrator: z0, v0 and the force matrix", arguments: ModelConfig.Dynamics.allCases, [false, true])
    func dynamics(order: ModelConfig.Dynamics, stochastic: Bool) {
        checkDynamics(order: order, stochastic: stochastic, integrator: .explicit)
    }

    @Test("Midpoint Langevin integrator: z0, v0 and the force matrix (through (I + cA)⁻¹)", arguments: ModelConfig.Dynamics.allCases, [false, true])
    func midpointDynamics(order: ModelConfig.Dynamics, stochastic: Bool) {
        checkDynamics(order: order, stochastic: stochastic, integrator: .midpoint)
    }

    func checkDynamics(order: ModelConfig.Dynamics, stochastic: Bool, integrator: ModelConfig.Integrator) {
        let config = tinyConfig { $0.dynamics = order; $0.integrator = integrator }
        let b = 3, h = config.hidden, steps = tinyDims.steps, klScale = 0.29
        let dynamics = LangevinDynamics<Double>(config: config, steps: steps, maxBatch: b)
        let a = Buffer<Double>(count: h * h)
        fillRandom(a.ptr, count: a.count, seed: 30, scale: 2)
        let z0 = Buffer<Double>(count: b * h), v0 = Buffer<Double>(count: b * h)
        fillRandom(z0.ptr, count: z0.count, seed: 31)
        fillRandom(v0.ptr, count: v0.count, seed: 32)
        let wz = Buffer<Double>(count: steps * b * h), wv = Buffer<Double>(count: steps * b * h)
        fillRandom(wz.ptr, count: wz.count, seed: 33)
        fillRandom(wv.ptr, count: wv.count, seed: 34)
        let second = order == .secondOrder
        let noise = stochastic ? stochasticNoise(batch: b) : .deterministic(batch: b)
        func loss() -> Double {
            dynamics.positions.ptr.update(from: z0.ptr, count: b * h)
            if second { dynamics.velocities.ptr.update(from: v0.ptr, count: b * h) }
            var total = klScale * dynamics.forward(forceMatrix: a.ptr, batch: b, noise: noise)
            for i in 0..<(steps * b * h) {
                total += dynamics.positions[i] * wz[i] + (second ? dynamics.velocities[i] * wv[i] : 0)
            }
            return total
        }
        _ = loss()
        dynamics.dPositions.copy(from: wz)
        if second { dynamics.dVelocities.copy(from: wv) }
        dynamics.backward(forceMatrix: a.ptr, klScale: klScale, batch: b)
        expectGradient("z0 (\(order))", loss: loss, p: z0.ptr, analytic: dynamics.dPositions.ptr, count: b * h)
        if second {
            expectGradient("v0", loss: loss, p: v0.ptr, analytic: dynamics.dVelocities.ptr, count: b * h)
        }
        expectGradient("force matrix (\(order))", loss: loss, p: a.ptr, analytic: dynamics.dForceMatrix.ptr, count: h * h)
    }

    @Test("Langevin integrator with a drive and per-step innovations: z0, v0, A, the drive and the innovations",
          arguments: ModelConfig.Dynamics.allCases, ModelConfig.Integrator.allCases)
    func drivenDynamics(order: ModelConfig.Dynamics, integrator: ModelConfig.Integrator) {
        let config = tinyConfig { $0.dynamics = order; $0.posterior = .perStep; $0.integrator = integrator }
        let b = 3, h = config.hidden, steps = tinyDims.steps, bins = tinyDims.bins
        let dynamics = LangevinDynamics<Double>(config: config, steps: steps, maxBatch: b)
        let a = Buffer<Double>(count: h * h)
        fillRandom(a.ptr, count: a.count, seed: 85, scale: 2)
        let z0 = Buffer<Double>(count: b * h), v0 = Buffer<Double>(count: b * h)
        fillRandom(z0.ptr, count: z0.count, seed: 86)
        fillRandom(v0.ptr, count: v0.count, seed: 87)
        let drive = Buffer<Double>(count: bins * b * h), innovations = Buffer<Double>(count: (steps - 1) * b * h)
        fillRandom(drive.ptr, count: drive.count, seed: 88)
        fillRandom(innovations.ptr, count: innovations.count, seed: 89)
        let wz = Buffer<Double>(count: steps * b * h), wv = Buffer<Double>(count: steps * b * h)
        fillRandom(wz.ptr, count: wz.count, seed: 90)
        fillRandom(wv.ptr, count: wv.count, seed: 91)
        let second = order == .secondOrder
        let row: (Int) -> Int = { min(max($0 - 1, 0), bins - 1) }
        func loss() -> Double {
            dynamics.positions.ptr.update(from: z0.ptr, count: b * h)
            if second { dynamics.velocities.ptr.update(from: v0.ptr, count: b * h) }
            let kl = dynamics.forward(forceMatrix: a.ptr, batch: b, noise: stochasticNoise(batch: b), drive: drive.ptr, driveRow: row,
                                      innovations: innovations.ptr)
            #expect(kl == 0, "with innovations the transition KL is the posterior head's")
            var total = 0.0
            for i in 0..<(steps * b * h) {
                total += dynamics.positions[i] * wz[i] + (second ? dynamics.velocities[i] * wv[i] : 0)
            }
            return total
        }
        _ = loss()
        dynamics.dPositions.copy(from: wz)
        if second { dynamics.dVelocities.copy(from: wv) }
        let dDrive = Buffer<Double>(count: drive.count)
        dynamics.backward(forceMatrix: a.ptr, klScale: 0.3, batch: b, dDrive: dDrive.ptr, driveRow: row)
        expectGradient("z0 (\(order), driven)", loss: loss, p: z0.ptr, analytic: dynamics.dPositions.ptr, count: b * h)
        if second { expectGradient("v0 (driven)", loss: loss, p: v0.ptr, analytic: dynamics.dVelocities.ptr, count: b * h) }
        expectGradient("force matrix (\(order), driven)", loss: loss, p: a.ptr, analytic: dynamics.dForceMatrix.ptr, count: h * h)
        expectGradient("drive φ (\(order))", loss: loss, p: drive.ptr, analytic: dDrive.ptr, count: drive.count)
        expectGradient("innovations (\(order))", loss: loss, p: innovations.ptr, analytic: dynamics.dInnovations.ptr + b * h,
                       count: innovations.count)
    }

    @Test("Readout and Poisson loss: parameters and input (factors 0: the spec's; 4: a rank-4 bottleneck)", arguments: [0, 4])
    func readout(_ factors: Int) {
        let config = tinyConfig { $0.factors = factors }
        let params = perturbedParameters(config)
        let b = 3, steps = tinyDims.steps, d = config.decoderWidth, nOut = tinyDims.outputs, rows = steps * b
        let readout = PoissonReadout<Double>(width: d, outputs: nOut, steps: steps, maxBatch: b, layout: params.layout)
        let x = Buffer<Double>(count: rows * d)
        fillRandom(x.ptr, count: x.count, seed: 40)
        let y = Buffer<Double>(count: rows * nOut), mask = Buffer<Double>(count: rows * nOut)
        fillRandom(y.ptr, count: y.count, seed: 41)
        for i in 0..<y.count { y[i] = (2 * (y[i] + 1)).rounded(.down); mask[i] = i % 5 == 0 ? 0 : 1 }
        let scale = 0.13
        func loss() -> Double {
            readout.forward(x: x.ptr, rows: rows, params: params)
            return scale * readout.nll(targets: y.ptr, lossMask: mask.ptr, rows: rows)
        }
        _ = loss()
        params.grads.zero()
        let dx = Buffer<Double>(count: rows * d)
        readout.backward(dx: dx.ptr, x: x.ptr, targets: y.ptr, gradMask: mask.ptr, scale: scale, rows: rows, params: params)
        #expect((params.layout["factors.weight"] != nil) == (factors > 0))
        for name in ["readout.weight", "readout.bias"] + (factors > 0 ? ["factors.weight"] : []) {
            expectGradient(name, loss: loss, p: params.value(name), analytic: params.grad(name), count: params.layout[name]!.count)
        }
        expectGradient("readout input", loss: loss, p: x.ptr, analytic: dx.ptr, count: dx.count)
    }
}

/// Every combination the spec names: potential × encoder input × dynamics × decoder.
struct Variant: CustomTestStringConvertible, Sendable {
    var potential: ModelConfig.Potential
    var encoderInput: ModelConfig.EncoderInput
    var dynamics: ModelConfig.Dynamics
    var decoder: ModelConfig.Decoder
    var testDescription: String { "\(potential)/\(encoderInput)/\(dynamics)/\(decoder)" }

    static let all: [Variant] = ModelConfig.Potential.allCases.flatMap { p in
        ModelConfig.EncoderInput.allCases.flatMap { e in
            ModelConfig.Dynamics.allCases.flatMap { d in
                [ModelConfig.Decoder.linear].map { Variant(potential: p, encoderInput: e, dynamics: d, decoder: $0) }
            }
        }
    }
}

@Suite("Whole-model gradients")
struct ModelGradientTests {
    /// With coordinated dropout on, the reconstruction gradient deliberately skips the entries
    /// the encoder saw (spec "Loss"), so it is not the gradient of the loss value; the
    /// stochastic check turns it off and `CoordinatedDropoutTests` checks the masks.
    func check(_ variant: Variant, stochastic: Bool, edit: (inout ModelConfig) -> Void = { _ in }) {
        let config = tinyConfig {
            $0.cdKeep = 1
            $0.potential = variant.potential
            $0.encoderInput = variant.encoderInput
            $0.dynamics = variant.dynamics
            $0.decoder = variant.decoder
            edit(&$0)
        }
        let b = 3
        let model = LangevinFlow<Double>(config: config, dims: tinyDims, maxBatch: b)
        let reference = perturbedParameters(config)
        model.params.values.copy(from: reference.values)
        let batch = Batch<Double>(dims: tinyDims, capacity: b)
        randomTargets(batch, seed: 50)
        let noise = stochastic ? stochasticNoise(batch: b) : .deterministic(batch: b)
        func loss() -> Double { model.forward(batch, noise: noise, klWeight: 0.7).total }
        let values = model.forward(batch, noise: noise, klWeight: 0.7)
        #expect(values.reconstruction.isFinite && values.kl > 0)
        model.params.grads.zero()
        model.backward()
        for entry in model.params.layout.entries {
            expectGradient("\(variant.testDescription) \(stochastic ? "stochastic" : "deterministic") \(entry.name)",
                           loss: loss, p: model.params.values.ptr + entry.offset,
                           analytic: model.params.grads.ptr + entry.offset, count: entry.count)
        }
    }

    @Test("Deterministic mode, every variant", arguments: Variant.all)
    func deterministic(_ variant: Variant) { check(variant, stochastic: false) }

    @Test("Stochastic mode (dropout, coordinated dropout, sampling) with fixed noise", arguments: Variant.all)
    func stochastic(_ variant: Variant) { check(variant, stochastic: true) }

    @Test("An energy potential (stiffness gram) with the midpoint integrator, with the per-step posterior and the input potential",
          arguments: ModelConfig.Dynamics.allCases, [false, true])
    func energyMidpoint(order: ModelConfig.Dynamics, stochastic: Bool) {
        check(Variant(potential: .allPairs, encoderInput: .lagged, dynamics: order, decoder: .linear), stochastic: stochastic) {
            $0.stiffness = .gram; $0.integrator = .midpoint; $0.dt = 0.5; $0.posterior = .perStep; $0.potentialInput = .spikes
        }
    }

    @Test("Transformer decoder with the sinusoidal positional encoding", arguments: [false, true])
    func positionalEncoding(_ stochastic: Bool) {
        check(Variant(potential: .allPairs, encoderInput: .lagged, dynamics: .secondOrder, decoder: .transformer),
              stochastic: stochastic) { $0.positionalEncoding = .sinusoidal }
    }

    @Test("Bidirectional encoder (lagged and current input)", arguments: ModelConfig.EncoderInput.allCases, [false, true])
    func bidirectionalEncoder(_ input: ModelConfig.EncoderInput, _ stochastic: Bool) {
        check(Variant(potential: .allPairs, encoderInput: input, dynamics: .secondOrder, decoder: .transformer),
              stochastic: stochastic) { $0.encoder = .bidirectional; $0.positionalEncoding = .sinusoidal }
    }

    @Test("Readout factors (a rank-3 bottleneck before the readout), bidirectional encoder", arguments: [false, true])
    func readoutFactors(_ stochastic: Bool) {
        check(Variant(potential: .allPairs, encoderInput: .current, dynamics: .secondOrder, decoder: .transformer),
              stochastic: stochastic) { $0.factors = 3; $0.encoder = .bidirectional; $0.positionalEncoding = .sinusoidal }
    }

    @Test("Per-step posterior and input-dependent potential, alone and together, with every encoder input, both orders, both coupling forms, bidirectional, decoderInput zv",
          arguments: [
            (ModelConfig.Posterior.perStep, ModelConfig.PotentialInput.none, ModelConfig.EncoderInput.lagged, ModelConfig.Dynamics.secondOrder, ModelConfig.Potential.allPairs),
            (.perStep, .none, .current, .firstOrder, .diagonal),
            (.initial, .spikes, .lagged, .secondOrder, .diagonal),
            (.initial, .spikes, .current, .firstOrder, .allPairs),
            (.perStep, .spikes, .lagged, .secondOrder, .allPairs),
          ], [false, true])
    func dataDrivenDynamics(_ c: (ModelConfig.Posterior, ModelConfig.PotentialInput, ModelConfig.EncoderInput, ModelConfig.Dynamics, ModelConfig.Potential), _ stochastic: Bool) {
        for (bidirectional, zv) in [(false, false), (true, true)] {
            check(Variant(potential: c.4, encoderInput: c.2, dynamics: c.3, decoder: .transformer), stochastic: stochastic) {
                $0.posterior = c.0
                $0.potentialInput = c.1
                $0.positionalEncoding = .sinusoidal
                if bidirectional { $0.encoder = .bidirectional }
                if zv { $0.decoderInput = .zv }
            }
        }
    }

    @Test("The new options name their tensors in PyTorch style after the spec's, and leave the spec's layout as it was")
    func dataDrivenLayout() {
        let spec = ParameterLayout(config: tinyConfig(), dims: tinyDims).entries
        let both = ParameterLayout(config: tinyConfig { $0.posterior = .perStep; $0.potentialInput = .spikes }, dims: tinyDims).entries
        #expect(both.map(\.name).filter { n in spec.contains { $0.name == n } } == spec.map(\.name))
        let added = both.filter { n in !spec.contains { $0.name == n.name } }
        let h = tinyConfig().hidden, nIn = tinyDims.heldIn
        #expect(added.map(\.name) == ["linear_u_means.weight", "linear_u_means.bias", "linear_u_logvar.weight", "linear_u_logvar.bias",
                                       "potential.layer_x.0.weight", "potential.layer_x.0.bias", "potential.layer_x.2.weight", "potential.layer_x.2.bias"])
        #expect(added.map(\.shape) == [[h, h], [h], [h, h], [h], [h, nIn], [h], [h, h], [h]])
    }

    @Test("With the per-step posterior the mean path moves with the data after t = 0, and the transition KL is zero when the posterior is the prior")
    func perStepConditionsThePath() {
        let config = tinyConfig { $0.posterior = .perStep; $0.encoderInput = .lagged; $0.cdKeep = 1 }
        let b = 2, h = config.hidden
        let model = LangevinFlow<Double>(config: config, dims: tinyDims, maxBatch: b)
        model.params.values.copy(from: perturbedParameters(config).values)
        let batch = Batch<Double>(dims: tinyDims, capacity: b)
        randomTargets(batch, seed: 54, missing: false)
        func velocities() -> [Double] {
            _ = model.forward(batch, noise: .deterministic(batch: b), klWeight: 0.5)
            return Array(UnsafeBufferPointer(start: model.dynamics.velocities.ptr, count: tinyDims.steps * b * h))
        }
        let base = velocities()
        // Trial 0's spikes at bin 2 move v_3 (h_3 read x_2), and not v_0 … v_2 (forward encoder, lagged).
        let row = batch.targets.ptr + (2 * b) * tinyDims.outputs
        for i in 0..<tinyDims.heldIn { row[i] += 3 }
        let moved = velocities()
        func changed(_ t: Int) -> Bool { (0..<h).contains { moved[t * b * h + $0] != base[t * b * h + $0] } }
        #expect(!changed(0) && !changed(1) && !changed(2) && changed(3))
        // Posterior = prior (a = 0, log b² = 0): no transition KL; only z_0, v_0 count.
        for name in ["linear_u_means.weight", "linear_u_means.bias", "linear_u_logvar.weight", "linear_u_logvar.bias"] {
            let p = model.params.value(name)
            for i in 0..<model.params.layout[name]!.count { p[i] = 0 }
        }
        let withPrior = model.forward(batch, noise: .deterministic(batch: b), klWeight: 1)
        var initialOnly = 0.0
        for head in [model.zHead, model.vHead!] {
            for i in 0..<(b * h) { initialOnly += (exp(head.logVar[i]) + head.mean[i] * head.mean[i] - 1 - head.logVar[i]) / 2 }
        }
        #expect(abs(withPrior.kl * Double(b) - initialOnly) < 1e-12)
    }

    @Test("The positional encoding is sin/cos of the step, and it changes the rates")
    func positionalEncodingApplies() {
        func rates(_ encoding: ModelConfig.PositionalEncoding) -> (LangevinFlow<Double>, [Double]) {
            let config = tinyConfig { $0.decoder = .transformer; $0.positionalEncoding = encoding }
            let model = LangevinFlow<Double>(config: config, dims: tinyDims, maxBatch: 2)
            model.params.values.copy(from: perturbedParameters(config).values)
            let batch = Batch<Double>(dims: tinyDims, capacity: 2)
            randomTargets(batch, seed: 51)
            _ = model.forward(batch, noise: .deterministic(batch: 2), klWeight: 0.5)
            return (model, Array(UnsafeBufferPointer(start: model.logRates.ptr, count: tinyDims.steps * 2 * tinyDims.outputs)))
        }
        let (model, encoded) = rates(.sinusoidal)
        let (_, plain) = rates(.none)
        #expect(encoded != plain)
        let d = model.config.decoderWidth, table = model.positional!
        #expect(table[0] == 0 && table[1] == 1)                               // t = 0: sin 0, cos 0
        #expect(abs(table[3 * d] - sin(3.0)) < 1e-15 && abs(table[3 * d + 1] - cos(3.0)) < 1e-15)
        let k = 2, frequency = exp(-log(10000.0) * Double(2 * k) / Double(d))
        #expect(abs(table[5 * d + 2 * k] - sin(5 * frequency)) < 1e-15)
    }
}
