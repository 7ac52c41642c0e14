import Kernels
import RealModule

/// LayerNorm over the last axis, PyTorch semantics: biased variance, eps 1e-5, affine.
public enum LayerNorm {
    public static let eps = 1e-5

    /// Overwrites `y` (rows, width) and the caches `xHat` (rows, width) and `inverseStd` (rows).
    @inlinable
    public static func forward<S: Scalar>(
        y: UnsafeMutablePointer<S>, xHat: UnsafeMutablePointer<S>, inverseStd: UnsafeMutablePointer<S>,
        x: UnsafePointer<S>, weight: UnsafePointer<S>, bias: UnsafePointer<S>, rows: Int, width: Int
    ) {
        Parallel.ranges(rows, minimum: 32) { range in
            for r in range {
                inverseStd[r] = normalise(x + r * width, xHat: xHat + r * width, y: y + r * width, weight: weight, bias: bias, width: width)
            }
        }
    }

    /// `forward` of s = x + y ⊙ mask·scale (a residual connection through inverted dropout) in
    /// one pass over each row: s is written over `addend` (scratch) and normalised while the row
    /// is in cache. The same operations, in the same order, as `Elementwise.addMasked` then
    /// `forward`.
    @inlinable
    public static func forwardResidual<S: Scalar>(
        y out: UnsafeMutablePointer<S>, xHat: UnsafeMutablePointer<S>, inverseStd: UnsafeMutablePointer<S>,
        x: UnsafePointer<S>, addend: UnsafeMutablePointer<S>, mask: UnsafePointer<UInt8>, scale: S,
        weight: UnsafePointer<S>, bias: UnsafePointer<S>, rows: Int, width: Int
    ) {
        Parallel.ranges(rows, minimum: 32) { range in
            for r in range {
                let xr = x + r * width, sr = addend + r * width, mr = mask + r * width
                for i in 0..<width { sr[i] = xr[i] + sr[i] * (S(mr[i]) * scale) }
                inverseStd[r] = normalise(sr, xHat: xHat + r * width, y: out + r * width, weight: weight, bias: bias, width: width)
            }
        }
    }

    /// One row: x̂ = (x - mean)/σ and y = x̂ γ + β. Returns 1/σ.
    @inlinable @inline(__always)
    static func normalise<S: Scalar>(_ xr: UnsafePointer<S>, xHat hr: UnsafeMutablePointer<S>, y yr: UnsafeMutablePointer<S>,
                                     weight: UnsafePointer<S>, bias: UnsafePointer<S>, width: Int) -> S {
        let n = S(width)
        let mean = Elementwise.sum(count: width) { xr[$0] } / n
        let variance = Elementwise.sum(count: width) { (xr[$0] - mean) * (xr[$0] - mean) } / n
        let inv = 1 / (variance + S(eps)).squareRoot()
        for i in 0..<width {
            hr[i] = (xr[i] - mean) * inv
            yr[i] = affine(hr[i], weight[i], bias[i])
        }
        return inv
    }

    /// y = x̂ γ + β, the forward's last operation.
    @inlinable @inline(__always)
    static func affine<S: Scalar>(_ xHat: S, _ weight: S, _ bias: S) -> S { xHat * weight + bias }

    /// Overwrites `y` (rows, width) with x̂ γ + β: the output of the `forward` that left `xHat`,
    /// bit for bit (the same operation).
    @inlinable
    public static func output<S: Scalar>(y: UnsafeMutablePointer<S>, xHat: UnsafePointer<S>, weight: UnsafePointer<S>,
                                         bias: UnsafePointer<S>, rows: Int, width: Int) {
        Parallel.ranges(rows, minimum: 32) { range in
            for r in range {
                let hr = xHat + r * width, yr = y + r * width
                for i in 0..<width { yr[i] = affine(hr[i], weight[i], bias[i]) }
            }
        }
    }

    /// dx = (1/σ)(dx̂ - mean(dx̂) - x̂ · mean(dx̂ ⊙ x̂)), dx̂ = dy ⊙ γ. Accumulates into `dWeight`
    /// and `dBias`, and into `dx`; with `overwrite` it overwrites `dx` instead, which may then
    /// be `dy` itself (each row of dy is read before its row of dx is written).
    @inlinable
    public static func backward<S: Scalar>(
        dx: UnsafeMutablePointer<S>, dWeight: UnsafeMutablePointer<S>, dBias: UnsafeMutablePointer<S>,
        dy: UnsafePointer<S>, xHat: UnsafePointer<S>, inverseStd: UnsafePointer<S>, weight: UnsafePointer<S>,
        rows: Int, width: Int, overwrite: Bool = false
    ) {
        parameterGradients(dWeight: dWeight, dBias: dBias, dy: dy, xHat: xHat, rows: rows, width: width)
        Parallel.ranges(rows, minimum: 32) { range in
            for r in range {
                let dxr = dx + r * width
                rowGradient(dy + r * width, xHat: xHat + r * width, inverseStd: inverseStd[r], weight: weight, width: width) { i, g in
                    if overwrite { dxr[i] = g } else { dxr[i] += g }
                }
            }
        }
    }

