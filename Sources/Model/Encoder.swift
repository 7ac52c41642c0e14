import Kernels

/// GRUCell encoder over time-major input, PyTorch gate order (r, z, n):
///   r = σ(W_ir x + b_ir + W_hr h + b_hr),  z = σ(W_iz x + b_iz + W_hz h + b_hz),
///   n = tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn)),  h' = (1 - z) ⊙ n + z ⊙ h,
/// with dropout on every hidden state: h_t = drop(GRU(x'_{s(t)}, h_{t-1})), h_{-1} = 0.
/// s(t) = min(t, T-1) (`current`) or min(t-1, T-1) with s(0) = 0 (`lagged`).
///
/// `reversed` (the second GRU of `encoder: bidirectional`, parameters `encoder_reverse.*`) runs
/// from the last step back to the first, h_t = drop(GRU(x'_{r(t)}, h_{t+1})), h_{steps} = 0, and
/// reads the bin after t, r(t) = t+1 (`lagged`), or t itself (`current`); past the window it
/// has no input (x = 0, only b_ih). So with `lagged` neither direction has seen x_t at a step
/// t ≥ 1 (the forward GRU's first step reads x_0, as in the released code).
///
/// Dimensions: T observed bins, steps = T + F, B batch, Nin inputs, H hidden.
public final class GRUEncoder<S: Scalar> {
    public let hidden: Int, inputs: Int, bins: Int, steps: Int, maxBatch: Int
    let dropout: Double
    let encoderInput: ModelConfig.EncoderInput
    /// Runs from the last step to the first (the reverse GRU of a bidirectional encoder).
    public let reversed: Bool
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
    /// The reverse GRU's input gates where it has no input (b_ih per row), and their gradient  // (B, 3H)
    let noInputGates: Buffer<S>, dNoInputGates: Buffer<S>
    let weightIH: ParameterSlot, weightHH: ParameterSlot, biasIH: ParameterSlot, biasHH: ParameterSlot

    /// The parameter prefix of the forward GRU (the spec's) and of the reverse one.
    public static func prefix(reversed: Bool) -> String { reversed ? "encoder_reverse" : "encoder" }

    /// `scratch`: memory free from the start of this encoder's forward to the end of the
    /// transformer's, and from the start of its backward to its end (LangevinFlow lends the
    /// decoder's); the input gates (forward) and the gates' gradients (backward) live there when it
    /// is large enough, else in buffers of their own.
    public init(config: ModelConfig, dims: DataDims, maxBatch: Int, layout: ParameterLayout, reversed: Bool = false,
                scratch: Buffer<S>? = nil) {
        let p = Self.prefix(reversed: reversed)
        weightIH = layout.slot("\(p).weight_ih")
        weightHH = layout.slot("\(p).weight_hh")
        biasIH = layout.slot("\(p).bias_ih")
        biasHH = layout.slot("\(p).bias_hh")
        self.reversed = reversed
        hidden = config.hidden
        inputs = dims.heldIn
        bins = dims.bins
        steps = dims.steps
        self.maxBatch = maxBatch
        dropout = config.dropout
        encoderInput = config.encoderInput
        precision = config.precision
        let h = hidden, inputCount = bins * maxBatch * 3 * h, stepCount = steps * maxBatch * 3 * h
        if let scratch, scratch.count >= inputCount + stepCount {
            // The forward's input gates and the backward's input-gate gradients are never live at once.
            inputGates = Buffer(viewing: scratch, count: inputCount)
            dInputGates = Buffer(viewing: scratch, count: inputCount)
            dHiddenGates = Buffer(viewing: scratch, offset: inputCount, count: stepCount)
        } else {
            inputGates = Buffer(count: inputCount)
            dInputGates = Buffer(count: inputCount)
            dHiddenGates = Buffer(count: stepCount)
        }
        states = Buffer(count: steps * maxBatch * h)
        resetGate = Buffer(count: steps * maxBatch * h)
        updateGate = Buffer(count: steps * maxBatch * h)
        candidate = Buffer(count: steps * maxBatch * h)
        hiddenCandidate = Buffer(count: steps * maxBatch * h)
        dropMask = DropoutMask(count: steps * maxBatch * h)
        hiddenGates = Buffer(count: maxBatch * 3 * h)
        noInputGates = Buffer(count: reversed ? maxBatch * 3 * h : 0)
        dNoInputGates = Buffer(count: reversed ? maxBatch * 3 * h : 0)
    }

