import Foundation
import Kernels

/// The built-in Lorenz dataset (spec `data.md`, "Built-in Lorenz dataset"), modelled on the
/// NDT/LFADS Lorenz benchmark: 65 conditions × 24 trials = 1560 trials, 50 observed bins,
/// 29 neurons, plus forward bins, a held-in/held-out split, behaviour and ground truth.
///
/// Each condition is one Lorenz trajectory (σ = 10, ρ = 28, β = 8/3) from its own start on the
/// attractor; its trials share the trajectory and draw independent Poisson spikes. The state is
/// averaged per bin and z-scored; log r = b + W·state per neuron. Behaviour is the (x, y)
/// velocity of the latent one bin earlier (NaN at bin 0), as NLB's lag-aligned behaviour.
/// Every draw comes from keyed Philox streams: the same seed gives the same arrays.
public struct LorenzSpec: Sendable, Equatable {
    public var conditions = 65
    public var trialsPerCondition = 24
    public var bins = 50
    public var forwardBins = 10
    public var neurons = 29
    public var heldOutNeurons = 7
    /// Fraction of each condition's trials that go to the eval split.
    public var evalFraction = 0.2
    /// Integration step and substeps per bin (a bin lasts substeps·step time units).
    public var step = 0.005
    public var substeps = 3
    public var seed = 0
    public init() {}

    public var trials: Int { conditions * trialsPerCondition }
}

/// A trial-major float tensor (count, bins, channels), row-major.
public struct Tensor3: Equatable, Sendable {
    public var count: Int, bins: Int, channels: Int
    public var values: [Float]
    public init(count: Int, bins: Int, channels: Int, values: [Float]? = nil) {
        self.count = count
        self.bins = bins
        self.channels = channels
        self.values = values ?? [Float](repeating: 0, count: count * bins * channels)
    }
    public var shape: [Int] { [count, bins, channels] }
    /// Bitwise equality, so that missing bins (NaN) compare equal: "the same file".
    public static func == (a: Tensor3, b: Tensor3) -> Bool {
        a.shape == b.shape && a.values.elementsEqual(b.values) { $0.bitPattern == $1.bitPattern }
    }

    public subscript(n: Int, t: Int, c: Int) -> Float {
        get { values[(n * bins + t) * channels + c] }
        set { values[(n * bins + t) * channels + c] = newValue }
    }
}

public struct LorenzDataset: Sendable {
    public var spec: LorenzSpec
    /// NLB tensor layout, keyed by the NLB names (train_spikes_heldin, …).
    public var tensors: [String: Tensor3]
    /// Ground truth: rates (expected spikes per bin) and the z-scored latent, per split.
    public var truth: [String: Tensor3]
    /// Condition index of each eval / train trial.
    public var evalConditions: [Int]
    public var trainConditions: [Int]
}

public enum Lorenz {
    static func derivative(_ s: SIMD3<Double>) -> SIMD3<Double> {
        SIMD3(10 * (s.y - s.x), s.x * (28 - s.z) - s.y, s.x * s.y - 8.0 / 3.0 * s.z)
    }

    static func rk4(_ s: SIMD3<Double>, _ h: Double) -> SIMD3<Double> {
        let k1 = derivative(s)
        let k2 = derivative(s + h / 2 * k1)
        let k3 = derivative(s + h / 2 * k2)
        let k4 = derivative(s + h * k3)
        return s + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
    }

