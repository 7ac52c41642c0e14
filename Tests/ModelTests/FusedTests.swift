import Foundation
import Testing
import Kernels
@testable import Model

/// The fused element-wise passes (one pass where there were several over the same memory)
/// against the unfused passes they replaced, in Double.
func values(_ b: Buffer<Double>) -> [Double] { Array(UnsafeBufferPointer(start: b.ptr, count: b.count)) }

@Suite("Fused element-wise passes against the unfused ones")
struct FusedTests {
    let rows = 37, width = 24

    func randomMask(_ count: Int, seed: Int) -> [UInt8] {
        var state = UInt64(seed) &* 0x9E37_79B9_7F4A_7C15 | 1
        return (0..<count).map { _ in
            state ^= state << 13; state ^= state >> 7; state ^= state << 17
            return state % 4 == 0 ? 0 : 1
        }
    }

    @Test("LayerNorm of a residual through dropout: forwardResidual equals addMasked then forward, bit for bit")
    func residualForward() {
        let n = rows * width
        let x = Buffer<Double>(count: n), y = Buffer<Double>(count: n), w = Buffer<Double>(count: width), b = Buffer<Double>(count: width)
        fillRandom(x.ptr, count: n, seed: 1, scale: 2); fillRandom(y.ptr, count: n, seed: 2, scale: 3)
        fillRandom(w.ptr, count: width, seed: 3); fillRandom(b.ptr, count: width, seed: 4)
        let mask = randomMask(n, seed: 5), scale = 1 / 0.75
        // Unfused.
        let s = Buffer<Double>(count: n), out1 = Buffer<Double>(count: n), hat1 = Buffer<Double>(count: n), inv1 = Buffer<Double>(count: rows)
        mask.withUnsafeBufferPointer { Elementwise.addMasked(s.ptr, x.ptr, y.ptr, mask: $0.baseAddress!, scale: scale, count: n) }
        LayerNorm.forward(y: out1.ptr, xHat: hat1.ptr, inverseStd: inv1.ptr, x: s.ptr, weight: w.ptr, bias: b.ptr, rows: rows, width: width)
        // Fused.
        let addend = Buffer<Double>(count: n), out2 = Buffer<Double>(count: n), hat2 = Buffer<Double>(count: n), inv2 = Buffer<Double>(count: rows)
        addend.copy(from: y)
        mask.withUnsafeBufferPointer {
            LayerNorm.forwardResidual(y: out2.ptr, xHat: hat2.ptr, inverseStd: inv2.ptr, x: x.ptr, addend: addend.ptr, mask: $0.baseAddress!,
                                      scale: scale, weight: w.ptr, bias: b.ptr, rows: rows, width: width)
        }
        #expect(values(out1) == values(out2))
        #expect(values(hat1) == values(hat2))
        #expect(values(inv1) == values(inv2))
        #expect(values(addend) == values(s), "the residual sum is left in the addend")
    }

    @Test("LayerNorm backward with the residual's split: backwardResidual equals backward, the copy and multiplyMasked, bit for bit",
          arguments: [false, true])
    func residualBackward(accumulate: Bool) {
        let n = rows * width
        let dy = Buffer<Double>(count: n), hat = Buffer<Double>(count: n), inv = Buffer<Double>(count: rows), w = Buffer<Double>(count: width)
        let dx0 = Buffer<Double>(count: n)
        fillRandom(dy.ptr, count: n, seed: 6); fillRandom(hat.ptr, count: n, seed: 7); fillRandom(w.ptr, count: width, seed: 8)
        fillRandom(inv.ptr, count: rows, seed: 9, scale: 0.5); fillRandom(dx0.ptr, count: n, seed: 10)
        for r in 0..<rows { inv[r] += 1 }
        let mask = randomMask(n, seed: 11), scale = 1 / 0.9
        // Unfused: g = LayerNorm backward (overwrite), then dx gets g, then the addend's gradient g ⊙ mask.
        let g = Buffer<Double>(count: n), dw1 = Buffer<Double>(count: width), db1 = Buffer<Double>(count: width)
        LayerNorm.backward(dx: g.ptr, dWeight: dw1.ptr, dBias: db1.ptr, dy: dy.ptr, xHat: hat.ptr, inverseStd: inv.ptr,
                           weight: w.ptr, rows: rows, width: width, overwrite: true)
        let dx1 = Buffer<Double>(count: n)
        if accumulate { dx1.copy(from: dx0); Elementwise.accumulate(dx1.ptr, g.ptr, count: n) } else { dx1.copy(from: g) }
        let dAddend1 = Buffer<Double>(count: n)
        dAddend1.copy(from: g)
        mask.withUnsafeBufferPointer { Elementwise.multiplyMasked(dAddend1.ptr, mask: $0.baseAddress!, scale: scale, count: n) }
        // Fused, the addend's gradient written over dy (as the decoder does).
        let dx2 = Buffer<Double>(count: n), dw2 = Buffer<Double>(count: width), db2 = Buffer<Double>(count: width)
        dx2.copy(from: dx0)
        let dyCopy = Buffer<Double>(count: n)
        dyCopy.copy(from: dy)
        mask.withUnsafeBufferPointer {
            LayerNorm.backwardResidual(dx: dx2.ptr, accumulateInput: accumulate, dAddend: dyCopy.ptr, mask: $0.baseAddress!, scale: scale,
                                       dWeight: dw2.ptr, dBias: db2.ptr, dy: dyCopy.ptr, xHat: hat.ptr, inverseStd: inv.ptr,
                                       weight: w.ptr, rows: rows, width: width)
        }
        #expect(values(dx1) == values(dx2))
        #expect(values(dAddend1) == values(dyCopy))
        #expect(values(dw1) == values(dw2))
        #expect(values(db1) == values(db2))
    }