    /// `backward` with the residual connection's split in the same pass over each row: with
    /// g = d(x + y ⊙ mask·scale), `dx` gets g (overwritten, or accumulated with
    /// `accumulateInput`) and `dAddend` gets g ⊙ mask·scale. `dAddend` may be `dy`. The same
    /// operations as `backward` then the copy and `Elementwise.multiplyMasked`.
    @inlinable
    public static func backwardResidual<S: Scalar>(
        dx: UnsafeMutablePointer<S>, accumulateInput: Bool, dAddend: UnsafeMutablePointer<S>,
        mask: UnsafePointer<UInt8>, scale: S, dWeight: UnsafeMutablePointer<S>, dBias: UnsafeMutablePointer<S>,
        dy: UnsafePointer<S>, xHat: UnsafePointer<S>, inverseStd: UnsafePointer<S>, weight: UnsafePointer<S>,
        rows: Int, width: Int
    ) {
        parameterGradients(dWeight: dWeight, dBias: dBias, dy: dy, xHat: xHat, rows: rows, width: width)
        Parallel.ranges(rows, minimum: 32) { range in
            for r in range {
                let dxr = dx + r * width, dar = dAddend + r * width, mr = mask + r * width
                rowGradient(dy + r * width, xHat: xHat + r * width, inverseStd: inverseStd[r], weight: weight, width: width) { i, g in
                    if accumulateInput { dxr[i] += g } else { dxr[i] = g }
                    dar[i] = g * (S(mr[i]) * scale)
                }
            }
        }
    }

    /// The parameter gradients sum over rows: serial, in row order, whatever the threads; first,
    /// while dy is intact.
    @inlinable @inline(__always)
    static func parameterGradients<S: Scalar>(dWeight: UnsafeMutablePointer<S>, dBias: UnsafeMutablePointer<S>, dy: UnsafePointer<S>,
                                              xHat: UnsafePointer<S>, rows: Int, width: Int) {
        for r in 0..<rows {
            let dyr = dy + r * width, hr = xHat + r * width
            for i in 0..<width {
                dWeight[i] += dyr[i] * hr[i]
                dBias[i] += dyr[i]
            }
        }
    }

    /// One row's input gradient, element i handed to `store` after every read of dy's row
    /// element i (so `store` may write over it).
    @inlinable @inline(__always)
    static func rowGradient<S: Scalar>(_ dyr: UnsafePointer<S>, xHat hr: UnsafePointer<S>, inverseStd inv: S,
                                       weight: UnsafePointer<S>, width: Int, store: (Int, S) -> Void) {
        let n = S(width)
        let meanD = Elementwise.sum(count: width) { dyr[$0] * weight[$0] } / n
        let meanDH = Elementwise.sum(count: width) { dyr[$0] * weight[$0] * hr[$0] } / n
        for i in 0..<width { store(i, inv * (dyr[i] * weight[i] - meanD - hr[i] * meanDH)) }
    }
}

/// Post-norm Transformer encoder layer, `nn.TransformerEncoderLayer(D, heads, Fff, dropout,
/// activation=relu, norm_first=False)` semantics, over time-major activations (steps, B, D):
///
///   x1 = LayerNorm1(x + drop(MHA(x)))     MHA: packed in_proj, softmax(QKᵀ/√dh), dropout on
///   x2 = LayerNorm2(x1 + drop(W2 drop(ReLU(W1 x1))))      the attention weights, out_proj
///
/// No mask and no positional encoding: every step attends to every step of its own trial.
public final class TransformerLayer<S: Scalar> {
    let steps: Int, width: Int, heads: Int, headWidth: Int, feedForward: Int
    let rate: Double
    /// Of the projections, the attention products and the feed-forward products (the softmax
    /// and everything element-wise stay float32).
    let precision: Precision

    /// Q, K, V; the attention's backward overwrites it with their gradients.  (steps, B, 3D)
    let qkv: Buffer<S>
    let probs: Buffer<S>            // softmax P                (B, heads, steps, steps)
    let probsDropped: Buffer<S>     // P ⊙ mask                 (B, heads, steps, steps)
    let attnMask: DropoutMask<S>    // attention dropout mask   (B, heads, steps, steps)
    let context: Buffer<S>          // heads concatenated       (steps, B, D)
    let attnOutMask: DropoutMask<S> // (steps, B, D)
    /// x1 lives in `dx1`'s memory (the backward's scratch): LayerNorm2's backward overwrites it,
    /// and the backward recomputes it from x̂₁ where it is read (linear1's weight gradient).
    let x1: Buffer<S>, x1Hat: Buffer<S>, x1InvStd: Buffer<S>    // (steps, B, D), (steps·B)
    let ffMask: DropoutMask<S>      // (steps, B, Fff)
    let ffHiddenDropped: Buffer<S>  // ReLU(W1 x1 + b1) ⊙ mask  (steps, B, Fff)
    let ffOutMask: DropoutMask<S>   // (steps, B, D)
    let x2Hat: Buffer<S>, x2InvStd: Buffer<S>
    /// Forward scratch: out_proj's output, then x + drop(it) for LayerNorm1; later linear2's
    /// output, then x1 + drop(it) for LayerNorm2. Backward needs neither.  (steps, B, D)
    let residual: Buffer<S>
    // Backward scratch. dx1 holds d x1 until LayerNorm1's backward, then d context.
    // The pre-norm gradients (d residual) take `residual`'s place: the backward's input dOut
    // lives there (the model's readout writes its input gradient into it), and LayerNorm2's
    // backward overwrites it in place.
    var dResidual: Buffer<S> { residual }
    let dx1: Buffer<S>                                          // (steps, B, D)
    /// dQ, dK, dV of one (trial, head), before they replace its Q, K, V.  (3, steps, dh)
    /// The float32 grids use it for the dQ of a chunk of trials instead.  (steps, chunk, D)
    let headGradients: Buffer<S>
    let dFF: Buffer<S>              // (steps, B, Fff)
    /// dS of one (trial, head); the float32 grids': of a chunk of trials.  (chunk, heads, steps, steps)
    let dScores: Buffer<S>
    /// Float32 attention products as grids over (trial, head), one oneDNN primitive each, where
    /// oneDNN runs: the backward takes `gridChunkTrials` trials at a time. 0: the loops.
    let gridChunkTrials: Int
    /// With bf16 (Float, on the hardware or the emulated bf16 path) the attention's products run per chunk of
    /// `chunkTrials` trials on bf16 copies: of the chunk's Q, K, V (steps, chunk, 3D), of its
    /// context gradient (steps, chunk, D) and of its P ⊙ mask or dS (chunk, heads, steps,
    /// steps); `chunkScores` holds the chunk's dPd and dS in float32. Nil in float32.
    let bf16Attention: BF16Attention?
    let inProjWeight, inProjBias, outProjWeight, outProjBias: ParameterSlot
    let linear1Weight, linear1Bias, linear2Weight, linear2Bias: ParameterSlot
    let norm1Weight, norm1Bias, norm2Weight, norm2Bias: ParameterSlot

