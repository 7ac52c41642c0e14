import Kernels

/// GRUCell encoder over time-major input, PyTorch gate order (r, z, n):
///   r = σ(W_ir x + b_ir + W_hr h + b_hr),  z = σ(W_iz x + b_iz + W_hz h + b_hz),
///   n = tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn)),  h' = (1 - z) ⊙ n + z ⊙ h,
/// with dropout on every hidden state: h_t = drop(GRU(x'_{s(t)}, h_{t-1})), h_{-1} = 0.
/// s(t) = min(t, T-1) (`current`) or min(t-1, T-1) with s(0) = 0 (`lagged`).
///
/// Dimensions: T observed bins, steps = T + F, B batch, Nin inputs, H hidden.
public final class GRUEncoder<S: Scalar> {
    public let hidden: Int, inputs: Int, bins: Int, steps: Int, maxBatch: Int
    let dropout: Double
    let encoderInput: Config.EncoderInput
    /// Of the input projection and its weight gradient.
    let precision: Precision

    /// Input projections x'·W_ihᵀ + b_ih for the observed bins      // (T, B, 3H)
    let inputGates: Buffer<S>
    /// Hidden states after dropout, the encoder's output             // (steps, B, H)
    public let states: Buffer<S>
    let resetGate: Buffer<S>, updateGate: Buffer<S>, candidate: Buffer<S>   // (steps, B, H) each
    /// W_hn h + b_hn, needed by the reset-gate gradient               // (steps, B, H)
    let hiddenCandidate: Buffer<S>
    let dropMask: DropoutMask<S>                                        // (steps, B, H)
    let hiddenGates: Buffer<S>                                          // (B, 3H) scratch
    /// Gradients w.r.t. the gate pre-activations                      // (T, B, 3H), (steps, B, 3H)
    let dInputGates: Buffer<S>, dHiddenGates: Buffer<S>
    let weightIH: ParameterSlot, weightHH: ParameterSlot, biasIH: ParameterSlot, biasHH: ParameterSlot

    public init(config: Config, dims: DataDims, maxBatch: Int, layout: ParameterLayout) {
        weightIH = layout.slot("encoder.weight_ih")
        weightHH = layout.slot("encoder.weight_hh")
        biasIH = layout.slot("encoder.bias_ih")
        biasHH = layout.slot("encoder.bias_hh")
        hidden = config.hidden
        inputs = dims.heldIn
        bins = dims.bins
        steps = dims.steps
        self.maxBatch = maxBatch
        dropout = config.dropout
        encoderInput = config.encoderInput
        precision = config.precision
        let h = hidden
        inputGates = Buffer(count: bins * maxBatch * 3 * h)
        states = Buffer(count: steps * maxBatch * h)
        resetGate = Buffer(count: steps * maxBatch * h)
        updateGate = Buffer(count: steps * maxBatch * h)
        candidate = Buffer(count: steps * maxBatch * h)
        hiddenCandidate = Buffer(count: steps * maxBatch * h)
        dropMask = DropoutMask(count: steps * maxBatch * h)
        hiddenGates = Buffer(count: maxBatch * 3 * h)
        dInputGates = Buffer(count: bins * maxBatch * 3 * h)
        dHiddenGates = Buffer(count: steps * maxBatch * 3 * h)
    }

    /// The observed bin whose input step t reads.
    @inline(__always)
    func source(_ t: Int) -> Int {
        switch encoderInput {
        case .current: return min(t, bins - 1)
        case .lagged: return min(max(t - 1, 0), bins - 1)
        }
    }

    /// Overwrites `states` (steps, B, H) from the input `x` (T, B, Nin).
    public func forward(x: UnsafePointer<S>, batch: Int, params: ParameterSet<S>, noise: NoiseContext) {
        let h = hidden, h3 = 3 * h
        let wih = params.value(weightIH), whh = params.value(weightHH)
        let bih = params.value(biasIH), bhh = params.value(biasHH)
        // All input projections in one GEMM.
        Linear.forward(y: inputGates.ptr, x: x, weight: wih, bias: bih, rows: bins * batch, inDim: inputs, outDim: h3,
                       precision: precision)
        noise.dropoutMask(.encoderDropout, rate: dropout, into: dropMask, rows: steps, width: h)

        for t in 0..<steps {
            let gi = inputGates.ptr + source(t) * batch * h3
            let gh = hiddenGates.ptr
            let hPrev: UnsafeMutablePointer<S>? = t > 0 ? states.ptr + (t - 1) * batch * h : nil
            if let hPrev {
                Linear.forward(y: gh, x: hPrev, weight: whh, bias: bhh, rows: batch, inDim: h, outDim: h3)
            } else {
                for b in 0..<batch { (gh + b * h3).update(from: bhh, count: h3) }
            }
            let o = t * batch * h
            let r = resetGate.ptr + o, z = updateGate.ptr + o, n = candidate.ptr + o
            let hn = hiddenCandidate.ptr + o, out = states.ptr + o, mask = dropMask.kept + o, keep = dropMask.scale
            Parallel.forEach(batch) { b in
                let gib = gi + b * h3, ghb = gh + b * h3
                for j in 0..<h {
                    let k = b * h + j
                    let rj = Elementwise.sigmoid(gib[j] + ghb[j])
                    let zj = Elementwise.sigmoid(gib[h + j] + ghb[h + j])
                    let hnj = ghb[2 * h + j]
                    let nj = Elementwise.tanh(gib[2 * h + j] + rj * hnj)
                    let prev: S = hPrev.map { $0[k] } ?? 0
                    r[k] = rj; z[k] = zj; n[k] = nj; hn[k] = hnj
                    out[k] = mask[k] != 0 ? ((1 - zj) * nj + zj * prev) * keep : 0
                }
            }
        }
    }

