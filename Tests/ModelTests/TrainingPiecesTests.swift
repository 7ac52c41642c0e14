import Foundation
import Testing
import Kernels
@testable import Model

@Suite("Coordinated dropout")
struct CoordinatedDropoutTests {
    @Test("Input scaling, masks, NaN handling and keep rate")
    func masks() {
        var config = tinyConfig()
        config.cdKeep = 0.7
        let dims = DataDims(bins: 20, forwardBins: 3, heldIn: 30, heldOut: 4)
        let b = 8
        let cd = CoordinatedDropout<Double>(config: config, dims: dims, maxBatch: b)
        let batch = Batch<Double>(dims: dims, capacity: b)
        for i in 0..<batch.targets.count { batch.targets[i] = Double(1 + i % 3) }
        batch.targets[0] = .nan                       // t 0, trial 0, held-in neuron 0
        let noise = NoiseContext(stochastic: true, seed: 2, trialIndices: Array(0..<b))
        let observed = cd.prepare(rawTargets: batch.targets.ptr, batch: b, noise: noise)
        #expect(observed == batch.targets.count - 1)
        #expect(cd.input[0] == 0 && cd.lossMask[0] == 0 && cd.gradMask[0] == 0 && cd.targets[0] == 0)

        var kept = 0, total = 0, blocked = 0
        let nOut = dims.outputs
        for t in 0..<dims.steps {
            for trial in 0..<b {
                for n in 0..<nOut {
                    let row = (t * b + trial) * nOut + n
                    if t == 0 && trial == 0 && n == 0 { continue }
                    let y = batch.targets[row]
                    if t < dims.bins && n < dims.heldIn {
                        let x = cd.input[(t * b + trial) * dims.heldIn + n]
                        total += 1
                        if x != 0 {
                            kept += 1
                            #expect(abs(x - y / 0.7) < 1e-12)
                        } else {
                            #expect(cd.gradMask[row] == 1, "a dropped input always carries the gradient")
                        }
                        if x != 0 && cd.gradMask[row] == 0 { blocked += 1 }
                    } else {
                        #expect(cd.gradMask[row] == 1, "held-out and forward entries always carry the gradient")
                    }
                    #expect(cd.lossMask[row] == 1)
                }
            }
        }
        // keep ~ Bernoulli(0.7); a kept entry is blocked unless pass ~ Bernoulli(0.3).
        let keepRate = Double(kept) / Double(total), blockRate = Double(blocked) / Double(kept)
        #expect(abs(keepRate - 0.7) < 0.03, "keep rate \(keepRate)")
        #expect(abs(blockRate - 0.7) < 0.03, "blocked share of kept entries \(blockRate)")
    }