    /// The dropout streams: attention weights, attention output, feed-forward, feed-forward output.
    let purposes: [NoisePurpose] = [.attentionDropout, .attentionOutputDropout, .feedForwardDropout, .feedForwardOutputDropout]

    /// The parameter-name prefix (nn.TransformerEncoderLayer's, under the model's `decoder`).
    public static var prefix: String { "decoder." }

    /// `attentionChunkTrials` overrides the bf16 attention's chunk of trials (tests).
    public init(config: ModelConfig, steps: Int, maxBatch: Int, layout: ParameterLayout, attentionChunkTrials: Int? = nil) {
        let p = Self.prefix
        inProjWeight = layout.slot("\(p)self_attn.in_proj_weight")
        inProjBias = layout.slot("\(p)self_attn.in_proj_bias")
        outProjWeight = layout.slot("\(p)self_attn.out_proj.weight")
        outProjBias = layout.slot("\(p)self_attn.out_proj.bias")
        linear1Weight = layout.slot("\(p)linear1.weight")
        linear1Bias = layout.slot("\(p)linear1.bias")
        linear2Weight = layout.slot("\(p)linear2.weight")
        linear2Bias = layout.slot("\(p)linear2.bias")
        norm1Weight = layout.slot("\(p)norm1.weight")
        norm1Bias = layout.slot("\(p)norm1.bias")
        norm2Weight = layout.slot("\(p)norm2.weight")
        norm2Bias = layout.slot("\(p)norm2.bias")
        self.steps = steps
        width = config.decoderWidth
        heads = config.heads
        headWidth = width / heads
        feedForward = config.feedForward
        rate = config.decoderDropout
        precision = config.precision
        let rowsD = steps * maxBatch * width, rowsF = steps * maxBatch * feedForward
        let attention = maxBatch * heads * steps * steps
        qkv = Buffer(count: 3 * rowsD)
        probs = Buffer(count: attention)
        probsDropped = Buffer(count: attention)
        attnMask = DropoutMask(count: attention)
        context = Buffer(count: rowsD)
        attnOutMask = DropoutMask(count: rowsD)
        x1Hat = Buffer(count: rowsD)
        x1InvStd = Buffer(count: steps * maxBatch)
        ffMask = DropoutMask(count: rowsF)
        ffHiddenDropped = Buffer(count: rowsF)
        ffOutMask = DropoutMask(count: rowsD)
        x2Hat = Buffer(count: rowsD)
        x2InvStd = Buffer(count: steps * maxBatch)
        residual = Buffer(count: rowsD)
        dx1 = Buffer(count: rowsD)
        x1 = dx1
        dFF = Buffer(count: rowsF)
        let bf16Attention = config.precision == .bf16 && S.self == Float.self && OneDNN.bf16Available
            ? BF16Attention(steps: steps, maxBatch: maxBatch, width: width, heads: heads, chunkTrials: attentionChunkTrials) : nil
        self.bf16Attention = bf16Attention
        // About 2M values of dQ per chunk, as the bf16 chunks: all the main job's and the small
        // model's trials, 52 of the paper size's.
        gridChunkTrials = bf16Attention == nil && S.self == Float.self && OneDNN.available
            ? max(1, min(maxBatch, attentionChunkTrials ?? (2 << 20) / max(1, steps * width))) : 0
        let chunk = max(1, gridChunkTrials)
        let headCount = max(3 * steps * headWidth, steps * chunk * width), scoresCount = chunk * heads * steps * steps
        // Both are used only in the attention's backward, after linear1's, when d FF is spent.
        if dFF.count >= headCount + scoresCount {
            headGradients = Buffer(viewing: dFF, count: headCount)
            dScores = Buffer(viewing: dFF, offset: headCount, count: scoresCount)
        } else {
            headGradients = Buffer(count: headCount)
            dScores = Buffer(count: scoresCount)
        }
    }

