import CKernels

/// The shape of a grid of products: its two extents and, for each operand, the element
/// offset from one product to the next along each extent.
public struct GEMMGrid: Hashable, Sendable {
    public struct Steps: Hashable, Sendable {
        public var outer: Int, inner: Int
        public init(outer: Int, inner: Int) { self.outer = outer; self.inner = inner }
    }
    public var outer: Int, inner: Int
    public var a: Steps, b: Steps, c: Steps
    public init(outer: Int, inner: Int, a: Steps, b: Steps, c: Steps) {
        self.outer = outer; self.inner = inner; self.a = a; self.b = b; self.c = c
    }
}

/// Products on operands the caller has already converted to bfloat16 (raw `UInt16` bits),
/// for code that reuses one conversion across several products (the attention's, per chunk
/// of trials). Float32 accumulation and output. Only where `OneDNN.bf16Available`.
public enum BF16 {
    /// Rounds `rows` rows of `count` floats, `ld` apart in `source`, to bfloat16 (nearest even),
    /// packed one after another into `destination`.
    public static func convert(rows: Int, count: Int, from source: UnsafePointer<Float>, ld: Int,
                               into destination: UnsafeMutablePointer<UInt16>) {
        for r in 0..<rows { lf_f32_to_bf16(source + r * ld, destination + r * count, count) }
    }

    /// C_ij ← α·op(A_ij)·op(B_ij) + β·C_ij for i < grid.outer, j < grid.inner, where X_ij
    /// starts at x + i·grid.x.outer + j·grid.x.inner and each matrix is row-major as in
    /// `Scalar.gemm`, in one oneDNN primitive. False when oneDNN cannot run it.
    public static func gemm(grid: GEMMGrid, transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float,
                            a: UnsafePointer<UInt16>, lda: Int, b: UnsafePointer<UInt16>, ldb: Int,
                            beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int) -> Bool {
        guard m > 0, n > 0, k > 0, grid.outer > 0, grid.inner > 0 else { return true }
        return OneDNN.gemm(grid: grid, transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha,
                           a: a, lda: lda, b: b, ldb: ldb, beta: beta, c: c, ldc: ldc, precision: .bf16)
    }
}

extension GEMMGrid {
    /// C_ij ← α·op(A_ij)·op(B_ij) + β·C_ij over the grid (see `BF16.gemm`) on float32 operands,
    /// in one oneDNN primitive: one call where a loop would make grid.outer·grid.inner small
    /// ones, each paying oneDNN's dispatch. False when oneDNN cannot run it (the caller loops).
    public static func gemm(_ grid: GEMMGrid, transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float,
                            a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
                            beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int) -> Bool {
        guard m > 0, n > 0, k > 0, grid.outer > 0, grid.inner > 0 else { return true }
        return OneDNN.gemm(grid: grid, transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha,
                           a: a, lda: lda, b: b, ldb: ldb, beta: beta, c: c, ldc: ldc, precision: .float32)
    }
}
