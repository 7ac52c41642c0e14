import CKernels
import RealModule

/// Small element-wise kernels shared by several layers. Each says whether it overwrites or
/// accumulates.
public enum Elementwise {
    @inlinable
    public static func sigmoid<S: Scalar>(_ x: S) -> S { 1 / (1 + S.exp(-x)) }

    /// tanh through one exp: 1 - 2/(e^{2x} + 1). Absolute error within a few ulps of 1 (what a
    /// GRU needs), at a third of libm tanhf's cost; saturates cleanly (e^{2x} = ∞ gives 1).
    @inlinable
    public static func tanh<S: Scalar>(_ x: S) -> S { 1 - 2 / (S.exp(2 * x) + 1) }

    /// y[i] = e^x[i] over an array, `y` may be `x`. Float: CKernels' `lf_expf`, eight at a time
    /// (within 2 ulp; libm's expf per element cost 8% of a main-job step); Double: libm's exp.
    @inlinable
    public static func exp<S: Scalar>(_ x: UnsafePointer<S>, into y: UnsafeMutablePointer<S>, count: Int) {
        if S.self == Float.self {
            lf_expf(UnsafeRawPointer(x).assumingMemoryBound(to: Float.self),
                    UnsafeMutableRawPointer(y).assumingMemoryBound(to: Float.self), count)
        } else {
            for i in 0..<count { y[i] = S.exp(x[i]) }
        }
    }

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

    /// Σ term(i) over 0..<count in eight interleaved partial sums, added pairwise at the end:
    /// a float sum in one chain waits on the adder's latency at every term (the compiler may
    /// not reorder it), eight chains keep the adders busy and vectorise. The order is fixed,
    /// so the result is the same at every call.
    @inlinable @inline(__always)
    public static func sum<S: Scalar>(count: Int, _ term: (Int) -> S) -> S {
        var a0: S = 0, a1: S = 0, a2: S = 0, a3: S = 0, a4: S = 0, a5: S = 0, a6: S = 0, a7: S = 0
        var i = 0
        while i + 8 <= count {
            a0 += term(i); a1 += term(i + 1); a2 += term(i + 2); a3 += term(i + 3)
            a4 += term(i + 4); a5 += term(i + 5); a6 += term(i + 6); a7 += term(i + 7)
            i += 8
        }
        while i < count { a0 += term(i); i += 1 }
        return ((a0 + a1) + (a2 + a3)) + ((a4 + a5) + (a6 + a7))
    }

    /// out[i] = x[i] + y[i]·(mask[i]·scale): a residual connection through an inverted-dropout
    /// mask (1 kept, 0 dropped), without a branch per element. `out` may be `y`.
    @inlinable
    public static func addMasked<S: Scalar>(_ out: UnsafeMutablePointer<S>, _ x: UnsafePointer<S>, _ y: UnsafePointer<S>,
                                           mask: UnsafePointer<UInt8>, scale: S, count: Int) {
        for i in 0..<count { out[i] = x[i] + y[i] * (S(mask[i]) * scale) }
    }

    /// out[i] *= mask[i]·scale
    @inlinable
    public static func multiplyMasked<S: Scalar>(_ out: UnsafeMutablePointer<S>, mask: UnsafePointer<UInt8>, scale: S, count: Int) {
        for i in 0..<count { out[i] *= S(mask[i]) * scale }
    }
}