    public static func generate(_ spec: LorenzSpec) -> LorenzDataset {
        let totalBins = spec.bins + spec.forwardBins
        let seed = UInt64(spec.seed)
        let draws = NoiseStream(seed: seed, purpose: .synthetic)

        // 1. One bin-averaged trajectory per condition, from a random start after burn-in.
        var states = [[SIMD3<Double>]](repeating: [], count: spec.conditions)
        var scratch = [Double](repeating: 0, count: 4)
        for c in 0..<spec.conditions {
            scratch.withUnsafeMutableBufferPointer { draws.fillUniform(trial: c, into: $0.baseAddress!, count: 4) }
            var s = SIMD3(scratch[0] * 30 - 15, scratch[1] * 40 - 20, scratch[2] * 30 + 10)
            let burnIn = 500 + Int(scratch[3] * 1000)
            for _ in 0..<burnIn { s = rk4(s, spec.step) }
            var binned: [SIMD3<Double>] = []
            for _ in 0..<totalBins {
                var acc = SIMD3<Double>(repeating: 0)
                for _ in 0..<spec.substeps {
                    s = rk4(s, spec.step)
                    acc += s
                }
                binned.append(acc / Double(spec.substeps))
            }
            states[c] = binned
        }
        // 2. z-score each dimension over all conditions and bins.
        let all = states.flatMap { $0 }
        let mean = all.reduce(SIMD3<Double>(repeating: 0), +) / Double(all.count)
        let variance = all.reduce(SIMD3<Double>(repeating: 0)) { $0 + ($1 - mean) * ($1 - mean) } / Double(all.count)
        let std = SIMD3(variance.x.squareRoot(), variance.y.squareRoot(), variance.z.squareRoot())
        let latents = states.map { $0.map { ($0 - mean) / std } }
        // Velocity of the z-scored latent, in latent units per bin.
        let velocities = latents.map { path in
            path.indices.map { t in t == 0 ? SIMD3<Double>(repeating: .nan) : path[t] - path[t - 1] }
        }

        // 3. Readout: log r = b + W·state, b = log of a per-neuron base rate in spikes per bin.
        let n = spec.neurons
        var weights = [Double](repeating: 0, count: n * 3)
        var baseUniform = [Double](repeating: 0, count: n)
        weights.withUnsafeMutableBufferPointer { draws.fillNormal(trial: 1_000_000, into: $0.baseAddress!, count: n * 3) }
        baseUniform.withUnsafeMutableBufferPointer { draws.fillUniform(trial: 1_000_001, into: $0.baseAddress!, count: n) }
        // Base rates 0.1–0.5 spikes per bin; modulation std about 0.6 in log-rate.
        let bias = baseUniform.map { log(0.1 + 0.4 * $0) }
        let scale = 0.6 / 3.0.squareRoot()
        let rates: [[[Double]]] = latents.map { path in
            path.map { s in
                (0..<n).map { i in
                    exp(bias[i] + scale * (weights[3 * i] * s.x + weights[3 * i + 1] * s.y + weights[3 * i + 2] * s.z))
                }
            }
        }

        // 4. Trials: per condition, the first ⌈(1 - evalFraction)·k⌉ go to train, the rest to eval.
        // At least one trial of each condition on each side.
        let trainPer = min(max(Int((Double(spec.trialsPerCondition) * (1 - spec.evalFraction)).rounded(.up)), 1),
                           spec.trialsPerCondition - 1)
        let evalPer = spec.trialsPerCondition - trainPer
        let nIn = n - spec.heldOutNeurons, nHo = spec.heldOutNeurons
        func split(_ count: Int) -> [String: Tensor3] {
            [
                "heldin": Tensor3(count: count, bins: spec.bins, channels: nIn),
                "heldout": Tensor3(count: count, bins: spec.bins, channels: nHo),
                "heldin_forward": Tensor3(count: count, bins: spec.forwardBins, channels: nIn),
                "heldout_forward": Tensor3(count: count, bins: spec.forwardBins, channels: nHo),
                "behavior": Tensor3(count: count, bins: spec.bins, channels: 2),
                "rates": Tensor3(count: count, bins: totalBins, channels: n),
                "latents": Tensor3(count: count, bins: totalBins, channels: 3),
            ]
        }
        var train = split(spec.conditions * trainPer), eval = split(spec.conditions * evalPer)
        var trainConditions: [Int] = [], evalConditions: [Int] = []
        var counts = [Double](repeating: 0, count: totalBins * n)
        for c in 0..<spec.conditions {
            for k in 0..<spec.trialsPerCondition {
                let toTrain = k < trainPer
                let index = toTrain ? trainConditions.count : evalConditions.count
                let globalTrial = c * spec.trialsPerCondition + k
                counts.withUnsafeMutableBufferPointer {
                    draws.fillUniform(trial: 2_000_000 + globalTrial, into: $0.baseAddress!, count: totalBins * n)
                }
                func fill(_ out: inout [String: Tensor3]) {
                    for t in 0..<totalBins {
                        for i in 0..<n {
                            let y = Float(poisson(rates[c][t][i], uniform: counts[t * n + i]))
                            let forward = t >= spec.bins
                            let tt = forward ? t - spec.bins : t
                            let key = (i < nIn ? "heldin" : "heldout") + (forward ? "_forward" : "")
                            out[key]![index, tt, i < nIn ? i : i - nIn] = y
                            out["rates"]![index, t, i] = Float(rates[c][t][i])
                        }
                        let s = latents[c][t]
                        out["latents"]![index, t, 0] = Float(s.x)
                        out["latents"]![index, t, 1] = Float(s.y)
                        out["latents"]![index, t, 2] = Float(s.z)
                        if t < spec.bins {
                            out["behavior"]![index, t, 0] = Float(velocities[c][t].x)
                            out["behavior"]![index, t, 1] = Float(velocities[c][t].y)
                        }
                    }
                }
                if toTrain { fill(&train); trainConditions.append(c) } else { fill(&eval); evalConditions.append(c) }
            }
        }
        var tensors: [String: Tensor3] = [:]
        for key in ["heldin", "heldout", "heldin_forward", "heldout_forward"] {
            tensors["train_spikes_\(key)"] = train[key]
        }
        tensors["train_behavior"] = train["behavior"]
        tensors["eval_spikes_heldin"] = eval["heldin"]
        tensors["eval_spikes_heldout"] = eval["heldout"]
        tensors["eval_spikes_heldin_forward"] = eval["heldin_forward"]
        tensors["eval_spikes_heldout_forward"] = eval["heldout_forward"]
        tensors["eval_behavior"] = eval["behavior"]
        let truth = ["train_rates": train["rates"]!, "train_latents": train["latents"]!,
                     "eval_rates": eval["rates"]!, "eval_latents": eval["latents"]!]
        return LorenzDataset(spec: spec, tensors: tensors, truth: truth,
                             evalConditions: evalConditions, trainConditions: trainConditions)
    }

    /// A Poisson(λ) draw by inversion of the CDF from one uniform (exact for the λ used here;
    /// λ is at most a few spikes per bin). Very large λ falls back to a rounded normal.
    static func poisson(_ lambda: Double, uniform u: Double) -> Int {
        if lambda > 60 { return max(0, Int((lambda + lambda.squareRoot() * normalFrom(u)).rounded())) }
        var k = 0
        var p = exp(-lambda)
        var cdf = p
        while u > cdf && k < 1000 {
            k += 1
            p *= lambda / Double(k)
            cdf += p
        }
        return k
    }

    static func normalFrom(_ u: Double) -> Double {
        // Inverse-CDF approximation good to ~1e-3; only used for λ > 60.
        let p = min(max(u, 1e-12), 1 - 1e-12)
        let t = (-2 * log(min(p, 1 - p))).squareRoot()
        let x = t - (2.515517 + 0.802853 * t + 0.010328 * t * t) / (1 + 1.432788 * t + 0.189269 * t * t + 0.001308 * t * t * t)
        return p < 0.5 ? -x : x
    }
}