    /// Overwrites `out` (steps, B, D) from `x` (steps, B, D).
    public func forward(x: UnsafePointer<S>, out: UnsafeMutablePointer<S>, batch: Int,
                        params: ParameterSet<S>, noise: NoiseContext) {
        let rows = steps * batch, d = width, f = feedForward
        noise.dropoutMask(purposes[1], rate: rate, into: attnOutMask, rows: steps, width: d)
        noise.dropoutMask(purposes[2], rate: rate, into: ffMask, rows: steps, width: f)
        noise.dropoutMask(purposes[3], rate: rate, into: ffOutMask, rows: steps, width: d)
        // Attention-weight masks are (B, heads, steps, steps): one row block per trial.
        let perTrial = heads * steps * steps
        noise.dropoutMask(purposes[0], rate: rate, into: attnMask, rows: 1, width: perTrial)

        // Self-attention.
        Linear.forward(y: qkv.ptr, x: x, weight: params.value(inProjWeight), bias: params.value(inProjBias),
                       rows: rows, inDim: d, outDim: 3 * d, precision: precision)
        if let bf16Attention {
            attentionForwardBF16(bf16Attention, batch: batch)
        } else if !attentionForwardGrid(batch: batch) {
            attentionForward(batch: batch)
        }
        Linear.forward(y: residual.ptr, x: context.ptr, weight: params.value(outProjWeight), bias: params.value(outProjBias),
                       rows: rows, inDim: d, outDim: d, precision: precision)
        // x1 = LayerNorm1(x + drop(attnOut)), in one pass per row.
        LayerNorm.forwardResidual(y: x1.ptr, xHat: x1Hat.ptr, inverseStd: x1InvStd.ptr, x: x, addend: residual.ptr,
                                  mask: attnOutMask.kept, scale: attnOutMask.scale,
                                  weight: params.value(norm1Weight), bias: params.value(norm1Bias), rows: rows, width: d)
        // Feed-forward.
        Linear.forward(y: ffHiddenDropped.ptr, x: x1.ptr, weight: params.value(linear1Weight), bias: params.value(linear1Bias),
                       rows: rows, inDim: d, outDim: f, precision: precision)
        let ffd = ffHiddenDropped.ptr, ffm = ffMask.kept, ffs = ffMask.scale
        Parallel.ranges(rows * f) { range in for i in range { ffd[i] = max(ffd[i], 0) * (S(ffm[i]) * ffs) } }
        Linear.forward(y: residual.ptr, x: ffHiddenDropped.ptr, weight: params.value(linear2Weight), bias: params.value(linear2Bias),
                       rows: rows, inDim: f, outDim: d, precision: precision)
        // out = LayerNorm2(x1 + drop(ffOut)), in one pass per row.
        LayerNorm.forwardResidual(y: out, xHat: x2Hat.ptr, inverseStd: x2InvStd.ptr, x: x1.ptr, addend: residual.ptr,
                                  mask: ffOutMask.kept, scale: ffOutMask.scale,
                                  weight: params.value(norm2Weight), bias: params.value(norm2Bias), rows: rows, width: d)
    }

    /// Per trial and head: P = softmax(Q Kᵀ/√dh), context = (P ⊙ mask) V. Q, K, V of one
    /// (trial, head) are strided views into qkv with leading dimension B·3D.
    func attentionForward(batch: Int) {
        let d = width, dh = headWidth, ld = batch * 3 * d, ldc = batch * d
        let scale = 1 / S(dh).squareRoot()
        for b in 0..<batch {
            for h in 0..<heads {
                let q = qkv.ptr + b * 3 * d + h * dh, k = q + d, v = q + 2 * d
                let block = (b * heads + h) * steps * steps
                let pr = probs.ptr + block, pd = probsDropped.ptr + block, mask = attnMask.kept + block, keep = attnMask.scale
                // scores (steps, steps) = Q Kᵀ · scale
                S.gemm(transA: false, transB: true, m: steps, n: steps, k: dh, alpha: scale,
                       a: q, lda: ld, b: k, ldb: ld, beta: 0, c: pr, ldc: steps)
                softmax(pr, dropped: pd, mask: mask, keep: keep)
                // context (steps, dh) = Pd V
                S.gemm(transA: false, transB: false, m: steps, n: dh, k: steps, alpha: 1,
                       a: pd, lda: steps, b: v, ldb: ld, beta: 0, c: context.ptr + b * d + h * dh, ldc: ldc)
            }
        }
    }

    /// One (trial, head)'s scores (steps, steps) become P = softmax by row, in place, and
    /// `dropped` P ⊙ mask: each row less its maximum, then the whole block's exponentials in one
    /// call (`Elementwise.exp`), then each row divided by its sum.
    @inline(__always)
    func softmax(_ pr: UnsafeMutablePointer<S>, dropped pd: UnsafeMutablePointer<S>, mask: UnsafePointer<UInt8>, keep: S) {
        for i in 0..<steps {
            let row = pr + i * steps
            var top = row[0]
            for j in 1..<steps { top = max(top, row[j]) }
            for j in 0..<steps { row[j] -= top }
        }
        Elementwise.exp(pr, into: pr, count: steps * steps)
        for i in 0..<steps {
            let row = pr + i * steps, dropped = pd + i * steps, kept = mask + i * steps
            let sum = Elementwise.sum(count: steps) { row[$0] }
            for j in 0..<steps {
                row[j] /= sum
                dropped[j] = row[j] * (S(kept[j]) * keep)
            }
        }
    }

    /// Through the dropout mask and the softmax of one (trial, head), in place:
    /// d(P ⊙ mask) becomes dS = P ⊙ (dP - Σ_j dP ⊙ P).
    @inline(__always)
    func softmaxBackward(_ ds: UnsafeMutablePointer<S>, probs pr: UnsafePointer<S>, mask: UnsafePointer<UInt8>, keep: S) {
        for i in 0..<steps {
            var dot: S = 0
            for j in 0..<steps {
                ds[i * steps + j] = mask[i * steps + j] != 0 ? ds[i * steps + j] * keep : 0
                dot += ds[i * steps + j] * pr[i * steps + j]
            }
            for j in 0..<steps { ds[i * steps + j] = pr[i * steps + j] * (ds[i * steps + j] - dot) }
        }
    }