    @Test("cdGradient dropped: the same input, and no kept held-in entry carries the gradient")
    func droppedOnly() {
        let dims = DataDims(bins: 12, forwardBins: 2, heldIn: 20, heldOut: 3)
        let b = 6
        let batch = Batch<Double>(dims: dims, capacity: b)
        randomTargets(batch, seed: 7, missing: false)
        func prepared(_ mode: ModelConfig.CDGradient) -> CoordinatedDropout<Double> {
            var config = tinyConfig()
            config.cdKeep = 0.4
            config.cdGradient = mode
            let cd = CoordinatedDropout<Double>(config: config, dims: dims, maxBatch: b)
            let noise = NoiseContext(stochastic: true, seed: 3, trialIndices: Array(0..<b))
            _ = cd.prepare(rawTargets: batch.targets.ptr, batch: b, noise: noise)
            return cd
        }
        let spec = prepared(.droppedAndSampled), dropped = prepared(.dropped)
        for i in 0..<spec.input.count { #expect(spec.input[i] == dropped.input[i]) }
        var keptPassingInSpec = 0, dropsSeen = 0
        for t in 0..<dims.steps {
            for trial in 0..<b {
                for n in 0..<dims.outputs {
                    let row = (t * b + trial) * dims.outputs + n
                    guard t < dims.bins && n < dims.heldIn else {
                        #expect(dropped.gradMask[row] == 1)
                        continue
                    }
                    // The keep draw itself (a zero count is an input of 0 whether kept or not).
                    let kept = spec.keep[(t * b + trial) * dims.heldIn + n] < spec.keepProbability
                    #expect(dropped.gradMask[row] == (kept ? 0 : 1))
                    if kept && spec.gradMask[row] == 1 { keptPassingInSpec += 1 }
                    if !kept { dropsSeen += 1 }
                }
            }
        }
        #expect(keptPassingInSpec > 0, "the spec's mode lets some kept entries pass")
        #expect(dropsSeen > 0)
    }

    @Test("Deterministic mode: no coordinated dropout")
    func deterministic() {
        let config = tinyConfig()
        let cd = CoordinatedDropout<Double>(config: config, dims: tinyDims, maxBatch: 2)
        let batch = Batch<Double>(dims: tinyDims, capacity: 2)
        randomTargets(batch, seed: 4, missing: false)
        _ = cd.prepare(rawTargets: batch.targets.ptr, batch: 2, noise: .deterministic(batch: 2))
        for i in 0..<cd.gradMask.count { #expect(cd.gradMask[i] == 1) }
        // The encoder sees every held-in count unscaled, and nothing of the held-out neurons
        // or forward bins.
        let steps = tinyDims.steps, nIn = tinyDims.heldIn, nOut = tinyDims.outputs
        var compared = 0
        for t in 0..<tinyDims.bins {
            for b in 0..<2 {
                for n in 0..<nIn {
                    #expect(cd.input[(t * 2 + b) * nIn + n] == batch.targets[(t * 2 + b) * nOut + n], "t \(t), trial \(b), neuron \(n)")
                    compared += 1
                }
            }
        }
        #expect(compared == tinyDims.bins * 2 * nIn && steps > tinyDims.bins)
    }
}

@Suite("Adam and schedules")
struct AdamTests {
    @Test("Matches the PyTorch update rule over several steps")
    func matchesTorch() {
        let adam = Adam<Double>(count: 3)      // TrainConfig's defaults: β1 0.9, β2 0.999, ε 1e-8
        let p = Buffer<Double>([0.5, -1.0, 2.0])
        let g = Buffer<Double>(count: 3)
        let grads: [[Double]] = [[0.1, -0.2, 0.3], [0.05, 0.4, -0.1], [-0.3, 0.0, 0.2]]
        for step in grads {
            for i in 0..<3 { g[i] = step[i] }
            adam.update(params: p, grads: g, learningRate: 0.01, weightDecay: 0.02)
        }
        // Independent form: p -= lr/bc1 · m / (√v/√bc2 + eps).
        var q = [0.5, -1.0, 2.0], m = [0.0, 0, 0], v = [0.0, 0, 0]
        for (k, step) in grads.enumerated() {
            let t = Double(k + 1)
            for i in 0..<3 {
                let gi = step[i] + 0.02 * q[i]
                m[i] = 0.9 * m[i] + 0.1 * gi
                v[i] = 0.999 * v[i] + 0.001 * gi * gi
                let bc1: Double = 1 - pow(0.9, t), bc2: Double = 1 - pow(0.999, t)
                let denom: Double = v[i].squareRoot() / bc2.squareRoot() + 1e-8
                q[i] -= 0.01 / bc1 * m[i] / denom
            }
        }
        for i in 0..<3 { #expect(abs(p[i] - q[i]) < 1e-15) }
        // The first Adam step moves each parameter by about lr against the gradient.
        let first = Adam<Double>(count: 1)
        let x = Buffer<Double>([1.0]), gx = Buffer<Double>([0.5])
        first.update(params: x, grads: gx, learningRate: 0.1, weightDecay: 0)
        #expect(abs(x[0] - 0.9) < 1e-7)
        #expect(adam.step == 3)
    }

    @Test("Weight average: a ← a + (1 − d)(θ − a), d = min(decay, (1+t)/(10+t))")
    func weightAverage() {
        let p = Buffer<Double>([1.0, -2.0])
        let average = WeightAverage(of: p, decay: 0.99)
        #expect(average.values[0] == 1 && average.values[1] == -2)
        #expect(abs(average.decay(atStep: 0) - 0.1) < 1e-15)
        #expect(abs(average.decay(atStep: 8) - 0.5) < 1e-15)
        #expect(average.decay(atStep: 10_000) == 0.99)
        for (t, step) in [[3.0, 1.0], [0.0, 0.0], [-1.0, 5.0]].enumerated() {
            for i in 0..<2 { p[i] = step[i] }
            average.update(from: p, step: t)
        }
        // By hand, with d = 0.1, 2/11, 1/4: (1, -2) → (2.8, 0.7) → (5.6/11, 1.4/11)
        // → (1.4/11 − 0.75, 0.35/11 + 3.75).
        let expected = [1.4 / 11 - 0.75, 0.35 / 11 + 3.75]
        for i in 0..<2 { #expect(abs(average.values[i] - expected[i]) < 1e-14, "\(average.values[i]) vs \(expected[i])") }
    }

    @Test("Global-norm clipping as clip_grad_norm_")
    func clipping() {
        let g = Buffer<Double>([3, 4])
        let norm = Adam<Double>.clipGradNorm(g, maxNorm: 1)
        #expect(norm == 5)
        #expect(abs(g[0] - 3 / (5 + 1e-6)) < 1e-15 && abs(g[1] - 4 / (5 + 1e-6)) < 1e-15)
        let small = Buffer<Double>([0.3, 0.4])
        Adam<Double>.clipGradNorm(small, maxNorm: 1)
        #expect(small[0] == 0.3 && small[1] == 0.4)
        let off = Buffer<Double>([30, 40])
        Adam<Double>.clipGradNorm(off, maxNorm: 0)
        #expect(off[0] == 30)
    }
}