    /// The observed bin whose input step t reads; nil: no input (the reverse GRU past the window).
    @inline(__always)
    func source(_ t: Int) -> Int? {
        if reversed {
            let s = encoderInput == .lagged ? t + 1 : t
            return s < bins ? s : nil
        }
        switch encoderInput {
        case .current: return min(t, bins - 1)
        case .lagged: return min(max(t - 1, 0), bins - 1)
        }
    }

    /// The steps in the order the recurrence runs, and the step each one continues from.
    @inline(__always)
    func order() -> StrideThrough<Int> {
        reversed ? stride(from: steps - 1, through: 0, by: -1) : stride(from: 0, through: steps - 1, by: 1)
    }
    /// The steps in the order the backward runs (the recurrence's, reversed).
    @inline(__always)
    func backwardOrder() -> StrideThrough<Int> {
        reversed ? stride(from: 0, through: steps - 1, by: 1) : stride(from: steps - 1, through: 0, by: -1)
    }
    @inline(__always)
    func previous(_ t: Int) -> Int? {
        reversed ? (t + 1 < steps ? t + 1 : nil) : (t > 0 ? t - 1 : nil)
    }

    /// Overwrites `states` (steps, B, H) from the input `inputScale`·`x` (T, B, Nin).
    public func forward(x: UnsafePointer<S>, inputScale: S = 1, batch: Int, params: ParameterSet<S>, noise: NoiseContext) {
        let h = hidden, h3 = 3 * h
        let wih = params.value(weightIH), whh = params.value(weightHH)
        let bih = params.value(biasIH), bhh = params.value(biasHH)
        // All input projections in one GEMM.
        Linear.forward(y: inputGates.ptr, x: x, weight: wih, bias: bih, rows: bins * batch, inDim: inputs, outDim: h3,
                       precision: precision, inputScale: inputScale)
        noise.dropoutMask(reversed ? .encoderReverseDropout : .encoderDropout, rate: dropout, into: dropMask,
                          rows: steps, width: h)
        if reversed {
            for b in 0..<batch { (noInputGates.ptr + b * h3).update(from: bih, count: h3) }
        }

        for t in order() {
            let gi = source(t).map { inputGates.ptr + $0 * batch * h3 } ?? noInputGates.ptr
            let gh = hiddenGates.ptr
            let hPrev: UnsafeMutablePointer<S>? = previous(t).map { states.ptr + $0 * batch * h }
            if let hPrev {
                Linear.forward(y: gh, x: hPrev, weight: whh, bias: bhh, rows: batch, inDim: h, outDim: h3)
            } else {
                for b in 0..<batch { (gh + b * h3).update(from: bhh, count: h3) }
            }
            let o = t * batch * h
            let r = resetGate.ptr + o, z = updateGate.ptr + o, n = candidate.ptr + o
            let hn = hiddenCandidate.ptr + o, out = states.ptr + o, mask = dropMask.kept + o, keep = dropMask.scale
            // The gates of one trial in three passes over its row, the exponentials of each in
            // one call (Elementwise.exp): σ(a) = 1/(1 + e^{-a}), tanh(a) = 1 - 2/(e^{2a} + 1), as
            // Elementwise.sigmoid and .tanh. r and z hold -a, then e^{-a}, then the gate; n holds
            // 2a, then e^{2a}, then the candidate.
            Parallel.forEach(batch) { b in
                let gib = gi + b * h3, ghb = gh + b * h3, row = b * h
                for j in 0..<h {
                    r[row + j] = -(gib[j] + ghb[j])
                    z[row + j] = -(gib[h + j] + ghb[h + j])
                }
                Elementwise.exp(r + row, into: r + row, count: h)
                Elementwise.exp(z + row, into: z + row, count: h)
                for j in 0..<h {
                    let rj = 1 / (1 + r[row + j])
                    r[row + j] = rj
                    hn[row + j] = ghb[2 * h + j]
                    n[row + j] = 2 * (gib[2 * h + j] + rj * ghb[2 * h + j])
                }
                Elementwise.exp(n + row, into: n + row, count: h)
                for j in 0..<h {
                    let k = row + j
                    let zj = 1 / (1 + z[k]), nj = 1 - 2 / (n[k] + 1)
                    let prev: S = hPrev.map { $0[k] } ?? 0
                    z[k] = zj; n[k] = nj
                    out[k] = mask[k] != 0 ? ((1 - zj) * nj + zj * prev) * keep : 0
                }
            }
        }
    }