    /// Accumulates into `dx` (steps, B, D) and the decoder.* gradients from `dOut` (steps, B, D),
    /// which may be `residual` (then it is overwritten). `x` is the input of the matching
    /// `forward`, which must be the last.
    public func backward(dOut: UnsafePointer<S>, dx: UnsafeMutablePointer<S>, x: UnsafePointer<S>,
                         batch: Int, params: ParameterSet<S>) {
        let rows = steps * batch, d = width, f = feedForward

        // LayerNorm2 and its residual in one pass: dx1 = d(x1 + drop(ffOut)), and dResidual =
        // d ffOut = dx1 ⊙ mask, overwriting dOut when it lives there.
        LayerNorm.backwardResidual(dx: dx1.ptr, accumulateInput: false, dAddend: dResidual.ptr,
                                   mask: ffOutMask.kept, scale: ffOutMask.scale,
                                   dWeight: params.grad(norm2Weight), dBias: params.grad(norm2Bias), dy: dOut,
                                   xHat: x2Hat.ptr, inverseStd: x2InvStd.ptr, weight: params.value(norm2Weight), rows: rows, width: d)
        dFF.ptr.update(repeating: 0, count: rows * f)
        Linear.backward(dx: dFF.ptr, dWeight: params.grad(linear2Weight), dBias: params.grad(linear2Bias), dy: dResidual.ptr,
                        x: ffHiddenDropped.ptr, weight: params.value(linear2Weight), rows: rows, inDim: f, outDim: d, precision: precision)
        // Through the mask and the ReLU: where the mask keeps, the kept value is positive
        // exactly where the pre-activation was; where it drops, the gradient is 0 either way.
        let dff = dFF.ptr, ffd = ffHiddenDropped.ptr, ffs = ffMask.scale
        Parallel.ranges(rows * f) { range in for i in range { dff[i] *= ffd[i] > 0 ? ffs : 0 } }
        // x1 (overwritten by d x1 above) again, into `residual`: d ffOut is spent, and LayerNorm1's
        // backward is the next to write there.
        let x1Again = residual
        LayerNorm.output(y: x1Again.ptr, xHat: x1Hat.ptr, weight: params.value(norm1Weight), bias: params.value(norm1Bias),
                         rows: rows, width: d)
        Linear.backward(dx: dx1.ptr, dWeight: params.grad(linear1Weight), dBias: params.grad(linear1Bias), dy: dFF.ptr,
                        x: x1Again.ptr, weight: params.value(linear1Weight), rows: rows, inDim: d, outDim: f, precision: precision)
        // LayerNorm1 and its residual in one pass: dx += d(x + drop(attnOut)), and dResidual =
        // d attnOut = that ⊙ mask.
        LayerNorm.backwardResidual(dx: dx, accumulateInput: true, dAddend: dResidual.ptr,
                                   mask: attnOutMask.kept, scale: attnOutMask.scale,
                                   dWeight: params.grad(norm1Weight), dBias: params.grad(norm1Bias), dy: dx1.ptr,
                                   xHat: x1Hat.ptr, inverseStd: x1InvStd.ptr, weight: params.value(norm1Weight), rows: rows, width: d)
        let dContext = dx1                                                       // d x1 is spent
        dContext.ptr.update(repeating: 0, count: rows * d)
        Linear.backward(dx: dContext.ptr, dWeight: params.grad(outProjWeight), dBias: params.grad(outProjBias),
                        dy: dResidual.ptr, x: context.ptr, weight: params.value(outProjWeight), rows: rows, inDim: d, outDim: d, precision: precision)
        if let bf16Attention {
            attentionBackwardBF16(bf16Attention, batch: batch, dContext: dContext.ptr)
        } else if !attentionBackwardGrid(batch: batch, dContext: dContext.ptr) {
            attentionBackward(batch: batch, dContext: dContext.ptr)
        }
        let dQKV = qkv                                                           // now dQ, dK, dV
        Linear.backward(dx: dx, dWeight: params.grad(inProjWeight), dBias: nil,
                        dy: dQKV.ptr, x: x, weight: params.value(inProjWeight), rows: rows, inDim: d, outDim: 3 * d, precision: precision)
        // in_proj_bias: the query and value parts. The key bias adds q_i·b_k to every score of
        // row i, which softmax ignores, so its gradient is exactly zero; summing dK in float
        // would instead leave rounding noise that Adam turns into full-size steps (and that
        // differs with the world size).
        let dBias = params.grad(inProjBias)
        for row in 0..<rows {
            let g = dQKV.ptr + row * 3 * d
            for j in 0..<d { dBias[j] += g[j] }
            for j in (2 * d)..<(3 * d) { dBias[j] += g[j] }
        }
    }

