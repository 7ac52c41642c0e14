import Kernels

/// Initial posterior q(z_0, v_0 | h_0): Linear(H→H) heads for μ and log σ², log-variances
/// clamped to [ln 1e-4, 5], and the reparameterisation z_0 = μ + σ ε (μ alone when not sampling).
/// Also the first two KL terms, KL(N(μ, σ²) ‖ N(0, 1)) = ½ Σ (σ² + μ² - 1 - log σ²).
///
/// One `PosteriorHead` per latent: z always, v with second-order dynamics, and with `posterior:
/// perStep` the innovation u_t of every step t ≥ 1 (`steps` rows per trial, read from h_1 … h_{T+F-1},
/// time-major like the encoder's states; its KL against N(0, 1) is the transition KL, since u is
/// the innovation in units of the Langevin noise).
public final class PosteriorHead<S: Scalar> {
    public static var logVarMin: S { S.log(1e-4) }
    public static var logVarMax: S { 5 }

    let hidden: Int
    /// Rows per trial: 1 for z_0 and v_0, the Langevin steps for the innovation.
    let steps: Int
    let precision: Precision
    let meanWeight: ParameterSlot, meanBias: ParameterSlot, logVarWeight: ParameterSlot, logVarBias: ParameterSlot
    let purpose: NoisePurpose
    public let mean: Buffer<S>          // (B, H)
    let logVarRaw: Buffer<S>            // (B, H) before the clamp
    public let logVar: Buffer<S>        // (B, H)
    let epsilon: Buffer<S>              // (B, H); zero when not sampling
    /// σ = e^{log σ² / 2} and σ² = e^{log σ²}, kept for the backward     // (B, H) each
    let sigma: Buffer<S>, variance: Buffer<S>
    let dMean: Buffer<S>, dLogVar: Buffer<S>   // (B, H) scratch

    /// `latent` is "z", "v" or "u": the heads are linear_<latent>_means and linear_<latent>_logvar.
    /// Buffers are (steps, B, H); `precision` is that of the two products (the initial heads keep
    /// float32, the spec's).
    public init(latent: String, hidden: Int, maxBatch: Int, layout: ParameterLayout, steps: Int = 1,
                precision: Precision = .float32) {
        self.hidden = hidden
        self.steps = steps
        self.precision = precision
        let maxBatch = maxBatch * steps
        meanWeight = layout.slot("linear_\(latent)_means.weight")
        meanBias = layout.slot("linear_\(latent)_means.bias")
        logVarWeight = layout.slot("linear_\(latent)_logvar.weight")
        logVarBias = layout.slot("linear_\(latent)_logvar.bias")
        purpose = latent == "z" ? .posteriorZ : latent == "v" ? .posteriorV : .innovation
        mean = Buffer(count: maxBatch * hidden)
        logVarRaw = Buffer(count: maxBatch * hidden)
        logVar = Buffer(count: maxBatch * hidden)
        epsilon = Buffer(count: maxBatch * hidden)
        sigma = Buffer(count: maxBatch * hidden)
        variance = Buffer(count: maxBatch * hidden)
        dMean = Buffer(count: maxBatch * hidden)
        dLogVar = Buffer(count: maxBatch * hidden)
    }

    /// Overwrites `sample` (steps, B, H) with μ + σ ε from `h0` (steps, B, H). Returns the KL
    /// summed over the batch and the steps.
    public func forward(h0: UnsafePointer<S>, sample: UnsafeMutablePointer<S>, batch: Int,
                        params: ParameterSet<S>, noise: NoiseContext) -> S {
        let h = hidden, rows = batch * steps, count = rows * h
        Linear.forward(y: mean.ptr, x: h0, weight: params.value(meanWeight),
                       bias: params.value(meanBias), rows: rows, inDim: h, outDim: h, precision: precision)
        Linear.forward(y: logVarRaw.ptr, x: h0, weight: params.value(logVarWeight),
                       bias: params.value(logVarBias), rows: rows, inDim: h, outDim: h, precision: precision)
        if noise.sampling {
            noise.fill(purpose, normal: true, into: epsilon.ptr, rows: steps, width: h)
        } else {
            epsilon.ptr.update(repeating: 0, count: count)
        }
        // The clamp, then both exponentials over the whole array (Elementwise.exp), then the
        // sample and the KL terms in one pass.
        let lvMin = Self.logVarMin, lvMax = Self.logVarMax
        let lvp = logVar.ptr, sg = sigma.ptr, vr = variance.ptr
        for i in 0..<count {
            let lv = min(max(logVarRaw[i], lvMin), lvMax)
            lvp[i] = lv
            sg[i] = lv / 2
        }
        Elementwise.exp(lvp, into: vr, count: count)
        Elementwise.exp(sg, into: sg, count: count)
        let mu = mean.ptr, eps = epsilon.ptr
        for i in 0..<count { sample[i] = mu[i] + sg[i] * eps[i] }
        return Elementwise.sum(count: count) { i in (vr[i] + mu[i] * mu[i] - 1 - lvp[i]) / 2 }
    }

    /// Accumulates into the head gradients and into `dh0` (steps, B, H), from `dSample`
    /// (steps, B, H) and the weight `klScale` of the summed KL in the loss.
    public func backward(dSample: UnsafePointer<S>, klScale: S, h0: UnsafePointer<S>, dh0: UnsafeMutablePointer<S>,
                         batch: Int, params: ParameterSet<S>) {
        let h = hidden, rows = batch * steps, count = rows * h
        let sg = sigma.ptr, vr = variance.ptr
        for i in 0..<count {
            dMean[i] = dSample[i] + klScale * mean[i]
            let dlv = dSample[i] * epsilon[i] * sg[i] / 2 + klScale * (vr[i] - 1) / 2
            // torch.clamp passes the gradient where min ≤ x ≤ max.
            let raw = logVarRaw[i]
            dLogVar[i] = (raw >= Self.logVarMin && raw <= Self.logVarMax) ? dlv : 0
        }
        Linear.backward(dx: dh0, dWeight: params.grad(meanWeight), dBias: params.grad(meanBias),
                        dy: dMean.ptr, x: h0, weight: params.value(meanWeight), rows: rows, inDim: h, outDim: h,
                        precision: precision)
        Linear.backward(dx: dh0, dWeight: params.grad(logVarWeight), dBias: params.grad(logVarBias),
                        dy: dLogVar.ptr, x: h0, weight: params.value(logVarWeight), rows: rows, inDim: h, outDim: h,
                        precision: precision)
    }
}