    @Test("Attention softmax with its dropout mask: the block-wise exponentials equal a per-row softmax within 1e-15")
    func softmax() {
        let config = tinyConfig { $0.decoderDropout = 0.3 }
        let params = perturbedParameters(config)
        let steps = 7
        let layer = TransformerLayer<Double>(config: config, steps: steps, maxBatch: 1, layout: params.layout)
        let scores = Buffer<Double>(count: steps * steps), dropped = Buffer<Double>(count: steps * steps)
        fillRandom(scores.ptr, count: scores.count, seed: 12, scale: 20)
        let original = values(scores), mask = randomMask(steps * steps, seed: 13), keep = 1 / 0.7
        mask.withUnsafeBufferPointer { layer.softmax(scores.ptr, dropped: dropped.ptr, mask: $0.baseAddress!, keep: keep) }
        for i in 0..<steps {
            let row = original[(i * steps)..<((i + 1) * steps)], top = row.max()!
            let e = row.map { Foundation.exp($0 - top) }, sum = e.reduce(0, +)
            for j in 0..<steps {
                let p = e[j] / sum
                #expect(abs(scores[i * steps + j] - p) <= 1e-15 * max(p, 1e-300) + 1e-300)
                #expect(dropped[i * steps + j] == (mask[i * steps + j] != 0 ? scores[i * steps + j] * keep : 0))
            }
        }
    }

    @Test("GRU gates (three passes over a row, exponentials per pass) equal the per-element σ/tanh formulas, bit for bit")
    func gruGates() {
        let config = tinyConfig { $0.dropout = 0 }
        let params = perturbedParameters(config)
        let b = 3, h = config.hidden, n = tinyDims.heldIn
        let encoder = GRUEncoder<Double>(config: config, dims: tinyDims, maxBatch: b, layout: params.layout)
        let x = Buffer<Double>(count: tinyDims.bins * b * n)
        fillRandom(x.ptr, count: x.count, seed: 14, scale: 2)
        encoder.forward(x: x.ptr, batch: b, params: params, noise: .deterministic(batch: b))
        // The unfused step: the input and hidden projections (the encoder's own, so that only the
        // gate pass differs), then every gate from Elementwise.sigmoid and .tanh.
        let h3 = 3 * h, gh = Buffer<Double>(count: b * h3)
        for t in 0..<tinyDims.steps {
            let gi = encoder.inputGates.ptr + encoder.source(t)! * b * h3
            if let p = encoder.previous(t) {
                Linear.forward(y: gh.ptr, x: encoder.states.ptr + p * b * h, weight: params.value("encoder.weight_hh"),
                               bias: params.value("encoder.bias_hh"), rows: b, inDim: h, outDim: h3)
            } else {
                for r in 0..<b { (gh.ptr + r * h3).update(from: params.value("encoder.bias_hh"), count: h3) }
            }
            for r in 0..<b {
                for j in 0..<h {
                    let g = gi + r * h3, q = gh.ptr + r * h3, k = (t * b + r) * h + j
                    let rj = Elementwise.sigmoid(g[j] + q[j]), zj = Elementwise.sigmoid(g[h + j] + q[h + j])
                    let nj = Elementwise.tanh(g[2 * h + j] + rj * q[2 * h + j])
                    let prev = encoder.previous(t).map { encoder.states[($0 * b + r) * h + j] } ?? 0
                    #expect(encoder.resetGate[k] == rj && encoder.updateGate[k] == zj && encoder.candidate[k] == nj)
                    #expect(encoder.states[k] == (1 - zj) * nj + zj * prev)
                }
            }
        }
    }

    @Test("Posterior sampling and KL (exponentials over the array, one pass) equal the per-element formulas", arguments: [1, 5])
    func posterior(steps: Int) {
        let config = tinyConfig { $0.posterior = .perStep }
        let params = perturbedParameters(config)
        let b = 3, h = config.hidden
        let head = PosteriorHead<Double>(latent: "u", hidden: h, maxBatch: b, layout: params.layout, steps: steps)
        let states = Buffer<Double>(count: steps * b * h), sample = Buffer<Double>(count: steps * b * h)
        fillRandom(states.ptr, count: states.count, seed: 15, scale: 6)      // some log-variances clamp
        let kl = head.forward(h0: states.ptr, sample: sample.ptr, batch: b, params: params, noise: stochasticNoise(batch: b))
        var reference = 0.0
        for i in 0..<(steps * b * h) {
            let lv = min(max(head.logVarRaw[i], PosteriorHead<Double>.logVarMin), PosteriorHead<Double>.logVarMax)
            #expect(head.logVar[i] == lv)
            #expect(sample[i] == head.mean[i] + Foundation.exp(lv / 2) * head.epsilon[i])
            reference += (Foundation.exp(lv) + head.mean[i] * head.mean[i] - 1 - lv) / 2
        }
        #expect(abs(kl - reference) <= 1e-14 * abs(reference))
    }