    /// Backward through the attention of every (trial, head), from `dContext` (steps, B, D):
    /// overwrites `qkv` with dQ, dK, dV. Each (trial, head) reads only its own Q, K, V, so its
    /// gradients are computed into `headGradients` and then replace them (saving a third
    /// buffer of (steps, B, 3D)).
    func attentionBackward(batch: Int, dContext: UnsafePointer<S>) {
        let d = width, dh = headWidth, ld = batch * 3 * d, ldc = batch * d
        let scale = 1 / S(dh).squareRoot()
        let ds = dScores.ptr
        let dq = headGradients.ptr, dk = dq + steps * dh, dv = dk + steps * dh      // (steps, dh) each
        for b in 0..<batch {
            for h in 0..<heads {
                let q = qkv.ptr + b * 3 * d + h * dh, k = q + d, v = q + 2 * d
                let dctx = dContext + b * d + h * dh
                let block = (b * heads + h) * steps * steps
                let pr = probs.ptr + block, pd = probsDropped.ptr + block, mask = attnMask.kept + block, keep = attnMask.scale
                // dV (steps, dh) = Pdᵀ dctx
                S.gemm(transA: true, transB: false, m: steps, n: dh, k: steps, alpha: 1,
                       a: pd, lda: steps, b: dctx, ldb: ldc, beta: 0, c: dv, ldc: dh)
                // dPd (steps, steps) = dctx Vᵀ
                S.gemm(transA: false, transB: true, m: steps, n: steps, k: dh, alpha: 1,
                       a: dctx, lda: ldc, b: v, ldb: ld, beta: 0, c: ds, ldc: steps)
                softmaxBackward(ds, probs: pr, mask: mask, keep: keep)
                // dQ = scale · dS K;  dK = scale · dSᵀ Q
                S.gemm(transA: false, transB: false, m: steps, n: dh, k: steps, alpha: scale,
                       a: ds, lda: steps, b: k, ldb: ld, beta: 0, c: dq, ldc: dh)
                S.gemm(transA: true, transB: false, m: steps, n: dh, k: steps, alpha: scale,
                       a: ds, lda: steps, b: q, ldb: ld, beta: 0, c: dk, ldc: dh)
                // This (trial, head)'s Q, K, V are spent: their gradients take their place.
                for t in 0..<steps {
                    (q + t * ld).update(from: dq + t * dh, count: dh)
                    (k + t * ld).update(from: dk + t * dh, count: dh)
                    (v + t * ld).update(from: dv + t * dh, count: dh)
                }
            }
        }
    }
}

/// The bf16 copies the attention's products read, per chunk of trials (see
/// `TransformerLayer.bf16Attention`), and the chunk's float32 score gradients.
final class BF16Attention {
    let chunkTrials: Int
    let qkv: UnsafeMutablePointer<UInt16>       // (steps, chunk, 3D)
    let context: UnsafeMutablePointer<UInt16>   // (steps, chunk, D): d context
    let scores: UnsafeMutablePointer<UInt16>    // (chunk, heads, steps, steps): P ⊙ mask, then dS
    let chunkScores: Buffer<Float>              // (chunk, heads, steps, steps): dPd, then dS

    init(steps: Int, maxBatch: Int, width: Int, heads: Int, chunkTrials: Int? = nil) {
        // About 2M values of Q, K, V per chunk (4 MB of bf16): all the small model's trials,
        // 18 of the paper size's.
        self.chunkTrials = max(1, min(maxBatch, chunkTrials ?? (2 << 20) / max(1, steps * 3 * width)))
        let chunk = self.chunkTrials
        qkv = .allocate(capacity: steps * chunk * 3 * width)
        context = .allocate(capacity: steps * chunk * width)
        scores = .allocate(capacity: chunk * heads * steps * steps)
        chunkScores = Buffer(count: chunk * heads * steps * steps)
    }

    deinit {
        qkv.deallocate(); context.deallocate(); scores.deallocate()
    }
}

extension TransformerLayer {
    /// `attentionForward` with bf16 products: per chunk of trials, Q, K, V are converted once
    /// and each product is one grid over (trial, head). The softmax stays float32.
    func attentionForwardBF16(_ work: BF16Attention, batch: Int) {
        let d = width, dh = headWidth, s2 = steps * steps, ld = batch * 3 * d
        let scale = Float(1 / S(dh).squareRoot())
        let qkvF = UnsafeMutableRawPointer(qkv.ptr).assumingMemoryBound(to: Float.self)
        let probsF = UnsafeMutableRawPointer(probsDropped.ptr).assumingMemoryBound(to: Float.self)
        let contextF = UnsafeMutableRawPointer(context.ptr).assumingMemoryBound(to: Float.self)
        let block = GEMMGrid.Steps(outer: heads * s2, inner: s2), inQKV = GEMMGrid.Steps(outer: 3 * d, inner: dh)
        for first in stride(from: 0, to: batch, by: work.chunkTrials) {
            let n = min(work.chunkTrials, batch - first), l16 = n * 3 * d
            BF16.convert(rows: steps, count: l16, from: qkvF + first * 3 * d, ld: ld, into: work.qkv)
            // scores = Q Kᵀ · scale, into probs.
            let scoresF = UnsafeMutableRawPointer(probs.ptr + first * heads * s2).assumingMemoryBound(to: Float.self)
            var ok = BF16.gemm(grid: GEMMGrid(outer: n, inner: heads, a: inQKV, b: inQKV, c: block), transA: false, transB: true,
                               m: steps, n: steps, k: dh, alpha: scale, a: work.qkv, lda: l16, b: work.qkv + d, ldb: l16,
                               beta: 0, c: scoresF, ldc: steps)
            for blockIndex in (first * heads)..<((first + n) * heads) {
                softmax(probs.ptr + blockIndex * s2, dropped: probsDropped.ptr + blockIndex * s2,
                        mask: attnMask.kept + blockIndex * s2, keep: attnMask.scale)
            }
            // context = (P ⊙ mask) V
            BF16.convert(rows: 1, count: n * heads * s2, from: probsF + first * heads * s2, ld: 0, into: work.scores)
            ok = ok && BF16.gemm(grid: GEMMGrid(outer: n, inner: heads, a: block, b: inQKV, c: GEMMGrid.Steps(outer: d, inner: dh)),
                                 transA: false, transB: false, m: steps, n: dh, k: steps, alpha: 1, a: work.scores, lda: steps,
                                 b: work.qkv + 2 * d, ldb: l16, beta: 0, c: contextF + first * d, ldc: batch * d)
            precondition(ok, "oneDNN could not run the attention's bf16 products (\(OneDNN.implementation(precision: .bf16)))")
        }
    }

