/// y = x·Wᵀ + b, PyTorch `nn.Linear` semantics, over `rows` independent rows. `precision`
/// .bf16 runs the products (forward, input and weight gradients) on bfloat16 operands.
/// `inputScale` s makes the layer's input s·x while x itself enters the product: y = s·(x·Wᵀ) + b,
/// with s applied to the float32 result, so a constant factor (coordinated dropout's 1/keep)
/// is not rounded into bf16 operands.
///
/// Shapes (row-major): x (rows, inDim), W (outDim, inDim), b (outDim), y (rows, outDim).
public enum Linear {
    /// Overwrites `y`. `bias` may be nil.
    @inlinable
    public static func forward<S: Scalar>(
        y: UnsafeMutablePointer<S>, x: UnsafePointer<S>, weight: UnsafePointer<S>, bias: UnsafePointer<S>?,
        rows: Int, inDim: Int, outDim: Int, precision: Precision = .float32, inputScale: S = 1
    ) {
        if let bias {
            for r in 0..<rows { (y + r * outDim).update(from: bias, count: outDim) }
        }
        S.gemm(transA: false, transB: true, m: rows, n: outDim, k: inDim,
               alpha: inputScale, a: x, lda: inDim, b: weight, ldb: inDim,
               beta: bias == nil ? 0 : 1, c: y, ldc: outDim, precision: precision)
    }

    /// Accumulates into `dx` (if non-nil), `dWeight` and `dBias` (if non-nil) from `dy`.
    @inlinable
    public static func backward<S: Scalar>(
        dx: UnsafeMutablePointer<S>?, dWeight: UnsafeMutablePointer<S>, dBias: UnsafeMutablePointer<S>?,
        dy: UnsafePointer<S>, x: UnsafePointer<S>, weight: UnsafePointer<S>,
        rows: Int, inDim: Int, outDim: Int, precision: Precision = .float32, inputScale: S = 1
    ) {
        guard rows > 0 else { return }
        // In bf16 both products with dy, x and W converted once (bitwise the two `gemm` calls).
        let fused = precision == .bf16 && S.self == Float.self && OneDNN.bf16Available && inDim > 0 && outDim > 0
            && OneDNN.linearBackwardBF16(dx: dx.map { UnsafeMutableRawPointer($0).assumingMemoryBound(to: Float.self) },
                                         dWeight: UnsafeMutableRawPointer(dWeight).assumingMemoryBound(to: Float.self),
                                         dy: UnsafeRawPointer(dy).assumingMemoryBound(to: Float.self),
                                         x: UnsafeRawPointer(x).assumingMemoryBound(to: Float.self),
                                         weight: UnsafeRawPointer(weight).assumingMemoryBound(to: Float.self),
                                         rows: rows, inDim: inDim, outDim: outDim, alpha: Float(inputScale))
        if !fused {
            products(dx: dx, dWeight: dWeight, dy: dy, x: x, weight: weight, rows: rows, inDim: inDim, outDim: outDim,
                     precision: precision, alpha: inputScale)
        }
        if let dBias {
            for r in 0..<rows {
                let row = dy + r * outDim
                for o in 0..<outDim { dBias[o] += row[o] }
            }
        }
    }

    /// The backward's two products, one `gemm` each.
    @inlinable @usableFromInline
    static func products<S: Scalar>(
        dx: UnsafeMutablePointer<S>?, dWeight: UnsafeMutablePointer<S>, dy: UnsafePointer<S>, x: UnsafePointer<S>,
        weight: UnsafePointer<S>, rows: Int, inDim: Int, outDim: Int, precision: Precision, alpha: S = 1
    ) {
        if let dx {
            // dx (rows, in) += α·dy (rows, out) · W (out, in)
            S.gemm(transA: false, transB: false, m: rows, n: inDim, k: outDim,
                   alpha: alpha, a: dy, lda: outDim, b: weight, ldb: inDim, beta: 1, c: dx, ldc: inDim, precision: precision)
        }
        // dW (out, in) += α·dyᵀ (out, rows) · x (rows, in)
        S.gemm(transA: true, transB: false, m: outDim, n: inDim, k: rows,
               alpha: alpha, a: dy, lda: outDim, b: x, ldb: inDim, beta: 1, c: dWeight, ldc: inDim, precision: precision)
    }
}
