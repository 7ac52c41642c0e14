import CBLAS
import RealModule

/// The element type of every kernel: `Float` in training, `Double` in gradient checks.
///
/// The only BLAS entry points the project uses are here, so `Kernels` stays the sole caller
/// of `cblas_*`.
public protocol Scalar: Real, BinaryFloatingPoint, Sendable
where Self.RawSignificand: FixedWidthInteger {
    /// C ← α·op(A)·op(B) + β·C, row-major. `op(A)` is m×k, `op(B)` is k×n, C is m×n.
    /// `precision` .bf16 rounds the operands to bfloat16 (float32 accumulation and output)
    /// where the machine can; Double ignores it.
    static func gemm(
        transA: Bool, transB: Bool, m: Int, n: Int, k: Int,
        alpha: Self, a: UnsafePointer<Self>, lda: Int,
        b: UnsafePointer<Self>, ldb: Int,
        beta: Self, c: UnsafeMutablePointer<Self>, ldc: Int, precision: Precision)
}

extension Scalar {
    /// The float32 product.
    @inlinable
    public static func gemm(
        transA: Bool, transB: Bool, m: Int, n: Int, k: Int,
        alpha: Self, a: UnsafePointer<Self>, lda: Int,
        b: UnsafePointer<Self>, ldb: Int,
        beta: Self, c: UnsafeMutablePointer<Self>, ldc: Int
    ) {
        gemm(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda, b: b, ldb: ldb,
             beta: beta, c: c, ldc: ldc, precision: .float32)
    }
}

/// Which library multiplies Float matrices. `automatic`: oneDNN (its matmul primitive) for
/// products of at least `GEMMEngine.oneDNNMinimum` multiply-adds when it runs here, OpenBLAS
/// otherwise. `bench` pins one to compare them.
public enum GEMMEngine: String, Sendable {
    case automatic, openBLAS, oneDNN

    /// The process-wide choice (`bench` sets it), unless a task scopes its own.
    public static var current: GEMMEngine {
        get { scoped ?? configured }
        set { configured = newValue }
    }
    nonisolated(unsafe) static var configured = GEMMEngine.automatic
    /// An engine for the current task only, so tests can pin one without changing what
    /// tests running beside them use: `GEMMEngine.$scoped.withValue(.openBLAS) { ... }`.
    @TaskLocal public static var scoped: GEMMEngine?
    /// Below this many multiply-adds a call's fixed cost in oneDNN exceeds its gain.
    nonisolated(unsafe) public static var oneDNNMinimum = 0

    /// Whether a Float product of m·n·k multiply-adds goes to oneDNN under the current choice.
    public static func useOneDNN(_ m: Int, _ n: Int, _ k: Int) -> Bool {
        switch current {
        case .openBLAS: return false
        case .oneDNN: return OneDNN.available
        case .automatic: return OneDNN.available && m * n * k >= oneDNNMinimum
        }
    }
}

@inline(__always)
private func blasTranspose(_ t: Bool) -> CBLAS_TRANSPOSE { t ? CblasTrans : CblasNoTrans }

extension Float: Scalar {
    public static func gemm(
        transA: Bool, transB: Bool, m: Int, n: Int, k: Int,
        alpha: Float, a: UnsafePointer<Float>, lda: Int,
        b: UnsafePointer<Float>, ldb: Int,
        beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int, precision: Precision
    ) {
        guard m > 0 && n > 0 else { return }
        let bf16 = precision == .bf16 && OneDNN.bf16Available
        if (bf16 || GEMMEngine.useOneDNN(m, n, k)) && k > 0,
           OneDNN.gemm(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda, b: b, ldb: ldb,
                       beta: beta, c: c, ldc: ldc, precision: bf16 ? .bf16 : .float32) {
            return
        }
        cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                    Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
    }
}

extension Double: Scalar {
    @inlinable
    public static func gemm(
        transA: Bool, transB: Bool, m: Int, n: Int, k: Int,
        alpha: Double, a: UnsafePointer<Double>, lda: Int,
        b: UnsafePointer<Double>, ldb: Int,
        beta: Double, c: UnsafeMutablePointer<Double>, ldc: Int, precision: Precision
    ) {
        cblas_dgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                    Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
    }
}

/// The kernels this machine's float32 arithmetic runs on: oneDNN's ISA and OpenBLAS's core
/// ("oneDNN avx512_core_bf16, OpenBLAS Cooperlake"). Both libraries pick kernels by CPU, and
/// their blockings set the order of float32 sums: results are bitwise equal between machines
/// with the same kernel set and differ in rounding between sets (docs/cluster.md).
/// `DNNL_MAX_CPU_ISA` and `OPENBLAS_CORETYPE` choose another set.
public var kernelSet: String {
    "oneDNN \(OneDNN.isa), OpenBLAS \(openblas_get_corename().map { String(cString: $0) } ?? "?")"
}

/// Sets the number of OpenBLAS threads for this process, and the element-wise workers with it.
public func setBLASThreads(_ n: Int) {
    openblas_set_num_threads(Int32(n))
    OneDNN.setThreads(n)
    Parallel.workers = max(1, n)
}