    /// `attentionBackward` with bf16 products, per chunk of trials: the chunk's Q, K, V are
    /// converted first, so its dQ, dK, dV are written straight over their float32 values in
    /// `qkv`. The softmax's backward stays float32.
    func attentionBackwardBF16(_ work: BF16Attention, batch: Int, dContext: UnsafePointer<S>) {
        let d = width, dh = headWidth, s2 = steps * steps, ld = batch * 3 * d
        let scale = Float(1 / S(dh).squareRoot())
        let qkvF = UnsafeMutableRawPointer(qkv.ptr).assumingMemoryBound(to: Float.self)
        let probsF = UnsafeMutableRawPointer(probsDropped.ptr).assumingMemoryBound(to: Float.self)
        let dContextF = UnsafeRawPointer(dContext).assumingMemoryBound(to: Float.self)
        let ds = work.chunkScores.ptr
        let block = GEMMGrid.Steps(outer: heads * s2, inner: s2), inQKV = GEMMGrid.Steps(outer: 3 * d, inner: dh)
        let inContext = GEMMGrid.Steps(outer: d, inner: dh)
        for first in stride(from: 0, to: batch, by: work.chunkTrials) {
            let n = min(work.chunkTrials, batch - first), l16 = n * 3 * d, c16 = n * d
            let grid = { (a: GEMMGrid.Steps, b: GEMMGrid.Steps, c: GEMMGrid.Steps) in GEMMGrid(outer: n, inner: self.heads, a: a, b: b, c: c) }
            BF16.convert(rows: steps, count: l16, from: qkvF + first * 3 * d, ld: ld, into: work.qkv)
            BF16.convert(rows: steps, count: c16, from: dContextF + first * d, ld: batch * d, into: work.context)
            BF16.convert(rows: 1, count: n * heads * s2, from: probsF + first * heads * s2, ld: 0, into: work.scores)
            let q = qkvF + first * 3 * d
            // dV = Pdᵀ dctx, over V (its bf16 copy is all that is read from here on).
            var ok = BF16.gemm(grid: grid(block, inContext, inQKV), transA: true, transB: false, m: steps, n: dh, k: steps,
                               alpha: 1, a: work.scores, lda: steps, b: work.context, ldb: c16, beta: 0, c: q + 2 * d, ldc: ld)
            // dPd = dctx Vᵀ
            ok = ok && BF16.gemm(grid: grid(inContext, inQKV, block), transA: false, transB: true, m: steps, n: steps, k: dh,
                                 alpha: 1, a: work.context, lda: c16, b: work.qkv + 2 * d, ldb: l16, beta: 0, c: ds, ldc: steps)
            let dsS = UnsafeMutableRawPointer(ds).assumingMemoryBound(to: S.self)
            for j in 0..<(n * heads) {
                let blockIndex = first * heads + j
                softmaxBackward(dsS + j * s2, probs: probs.ptr + blockIndex * s2, mask: attnMask.kept + blockIndex * s2,
                                keep: attnMask.scale)
            }
            BF16.convert(rows: 1, count: n * heads * s2, from: ds, ld: 0, into: work.scores)
            // dQ = scale · dS K;  dK = scale · dSᵀ Q, over Q and K.
            ok = ok && BF16.gemm(grid: grid(block, inQKV, inQKV), transA: false, transB: false, m: steps, n: dh, k: steps,
                                 alpha: scale, a: work.scores, lda: steps, b: work.qkv + d, ldb: l16, beta: 0, c: q, ldc: ld)
            ok = ok && BF16.gemm(grid: grid(block, inQKV, inQKV), transA: true, transB: false, m: steps, n: dh, k: steps,
                                 alpha: scale, a: work.scores, lda: steps, b: work.qkv, ldb: l16, beta: 0, c: q + d, ldc: ld)
            precondition(ok, "oneDNN could not run the attention's bf16 products (\(OneDNN.implementation(precision: .bf16)))")
        }
    }