    /// Backward through time. `dStates` (steps, B, H) holds d loss / d h_t from everything
    /// downstream and is overwritten with scratch. Accumulates into the encoder.* gradients and,
    /// if non-nil, into `dx` (T, B, Nin).
    public func backward(dStates: UnsafeMutablePointer<S>, dx: UnsafeMutablePointer<S>?,
                         x: UnsafePointer<S>, inputScale: S = 1, batch: Int, params: ParameterSet<S>) {
        let h = hidden, h3 = 3 * h
        let whh = params.value(weightHH)
        dInputGates.ptr.update(repeating: 0, count: bins * batch * h3)
        if reversed { dNoInputGates.ptr.update(repeating: 0, count: batch * h3) }

        for t in backwardOrder() {
            let o = t * batch * h
            let r = resetGate.ptr + o, z = updateGate.ptr + o, n = candidate.ptr + o
            let hn = hiddenCandidate.ptr + o, mask = dropMask.kept + o, keep = dropMask.scale, dh = dStates + o
            let prevStep = previous(t)
            let hPrev: UnsafeMutablePointer<S>? = prevStep.map { states.ptr + $0 * batch * h }
            let dhPrev: UnsafeMutablePointer<S>? = prevStep.map { dStates + $0 * batch * h }
            let dgi = source(t).map { dInputGates.ptr + $0 * batch * h3 } ?? dNoInputGates.ptr
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
                    if let dhPrev { dhPrev[k] += dRaw * z[k] }
                }
            }
            if let dhPrev {
                // dh_prev (B, H) += dgh (B, 3H) · W_hh (3H, H)
                S.gemm(transA: false, transB: false, m: batch, n: h, k: h3, alpha: 1, a: dgh, lda: h3,
                       b: whh, ldb: h, beta: 1, c: dhPrev, ldc: h)
            }
        }
        // dW_hh += Σ_t dgh_tᵀ h_prev(t): one GEMM over the stacked steps (forward: steps 1… with
        // h_{t-1}; reversed: steps …T+F-2 with h_{t+1}); the first step's h_prev is 0. With bf16
        // it takes bf16 operands like the other weight gradients (the per-step products of the
        // recurrence stay float32: at 256 rows their conversions ate the gain, measured).
        if steps > 1 {
            let dgh = reversed ? dHiddenGates.ptr : dHiddenGates.ptr + batch * h3
            let hp = reversed ? states.ptr + batch * h : states.ptr
            S.gemm(transA: true, transB: false, m: h3, n: h, k: (steps - 1) * batch, alpha: 1,
                   a: dgh, lda: h3, b: hp, ldb: h,
                   beta: 1, c: params.grad(weightHH), ldc: h, precision: precision)
        }
        let dbhh = params.grad(biasHH)
        for row in 0..<(steps * batch) {
            let g = dHiddenGates.ptr + row * h3
            for j in 0..<h3 { dbhh[j] += g[j] }
        }
        Linear.backward(dx: dx, dWeight: params.grad(weightIH), dBias: params.grad(biasIH),
                        dy: dInputGates.ptr, x: x, weight: params.value(weightIH),
                        rows: bins * batch, inDim: inputs, outDim: h3, precision: precision, inputScale: inputScale)
        if reversed {
            // The steps without input: their gates were b_ih alone.
            let dbih = params.grad(biasIH)
            for b in 0..<batch {
                let g = dNoInputGates.ptr + b * h3
                for j in 0..<h3 { dbih[j] += g[j] }
            }
        }
    }
}
