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
        let n = S(width)
        Parallel.ranges(rows, minimum: 32) { range in
            for r in range {
                let xr = x + r * width, hr = xHat + r * width, yr = y + r * width
                var mean: S = 0
                for i in 0..<width { mean += xr[i] }
                mean /= n
                var variance: S = 0
                for i in 0..<width { variance += (xr[i] - mean) * (xr[i] - mean) }
                variance /= n
                let inv = 1 / (variance + S(eps)).squareRoot()
                inverseStd[r] = inv
                for i in 0..<width {
                    hr[i] = (xr[i] - mean) * inv
                    yr[i] = hr[i] * weight[i] + bias[i]
                }
            }
        }
    }

    /// dx = (1/σ)(dx̂ - mean(dx̂) - x̂ · mean(dx̂ ⊙ x̂)), dx̂ = dy ⊙ γ. Accumulates into `dx`,
    /// `dWeight` and `dBias`.
    @inlinable
    public static func backward<S: Scalar>(
        dx: UnsafeMutablePointer<S>, dWeight: UnsafeMutablePointer<S>, dBias: UnsafeMutablePointer<S>,
        dy: UnsafePointer<S>, xHat: UnsafePointer<S>, inverseStd: UnsafePointer<S>, weight: UnsafePointer<S>,
        rows: Int, width: Int
    ) {
        let n = S(width)
        Parallel.ranges(rows, minimum: 32) { range in
            for r in range {
                let dyr = dy + r * width, hr = xHat + r * width, dxr = dx + r * width
                var meanD: S = 0, meanDH: S = 0
                for i in 0..<width {
                    let d = dyr[i] * weight[i]
                    meanD += d
                    meanDH += d * hr[i]
                }
                meanD /= n
                meanDH /= n
                let inv = inverseStd[r]
                for i in 0..<width {
                    dxr[i] += inv * (dyr[i] * weight[i] - meanD - hr[i] * meanDH)
                }
            }
        }
        // The parameter gradients sum over rows: serial, in row order, whatever the threads.
        for r in 0..<rows {
            let dyr = dy + r * width, hr = xHat + r * width
            for i in 0..<width {
                dWeight[i] += dyr[i] * hr[i]
                dBias[i] += dyr[i]
            }
        }
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

    let qkv: Buffer<S>              // (steps, B, 3D)
    let probs: Buffer<S>            // softmax P                (B, heads, steps, steps)
    let probsDropped: Buffer<S>     // P ⊙ mask                 (B, heads, steps, steps)
    let attnMask: Buffer<S>         // attention dropout mask   (B, heads, steps, steps)
    let context: Buffer<S>          // heads concatenated       (steps, B, D)
    let attnOut: Buffer<S>          // out_proj output          (steps, B, D)
    let attnOutMask: Buffer<S>      // (steps, B, D)
    let x1: Buffer<S>, x1Hat: Buffer<S>, x1InvStd: Buffer<S>    // (steps, B, D), (steps·B)
    let ffHidden: Buffer<S>         // ReLU(W1 x1 + b1)         (steps, B, Fff)
    let ffMask: Buffer<S>           // (steps, B, Fff)
    let ffHiddenDropped: Buffer<S>  // (steps, B, Fff)
    let ffOut: Buffer<S>            // (steps, B, D)
    let ffOutMask: Buffer<S>        // (steps, B, D)
    let x2Hat: Buffer<S>, x2InvStd: Buffer<S>
    let residual: Buffer<S>         // pre-norm sums            (steps, B, D)
    // Backward scratch.
    let dResidual: Buffer<S>, dx1: Buffer<S>, dContext: Buffer<S>, dQKV: Buffer<S>   // (steps, B, ·)
    let dFF: Buffer<S>              // (steps, B, Fff)
    let dScores: Buffer<S>          // (steps, steps)
    let inProjWeight, inProjBias, outProjWeight, outProjBias: ParameterSlot
    let linear1Weight, linear1Bias, linear2Weight, linear2Bias: ParameterSlot
    let norm1Weight, norm1Bias, norm2Weight, norm2Bias: ParameterSlot

    public init(config: Config, steps: Int, maxBatch: Int, layout: ParameterLayout) {
        inProjWeight = layout.slot("decoder.self_attn.in_proj_weight")
        inProjBias = layout.slot("decoder.self_attn.in_proj_bias")
        outProjWeight = layout.slot("decoder.self_attn.out_proj.weight")
        outProjBias = layout.slot("decoder.self_attn.out_proj.bias")
        linear1Weight = layout.slot("decoder.linear1.weight")
        linear1Bias = layout.slot("decoder.linear1.bias")
        linear2Weight = layout.slot("decoder.linear2.weight")
        linear2Bias = layout.slot("decoder.linear2.bias")
        norm1Weight = layout.slot("decoder.norm1.weight")
        norm1Bias = layout.slot("decoder.norm1.bias")
        norm2Weight = layout.slot("decoder.norm2.weight")
        norm2Bias = layout.slot("decoder.norm2.bias")
        self.steps = steps
        width = config.decoderWidth
        heads = config.heads
        headWidth = width / heads
        feedForward = config.feedForward
        rate = config.decoderDropout
        let rowsD = steps * maxBatch * width, rowsF = steps * maxBatch * feedForward
        let attention = maxBatch * heads * steps * steps
        qkv = Buffer(count: 3 * rowsD)
        probs = Buffer(count: attention)
        probsDropped = Buffer(count: attention)
        attnMask = Buffer(count: attention)
        context = Buffer(count: rowsD)
        attnOut = Buffer(count: rowsD)
        attnOutMask = Buffer(count: rowsD)
        x1 = Buffer(count: rowsD)
        x1Hat = Buffer(count: rowsD)
        x1InvStd = Buffer(count: steps * maxBatch)
        ffHidden = Buffer(count: rowsF)
        ffMask = Buffer(count: rowsF)
        ffHiddenDropped = Buffer(count: rowsF)
        ffOut = Buffer(count: rowsD)
        ffOutMask = Buffer(count: rowsD)
        x2Hat = Buffer(count: rowsD)
        x2InvStd = Buffer(count: steps * maxBatch)
        residual = Buffer(count: rowsD)
        dResidual = Buffer(count: rowsD)
        dx1 = Buffer(count: rowsD)
        dContext = Buffer(count: rowsD)
        dQKV = Buffer(count: 3 * rowsD)
        dFF = Buffer(count: rowsF)
        dScores = Buffer(count: steps * steps)
    }

    /// Overwrites `out` (steps, B, D) from `x` (steps, B, D).
    public func forward(x: UnsafePointer<S>, out: UnsafeMutablePointer<S>, batch: Int,
                        params: ParameterSet<S>, noise: NoiseContext) {
        let rows = steps * batch, d = width, f = feedForward
        noise.dropoutMask(.attentionOutputDropout, rate: rate, into: attnOutMask.ptr, rows: steps, width: d)
        noise.dropoutMask(.feedForwardDropout, rate: rate, into: ffMask.ptr, rows: steps, width: f)
        noise.dropoutMask(.feedForwardOutputDropout, rate: rate, into: ffOutMask.ptr, rows: steps, width: d)
        // Attention-weight masks are (B, heads, steps, steps): one row block per trial.
        let perTrial = heads * steps * steps
        noise.dropoutMask(.attentionDropout, rate: rate, into: attnMask.ptr, rows: 1, width: perTrial)

        // Self-attention.
        Linear.forward(y: qkv.ptr, x: x, weight: params.value(inProjWeight), bias: params.value(inProjBias),
                       rows: rows, inDim: d, outDim: 3 * d)
        attentionForward(batch: batch)
        Linear.forward(y: attnOut.ptr, x: context.ptr, weight: params.value(outProjWeight), bias: params.value(outProjBias),
                       rows: rows, inDim: d, outDim: d)
        let res = residual.ptr, ao = attnOut.ptr, aom = attnOutMask.ptr
        Parallel.ranges(rows * d) { range in for i in range { res[i] = x[i] + ao[i] * aom[i] } }
        LayerNorm.forward(y: x1.ptr, xHat: x1Hat.ptr, inverseStd: x1InvStd.ptr, x: residual.ptr,
                          weight: params.value(norm1Weight), bias: params.value(norm1Bias), rows: rows, width: d)
        // Feed-forward.
        Linear.forward(y: ffHidden.ptr, x: x1.ptr, weight: params.value(linear1Weight), bias: params.value(linear1Bias),
                       rows: rows, inDim: d, outDim: f)
        let ffh = ffHidden.ptr, ffd = ffHiddenDropped.ptr, ffm = ffMask.ptr
        Parallel.ranges(rows * f) { range in
            for i in range {
                ffh[i] = max(ffh[i], 0)
                ffd[i] = ffh[i] * ffm[i]
            }
        }
        Linear.forward(y: ffOut.ptr, x: ffHiddenDropped.ptr, weight: params.value(linear2Weight), bias: params.value(linear2Bias),
                       rows: rows, inDim: f, outDim: d)
        let x1p = x1.ptr, fo = ffOut.ptr, fom = ffOutMask.ptr
        Parallel.ranges(rows * d) { range in for i in range { res[i] = x1p[i] + fo[i] * fom[i] } }
        LayerNorm.forward(y: out, xHat: x2Hat.ptr, inverseStd: x2InvStd.ptr, x: residual.ptr,
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
                let pr = probs.ptr + block, pd = probsDropped.ptr + block, mask = attnMask.ptr + block
                // scores (steps, steps) = Q Kᵀ · scale
                S.gemm(transA: false, transB: true, m: steps, n: steps, k: dh, alpha: scale,
                       a: q, lda: ld, b: k, ldb: ld, beta: 0, c: pr, ldc: steps)
                for i in 0..<steps {
                    let row = pr + i * steps
                    var top = row[0]
                    for j in 1..<steps { top = max(top, row[j]) }
                    var sum: S = 0
                    for j in 0..<steps { row[j] = S.exp(row[j] - top); sum += row[j] }
                    for j in 0..<steps {
                        row[j] /= sum
                        pd[i * steps + j] = row[j] * mask[i * steps + j]
                    }
                }
                // context (steps, dh) = Pd V
                S.gemm(transA: false, transB: false, m: steps, n: dh, k: steps, alpha: 1,
                       a: pd, lda: steps, b: v, ldb: ld, beta: 0, c: context.ptr + b * d + h * dh, ldc: ldc)
            }
        }
    }

    /// Accumulates into `dx` (steps, B, D) and the decoder.* gradients from `dOut` (steps, B, D),
    /// which is left unchanged. `x` is the input of the matching `forward`, which must be the last.
    public func backward(dOut: UnsafePointer<S>, dx: UnsafeMutablePointer<S>, x: UnsafePointer<S>,
                         batch: Int, params: ParameterSet<S>) {
        let rows = steps * batch, d = width, f = feedForward

        // LayerNorm2: dResidual = d(x1 + drop(ffOut)).
        dResidual.ptr.update(repeating: 0, count: rows * d)
        LayerNorm.backward(dx: dResidual.ptr, dWeight: params.grad(norm2Weight), dBias: params.grad(norm2Bias), dy: dOut,
                           xHat: x2Hat.ptr, inverseStd: x2InvStd.ptr, weight: params.value(norm2Weight), rows: rows, width: d)
        dx1.ptr.update(from: dResidual.ptr, count: rows * d)
        let dres = dResidual.ptr, fom = ffOutMask.ptr, aom = attnOutMask.ptr
        Parallel.ranges(rows * d) { range in for i in range { dres[i] *= fom[i] } }   // d ffOut
        dFF.ptr.update(repeating: 0, count: rows * f)
        Linear.backward(dx: dFF.ptr, dWeight: params.grad(linear2Weight), dBias: params.grad(linear2Bias), dy: dResidual.ptr,
                        x: ffHiddenDropped.ptr, weight: params.value(linear2Weight), rows: rows, inDim: f, outDim: d)
        let dff = dFF.ptr, ffh = ffHidden.ptr, ffm = ffMask.ptr
        Parallel.ranges(rows * f) { range in for i in range { dff[i] = ffh[i] > 0 ? dff[i] * ffm[i] : 0 } }
        Linear.backward(dx: dx1.ptr, dWeight: params.grad(linear1Weight), dBias: params.grad(linear1Bias), dy: dFF.ptr,
                        x: x1.ptr, weight: params.value(linear1Weight), rows: rows, inDim: d, outDim: f)
        // LayerNorm1: dResidual = d(x + drop(attnOut)).
        dResidual.ptr.update(repeating: 0, count: rows * d)
        LayerNorm.backward(dx: dResidual.ptr, dWeight: params.grad(norm1Weight), dBias: params.grad(norm1Bias), dy: dx1.ptr,
                           xHat: x1Hat.ptr, inverseStd: x1InvStd.ptr, weight: params.value(norm1Weight), rows: rows, width: d)
        Parallel.ranges(rows * d) { range in
            for i in range {
                dx[i] += dres[i]
                dres[i] *= aom[i]                                                // d attnOut
            }
        }
        dContext.ptr.update(repeating: 0, count: rows * d)
        Linear.backward(dx: dContext.ptr, dWeight: params.grad(outProjWeight), dBias: params.grad(outProjBias),
                        dy: dResidual.ptr, x: context.ptr, weight: params.value(outProjWeight), rows: rows, inDim: d, outDim: d)
        attentionBackward(batch: batch)
        Linear.backward(dx: dx, dWeight: params.grad(inProjWeight), dBias: nil,
                        dy: dQKV.ptr, x: x, weight: params.value(inProjWeight), rows: rows, inDim: d, outDim: 3 * d)
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

    /// Overwrites dQKV from dContext through the attention of every (trial, head).
    func attentionBackward(batch: Int) {
        let d = width, dh = headWidth, ld = batch * 3 * d, ldc = batch * d
        let scale = 1 / S(dh).squareRoot()
        dQKV.ptr.update(repeating: 0, count: steps * batch * 3 * d)
        let ds = dScores.ptr
        for b in 0..<batch {
            for h in 0..<heads {
                let q = qkv.ptr + b * 3 * d + h * dh, k = q + d, v = q + 2 * d
                let dq = dQKV.ptr + b * 3 * d + h * dh, dk = dq + d, dv = dq + 2 * d
                let dctx = dContext.ptr + b * d + h * dh
                let block = (b * heads + h) * steps * steps
                let pr = probs.ptr + block, pd = probsDropped.ptr + block, mask = attnMask.ptr + block
                // dV (steps, dh) += Pdᵀ dctx
                S.gemm(transA: true, transB: false, m: steps, n: dh, k: steps, alpha: 1,
                       a: pd, lda: steps, b: dctx, ldb: ldc, beta: 1, c: dv, ldc: ld)
                // dPd (steps, steps) = dctx Vᵀ
                S.gemm(transA: false, transB: true, m: steps, n: steps, k: dh, alpha: 1,
                       a: dctx, lda: ldc, b: v, ldb: ld, beta: 0, c: ds, ldc: steps)
                // Through the dropout mask and the softmax: dS = P ⊙ (dP - Σ_j dP ⊙ P).
                for i in 0..<steps {
                    var dot: S = 0
                    for j in 0..<steps {
                        ds[i * steps + j] *= mask[i * steps + j]
                        dot += ds[i * steps + j] * pr[i * steps + j]
                    }
                    for j in 0..<steps { ds[i * steps + j] = pr[i * steps + j] * (ds[i * steps + j] - dot) }
                }
                // dQ += scale · dS K;  dK += scale · dSᵀ Q
                S.gemm(transA: false, transB: false, m: steps, n: dh, k: steps, alpha: scale,
                       a: ds, lda: steps, b: k, ldb: ld, beta: 1, c: dq, ldc: ld)
                S.gemm(transA: true, transB: false, m: steps, n: dh, k: steps, alpha: scale,
                       a: ds, lda: steps, b: q, ldb: ld, beta: 1, c: dk, ldc: ld)
            }
        }
    }
}