    /// `attentionForward` in float32 with each product one grid over (trial, head): the same
    /// products in two oneDNN calls instead of 2·B·heads. False (nothing done) where the loops
    /// run instead: Double, bf16, oneDNN absent or not chosen (`GEMMEngine`).
    func attentionForwardGrid(batch: Int) -> Bool {
        let d = width, dh = headWidth, s2 = steps * steps, ld = batch * 3 * d
        guard gridChunkTrials > 0, GEMMEngine.useOneDNN(steps, steps, dh) else { return false }
        let scale = Float(1 / S(dh).squareRoot())
        let qkvF = UnsafeMutableRawPointer(qkv.ptr).assumingMemoryBound(to: Float.self)
        let probsF = UnsafeMutableRawPointer(probs.ptr).assumingMemoryBound(to: Float.self)
        let droppedF = UnsafeMutableRawPointer(probsDropped.ptr).assumingMemoryBound(to: Float.self)
        let contextF = UnsafeMutableRawPointer(context.ptr).assumingMemoryBound(to: Float.self)
        let block = GEMMGrid.Steps(outer: heads * s2, inner: s2), inQKV = GEMMGrid.Steps(outer: 3 * d, inner: dh)
        // scores = Q Kᵀ · scale, into probs.
        var ok = GEMMGrid.gemm(GEMMGrid(outer: batch, inner: heads, a: inQKV, b: inQKV, c: block), transA: false, transB: true,
                               m: steps, n: steps, k: dh, alpha: scale, a: qkvF, lda: ld, b: qkvF + d, ldb: ld,
                               beta: 0, c: probsF, ldc: steps)
        precondition(ok, "oneDNN could not run the attention's score products (\(OneDNN.implementation(precision: .float32)))")
        for blockIndex in 0..<(batch * heads) {
            softmax(probs.ptr + blockIndex * s2, dropped: probsDropped.ptr + blockIndex * s2,
                    mask: attnMask.kept + blockIndex * s2, keep: attnMask.scale)
        }
        // context = (P ⊙ mask) V
        ok = GEMMGrid.gemm(GEMMGrid(outer: batch, inner: heads, a: block, b: inQKV, c: GEMMGrid.Steps(outer: d, inner: dh)),
                           transA: false, transB: false, m: steps, n: dh, k: steps, alpha: 1, a: droppedF, lda: steps,
                           b: qkvF + 2 * d, ldb: ld, beta: 0, c: contextF, ldc: batch * d)
        precondition(ok, "oneDNN could not run the attention's context products (\(OneDNN.implementation(precision: .float32)))")
        return true
    }

    /// `attentionBackward` in float32 with grids over (trial, head), per chunk of
    /// `gridChunkTrials` trials, overwriting `qkv` with dQ, dK, dV: dPd = dctx Vᵀ (into
    /// `dScores`), then dV over V, the softmax's backward, dQ into `headGradients` (K is still
    /// read by it), dK over K, and dQ copied over Q. False where the loops run instead.
    func attentionBackwardGrid(batch: Int, dContext: UnsafePointer<S>) -> Bool {
        let d = width, dh = headWidth, s2 = steps * steps, ld = batch * 3 * d, ldc = batch * d
        guard gridChunkTrials > 0, GEMMEngine.useOneDNN(steps, steps, dh) else { return false }
        let scale = Float(1 / S(dh).squareRoot())
        let qkvF = UnsafeMutableRawPointer(qkv.ptr).assumingMemoryBound(to: Float.self)
        let droppedF = UnsafeMutableRawPointer(probsDropped.ptr).assumingMemoryBound(to: Float.self)
        let dContextF = UnsafeRawPointer(dContext).assumingMemoryBound(to: Float.self)
        let dsF = UnsafeMutableRawPointer(dScores.ptr).assumingMemoryBound(to: Float.self)
        let dqF = UnsafeMutableRawPointer(headGradients.ptr).assumingMemoryBound(to: Float.self)
        let block = GEMMGrid.Steps(outer: heads * s2, inner: s2), inQKV = GEMMGrid.Steps(outer: 3 * d, inner: dh)
        let inContext = GEMMGrid.Steps(outer: d, inner: dh)
        for first in stride(from: 0, to: batch, by: gridChunkTrials) {
            let n = min(gridChunkTrials, batch - first)
            let grid = { (a: GEMMGrid.Steps, b: GEMMGrid.Steps, c: GEMMGrid.Steps) in GEMMGrid(outer: n, inner: self.heads, a: a, b: b, c: c) }
            let q = qkvF + first * 3 * d, dctx = dContextF + first * d, pd = droppedF + first * heads * s2
            // dPd = dctx Vᵀ, while V is still there.
            var ok = GEMMGrid.gemm(grid(inContext, inQKV, block), transA: false, transB: true, m: steps, n: steps, k: dh,
                                   alpha: 1, a: dctx, lda: ldc, b: q + 2 * d, ldb: ld, beta: 0, c: dsF, ldc: steps)
            // dV = Pdᵀ dctx, over V.
            ok = ok && GEMMGrid.gemm(grid(block, inContext, inQKV), transA: true, transB: false, m: steps, n: dh, k: steps,
                                     alpha: 1, a: pd, lda: steps, b: dctx, ldb: ldc, beta: 0, c: q + 2 * d, ldc: ld)
            for j in 0..<(n * heads) {
                let blockIndex = first * heads + j
                softmaxBackward(dScores.ptr + j * s2, probs: probs.ptr + blockIndex * s2, mask: attnMask.kept + blockIndex * s2,
                                keep: attnMask.scale)
            }
            // dQ = scale · dS K, aside (steps, n, D); then dK = scale · dSᵀ Q over K.
            ok = ok && GEMMGrid.gemm(grid(block, inQKV, inContext), transA: false, transB: false, m: steps, n: dh, k: steps,
                                     alpha: scale, a: dsF, lda: steps, b: q + d, ldb: ld, beta: 0, c: dqF, ldc: n * d)
            ok = ok && GEMMGrid.gemm(grid(block, inQKV, inQKV), transA: true, transB: false, m: steps, n: dh, k: steps,
                                     alpha: scale, a: dsF, lda: steps, b: q, ldb: ld, beta: 0, c: q + d, ldc: ld)
            precondition(ok, "oneDNN could not run the attention's backward products (\(OneDNN.implementation(precision: .float32)))")
            for t in 0..<steps {
                for b in 0..<n { (q + t * ld + b * 3 * d).update(from: dqF + (t * n + b) * d, count: d) }
            }
        }
        return true
    }
}