    /// Backward through time. `dStates` (steps, B, H) holds d loss / d h_t from everything
    /// downstream and is overwritten with scratch. Accumulates into the encoder.* gradients and,
    /// if non-nil, into `dx` (T, B, Nin).
    public func backward(dStates: UnsafeMutablePointer<S>, dx: UnsafeMutablePointer<S>?,
                         x: UnsafePointer<S>, batch: Int, params: ParameterSet<S>) {
        let h = hidden, h3 = 3 * h
        let whh = params.value(weightHH)
        dInputGates.ptr.update(repeating: 0, count: bins * batch * h3)

        for t in stride(from: steps - 1, through: 0, by: -1) {
            let o = t * batch * h
            let r = resetGate.ptr + o, z = updateGate.ptr + o, n = candidate.ptr + o
            let hn = hiddenCandidate.ptr + o, mask = dropMask.kept + o, keep = dropMask.scale, dh = dStates + o
            let hPrev: UnsafeMutablePointer<S>? = t > 0 ? states.ptr + (t - 1) * batch * h : nil
            let dgi = dInputGates.ptr + source(t) * batch * h3
            let dgh = dHiddenGates.ptr + t * batch * h3
            Parallel.forEach(batch) { b in
                for j in 0..<h {
                    let k = b * h + j
                    let dRaw = mask[k] != 0 ? dh[k] * keep : 0
                    let prev: S = hPrev.map { $0[k] } ?? 0
                    let dn = dRaw * (1 - z[k])
                    let dz = dRaw * (prev - n[k])
                    let dnPre = dn * (1 - n[k] * n[k])
                    let drPre = dnPre * hn[k] * r[k] * (1 - r[k])
                    let dzPre = dz * z[k] * (1 - z[k])
                    dgi[b * h3 + j] += drPre
                    dgi[b * h3 + h + j] += dzPre
                    dgi[b * h3 + 2 * h + j] += dnPre
                    dgh[b * h3 + j] = drPre
                    dgh[b * h3 + h + j] = dzPre
                    dgh[b * h3 + 2 * h + j] = dnPre * r[k]
                    // The direct path h' = ... + z ⊙ h into the previous state.
                    if t > 0 { dStates[o - batch * h + k] += dRaw * z[k] }
                }
            }
            if t > 0 {
                // dh_{t-1} (B, H) += dgh (B, 3H) · W_hh (3H, H)
                S.gemm(transA: false, transB: false, m: batch, n: h, k: h3, alpha: 1, a: dgh, lda: h3,
                       b: whh, ldb: h, beta: 1, c: dStates + o - batch * h, ldc: h)
            }
        }
        // dW_hh += Σ_{t≥1} dgh_tᵀ h_{t-1}: one GEMM over the stacked steps; h_{-1} = 0. With bf16
        // it takes bf16 operands like the other weight gradients (the per-step products of the
        // recurrence stay float32: at 256 rows their conversions ate the gain, measured).
        if steps > 1 {
            S.gemm(transA: true, transB: false, m: h3, n: h, k: (steps - 1) * batch, alpha: 1,
                   a: dHiddenGates.ptr + batch * h3, lda: h3, b: states.ptr, ldb: h,
                   beta: 1, c: params.grad(weightHH), ldc: h, precision: precision)
        }
        let dbhh = params.grad(biasHH)
        for row in 0..<(steps * batch) {
            let g = dHiddenGates.ptr + row * h3
            for j in 0..<h3 { dbhh[j] += g[j] }
        }
        Linear.backward(dx: dx, dWeight: params.grad(weightIH), dBias: params.grad(biasIH),
                        dy: dInputGates.ptr, x: x, weight: params.value(weightIH),
                        rows: bins * batch, inDim: inputs, outDim: h3, precision: precision)
    }
}
