import Kernels

/// Central finite differences in Double: d loss / d p[i] ≈ (loss(p + ε) - loss(p - ε)) / 2ε.
/// Restores every element it perturbs.
func numericGradient(of loss: () -> Double, wrt p: UnsafeMutablePointer<Double>, count: Int,
                     eps: Double = 1e-6) -> [Double] {
    var out = [Double](repeating: 0, count: count)
    for i in 0..<count {
        let saved = p[i]
        p[i] = saved + eps
        let plus = loss()
        p[i] = saved - eps
        let minus = loss()
        p[i] = saved
        out[i] = (plus - minus) / (2 * eps)
    }
    return out
}

/// ‖a - n‖ / max(‖a‖, ‖n‖, 1e-12): the relative error of a whole tensor's gradient.
func relativeError(_ analytic: [Double], _ numeric: [Double]) -> Double {
    precondition(analytic.count == numeric.count)
    var diff = 0.0, na = 0.0, nn = 0.0
    for i in analytic.indices {
        diff += (analytic[i] - numeric[i]) * (analytic[i] - numeric[i])
        na += analytic[i] * analytic[i]
        nn += numeric[i] * numeric[i]
    }
    return diff.squareRoot() / max(na.squareRoot(), nn.squareRoot(), 1e-12)
}

/// A reproducible filler for test inputs: values in [-scale, scale).
func fillRandom(_ p: UnsafeMutablePointer<Double>, count: Int, seed: Int, scale: Double = 1) {
    NoiseStream(seed: UInt64(seed), purpose: .synthetic).fillUniform(trial: 0, into: p, count: count)
    for i in 0..<count { p[i] = scale * (2 * p[i] - 1) }
}
