import RealModule

/// Small element-wise kernels shared by several layers. Each says whether it overwrites or
/// accumulates.
public enum Elementwise {
    @inlinable
    public static func sigmoid<S: Scalar>(_ x: S) -> S { 1 / (1 + S.exp(-x)) }

    /// out[i] += a[i]
    @inlinable
    public static func accumulate<S: Scalar>(_ out: UnsafeMutablePointer<S>, _ a: UnsafePointer<S>, count: Int) {
        for i in 0..<count { out[i] += a[i] }
    }

    /// out[i] *= s
    @inlinable
    public static func scale<S: Scalar>(_ out: UnsafeMutablePointer<S>, by s: S, count: Int) {
        for i in 0..<count { out[i] *= s }
    }

    /// Σ x[i]²
    @inlinable
    public static func sumOfSquares<S: Scalar>(_ x: UnsafePointer<S>, count: Int) -> S {
        var acc: S = 0
        for i in 0..<count { acc += x[i] * x[i] }
        return acc
    }

    /// Inverted dropout mask: overwrites `mask` with keep/(1-rate), keep ~ Bernoulli(1-rate),
    /// from uniforms already in `mask`. With rate 0 every entry is 1.
    @inlinable
    public static func dropoutMask<S: Scalar>(_ mask: UnsafeMutablePointer<S>, rate: S, count: Int) {
        let scale = rate < 1 ? 1 / (1 - rate) : 0
        for i in 0..<count { mask[i] = mask[i] < rate ? 0 : scale }
    }
}
