import Kernels

/// Initial posterior q(z_0, v_0 | h_0): Linear(H→H) heads for μ and log σ², log-variances
/// clamped to [ln 1e-4, 5], and the reparameterisation z_0 = μ + σ ε (μ alone when not sampling).
/// Also the first two KL terms, KL(N(μ, σ²) ‖ N(0, 1)) = ½ Σ (σ² + μ² - 1 - log σ²).
///
/// One `PosteriorHead` per latent: z always, v with second-order dynamics.
public final class PosteriorHead<S: Scalar> {
    public static var logVarMin: S { S.log(1e-4) }
    public static var logVarMax: S { 5 }

    let hidden: Int
    let meanWeight: ParameterSlot, meanBias: ParameterSlot, logVarWeight: ParameterSlot, logVarBias: ParameterSlot
    let purpose: NoisePurpose
    public let mean: Buffer<S>          // (B, H)
    let logVarRaw: Buffer<S>            // (B, H) before the clamp
    public let logVar: Buffer<S>        // (B, H)
    let epsilon: Buffer<S>              // (B, H); zero when not sampling
    let dMean: Buffer<S>, dLogVar: Buffer<S>   // (B, H) scratch

    /// `latent` is "z" or "v": the heads are linear_<latent>_means and linear_<latent>_logvar.
    public init(latent: String, hidden: Int, maxBatch: Int, layout: ParameterLayout) {
        self.hidden = hidden
        meanWeight = layout.slot("linear_\(latent)_means.weight")
        meanBias = layout.slot("linear_\(latent)_means.bias")
        logVarWeight = layout.slot("linear_\(latent)_logvar.weight")
        logVarBias = layout.slot("linear_\(latent)_logvar.bias")
        purpose = latent == "z" ? .posteriorZ : .posteriorV
        mean = Buffer(count: maxBatch * hidden)
        logVarRaw = Buffer(count: maxBatch * hidden)
        logVar = Buffer(count: maxBatch * hidden)
        epsilon = Buffer(count: maxBatch * hidden)
        dMean = Buffer(count: maxBatch * hidden)
        dLogVar = Buffer(count: maxBatch * hidden)
    }

    /// Overwrites `sample` (B, H) with z_0 from `h0` (B, H). Returns the KL summed over the batch.
    public func forward(h0: UnsafePointer<S>, sample: UnsafeMutablePointer<S>, batch: Int,
                        params: ParameterSet<S>, noise: NoiseContext) -> S {
        let h = hidden, count = batch * h
        Linear.forward(y: mean.ptr, x: h0, weight: params.value(meanWeight),
                       bias: params.value(meanBias), rows: batch, inDim: h, outDim: h)
        Linear.forward(y: logVarRaw.ptr, x: h0, weight: params.value(logVarWeight),
                       bias: params.value(logVarBias), rows: batch, inDim: h, outDim: h)
        if noise.sampling {
            noise.fill(purpose, normal: true, into: epsilon.ptr, rows: 1, width: h)
        } else {
            epsilon.ptr.update(repeating: 0, count: count)
        }
        var kl: S = 0
        for i in 0..<count {
            let lv = min(max(logVarRaw[i], Self.logVarMin), Self.logVarMax)
            logVar[i] = lv
            sample[i] = mean[i] + S.exp(lv / 2) * epsilon[i]
            kl += (S.exp(lv) + mean[i] * mean[i] - 1 - lv) / 2
        }
        return kl
    }

    /// Accumulates into the head gradients and into `dh0` (B, H), from `dSample` (B, H) and
    /// the weight `klScale` of the summed KL in the loss.
    public func backward(dSample: UnsafePointer<S>, klScale: S, h0: UnsafePointer<S>, dh0: UnsafeMutablePointer<S>,
                         batch: Int, params: ParameterSet<S>) {
        let h = hidden, count = batch * h
        for i in 0..<count {
            let lv = logVar[i], sigma = S.exp(lv / 2)
            dMean[i] = dSample[i] + klScale * mean[i]
            let dlv = dSample[i] * epsilon[i] * sigma / 2 + klScale * (S.exp(lv) - 1) / 2
            // torch.clamp passes the gradient where min ≤ x ≤ max.
            let raw = logVarRaw[i]
            dLogVar[i] = (raw >= Self.logVarMin && raw <= Self.logVarMax) ? dlv : 0
        }
        Linear.backward(dx: dh0, dWeight: params.grad(meanWeight), dBias: params.grad(meanBias),
                        dy: dMean.ptr, x: h0, weight: params.value(meanWeight), rows: batch, inDim: h, outDim: h)
        Linear.backward(dx: dh0, dWeight: params.grad(logVarWeight), dBias: params.grad(logVarBias),
                        dy: dLogVar.ptr, x: h0, weight: params.value(logVarWeight), rows: batch, inDim: h, outDim: h)
    }
}