    @Test("Poisson readout: the rates made once per forward give the loss of exp(ℓ) per term, within 1e-14")
    func readoutRates() {
        let config = tinyConfig()
        let params = perturbedParameters(config)
        let rows = 11, d = config.decoderWidth, nOut = tinyDims.heldIn + tinyDims.heldOut
        let readout = PoissonReadout<Double>(width: d, outputs: nOut, steps: rows, maxBatch: 1, layout: params.layout)
        let x = Buffer<Double>(count: rows * d), y = Buffer<Double>(count: rows * nOut), mask = Buffer<Double>(count: rows * nOut)
        fillRandom(x.ptr, count: x.count, seed: 16, scale: 4)
        for i in 0..<y.count { y[i] = Double(i % 4); mask[i] = i % 5 == 0 ? 0 : 1 }
        readout.forward(x: x.ptr, rows: rows, params: params)
        var reference = 0.0
        for i in 0..<(rows * nOut) where mask[i] != 0 {
            #expect(readout.rates[i] == Foundation.exp(readout.logRates[i]))
            reference += Foundation.exp(readout.logRates[i]) - y[i] * readout.logRates[i]
        }
        #expect(abs(readout.nll(targets: y.ptr, lossMask: mask.ptr, rows: rows) - reference) <= 1e-14 * abs(reference))
    }

    @Test("Langevin step (drive, update and transition KL in one pass) equals the three passes, bit for bit",
          arguments: ModelConfig.Dynamics.allCases)
    func langevin(order: ModelConfig.Dynamics) {
        let config = tinyConfig { $0.dynamics = order }
        let b = 3, h = config.hidden, steps = tinyDims.steps
        let dynamics = LangevinDynamics<Double>(config: config, steps: steps, maxBatch: b)
        let a = Buffer<Double>(count: h * h), z0 = Buffer<Double>(count: b * h), v0 = Buffer<Double>(count: b * h)
        let drive = Buffer<Double>(count: steps * b * h)
        fillRandom(a.ptr, count: a.count, seed: 17); fillRandom(z0.ptr, count: z0.count, seed: 18)
        fillRandom(v0.ptr, count: v0.count, seed: 19); fillRandom(drive.ptr, count: drive.count, seed: 20)
        let second = order == .secondOrder
        dynamics.positions.ptr.update(from: z0.ptr, count: b * h)
        if second { dynamics.velocities.ptr.update(from: v0.ptr, count: b * h) }
        let noise = stochasticNoise(batch: b)
        let kl = dynamics.forward(forceMatrix: a.ptr, batch: b, noise: noise, drive: drive.ptr, driveRow: { $0 })
        // The unfused passes: force, then + drive, then the update, then the KL.
        let block = b * h, f = Buffer<Double>(count: block)
        var z = values(z0), v = values(v0), reference = 0.0
        let dt = dynamics.dt, damping = dynamics.damping, mass = dynamics.mass, s2 = dynamics.noiseVariance, p2 = dynamics.priorVariance
        for t in 1..<steps {
            z.withUnsafeBufferPointer { zp in
                Double.gemm(transA: false, transB: false, m: b, n: h, k: h, alpha: 1, a: zp.baseAddress!, lda: h, b: a.ptr, ldb: h,
                            beta: 0, c: f.ptr, ldc: h)
            }
            for i in 0..<block { f[i] += drive[t * block + i] }
            let eps = dynamics.epsilon.ptr + t * block
            var mu = [Double](repeating: 0, count: block)
            if second {
                for i in 0..<block {
                    let zNew = z[i] + dt * v[i]
                    mu[i] = (1 - damping) * (v[i] - dt * f[i] / mass)
                    v[i] = mu[i] + dynamics.noiseScale * eps[i]
                    z[i] = zNew
                }
            } else {
                for i in 0..<block {
                    mu[i] = z[i] - dt * f[i]
                    z[i] = mu[i] + dynamics.noiseScale * eps[i]
                }
            }
            if dynamics.hasTransitionKL {
                let constant = s2 / p2 - 1 - Foundation.log(s2 / p2)
                for i in 0..<block { reference += (constant + mu[i] * mu[i] / p2) / 2 }
            }
            #expect(z == Array(UnsafeBufferPointer(start: dynamics.positions.ptr + t * block, count: block)))
            if second { #expect(v == Array(UnsafeBufferPointer(start: dynamics.velocities.ptr + t * block, count: block))) }
        }
        #expect(kl == reference)
    }
}
