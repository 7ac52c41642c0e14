import Kernels
import RealModule

/// Adam over the flat parameter buffer, `torch.optim.Adam` semantics with coupled L2 weight
/// decay (g ← g + λθ before the moments), plus `clip_grad_norm_`-style global clipping.
/// The moments m and v share the parameters' layout, so a checkpoint stores them per name.
public final class Adam<S: Scalar> {
    public let exp_avg: Buffer<S>       // m
    public let exp_avg_sq: Buffer<S>    // v
    /// Optimiser steps taken so far (PyTorch's `state['step']`).
    public var step = 0
    public var beta1: Double, beta2: Double, eps: Double

    /// Adam's β1, β2 and ε come from the training's config (`adamBeta1`, `adamBeta2`, `adamEps`).
    public init(count: Int, beta1: Double = 0.9, beta2: Double = 0.999, eps: Double = 1e-8) {
        exp_avg = Buffer(count: count)
        exp_avg_sq = Buffer(count: count)
        self.beta1 = beta1
        self.beta2 = beta2
        self.eps = eps
    }

    /// Scales `grads` so that its global L2 norm is at most `maxNorm` (0 disables), as
    /// `torch.nn.utils.clip_grad_norm_`: coef = maxNorm / (norm + 1e-6), applied when < 1.
    /// Returns the norm before clipping.
    @discardableResult
    public static func clipGradNorm(_ grads: Buffer<S>, maxNorm: Double) -> Double {
        var sq = 0.0
        for i in 0..<grads.count { let g = Double(grads[i]); sq += g * g }
        let norm = sq.squareRoot()
        guard maxNorm > 0 else { return norm }
        let coef = maxNorm / (norm + 1e-6)
        if coef < 1 { Elementwise.scale(grads.ptr, by: S(coef), count: grads.count) }
        return norm
    }

    /// One Adam step on `params` with `grads` (not modified).
    public func update(params: Buffer<S>, grads: Buffer<S>, learningRate: Double, weightDecay: Double) {
        precondition(params.count == exp_avg.count && grads.count == exp_avg.count)
        step += 1
        let b1 = S(beta1), b2 = S(beta2), wd = S(weightDecay)
        let stepSize = S(learningRate / (1 - Double.pow(beta1, Double(step))))
        let bc2Sqrt = S((1 - Double.pow(beta2, Double(step))).squareRoot())
        let e = S(eps)
        let p = params.ptr, g = grads.ptr, m = exp_avg.ptr, v = exp_avg_sq.ptr
        Parallel.ranges(params.count) { range in
            for i in range {
                let grad = g[i] + wd * p[i]
                m[i] = b1 * m[i] + (1 - b1) * grad
                v[i] = b2 * v[i] + (1 - b2) * grad * grad
                p[i] -= stepSize * m[i] / (v[i].squareRoot() / bc2Sqrt + e)
            }
        }
    }
}

/// An exponential moving average of the parameters (Polyak averaging), updated after every
/// optimiser step: a ← a + (1 − d)(θ − a) with d = min(decay, (1 + t)/(10 + t)) at step t (as
/// TensorFlow's ExponentialMovingAverage with num_updates), so the first steps do not tie the
/// average to the initial weights. The step count comes from the caller, so a resumed run needs
/// only the values.
public final class WeightAverage<S: Scalar> {
    public let values: Buffer<S>
    public let decay: Double

    public init(of params: Buffer<S>, decay: Double) {
        values = Buffer(count: params.count)
        values.copy(from: params)
        self.decay = decay
    }

    /// The decay applied at step `step` (0-based count of earlier updates).
    public func decay(atStep step: Int) -> Double { min(decay, Double(1 + step) / Double(10 + step)) }

    public func update(from params: Buffer<S>, step: Int) {
        precondition(params.count == values.count)
        let keep = S(1 - decay(atStep: step)), a = values.ptr, p = params.ptr
        Parallel.ranges(values.count) { range in
            for i in range { a[i] += keep * (p[i] - a[i]) }
        }
    }
}
