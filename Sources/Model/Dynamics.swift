import Kernels

/// Langevin integration of the latents over steps t = 1 … steps-1, with f(z) = A z:
///
/// secondOrder (spec step 5):  z_t = z_{t-1} + Δt v_{t-1};  v' = v_{t-1} - Δt f(z_{t-1}) / m;
///                             μ_t = (1 - γ) v';  v_t = μ_t + √(2γτ) ε_t.
/// firstOrder (ablation):      μ_t = z_{t-1} - Δt f(z_{t-1});  z_t = μ_t + √(2τΔt) ε_t.
///
/// Transition KL per step and dimension: KL(N(μ_t, s²) ‖ N(0, σ²_prior)) =
/// ½ [(s² + μ_t²)/σ²_prior - 1 - ln(s²/σ²_prior)], s² the noise variance. With s² = 0
/// (τ = 0, or γ = 0 in second order) the transition is deterministic and has no KL term.
///
/// Buffers are time-major (steps, B, H).
public final class LangevinDynamics<S: Scalar> {
    let hidden: Int, steps: Int
    let secondOrder: Bool
    let dt: S, mass: S, damping: S
    /// Noise variance s² of one transition.
    let noiseVariance: S
    let priorVariance: S

    public let positions: Buffer<S>      // z_t (steps, B, H)
    public let velocities: Buffer<S>     // v_t (steps, B, H); unused in first order
    let means: Buffer<S>                 // μ_t (steps, B, H)
    let epsilon: Buffer<S>               // ε_t (steps, B, H)
    let force: Buffer<S>                 // (B, H) scratch
    /// Gradients. dPositions / dVelocities are filled by the caller before `backward`.
    public let dPositions: Buffer<S>, dVelocities: Buffer<S>   // (steps, B, H)
    let dForce: Buffer<S>                // (steps, B, H); row block 0 unused; shares `epsilon`
    public let dForceMatrix: Buffer<S>   // (H, H)

    public init(config: Config, steps: Int, maxBatch: Int) {
        hidden = config.hidden
        self.steps = steps
        secondOrder = config.dynamics == .secondOrder
        dt = S(config.dt)
        mass = S(config.mass)
        damping = S(config.damping)
        noiseVariance = secondOrder
            ? S(2 * config.damping * config.temperature)
            : S(2 * config.temperature * config.dt)
        priorVariance = S(config.velocityPriorVar)
        let n = steps * maxBatch * hidden
        positions = Buffer(count: n)
        velocities = Buffer(count: secondOrder ? n : 0)
        means = Buffer(count: n)
        epsilon = Buffer(count: n)
        force = Buffer(count: maxBatch * hidden)
        dPositions = Buffer(count: n)
        dVelocities = Buffer(count: secondOrder ? n : 0)
        dForce = epsilon            // the noise is spent once the forward pass is done
        dForceMatrix = Buffer(count: hidden * hidden)
    }

    var hasTransitionKL: Bool { noiseVariance > 0 }

    /// Runs steps 1 … steps-1 from z_0 = positions[0] (and v_0 = velocities[0]), which the
    /// caller has written. Returns the transition KL summed over the batch.
    public func forward(forceMatrix a: UnsafePointer<S>, batch: Int, noise: NoiseContext) -> S {
        let h = hidden, block = batch * h
        if noise.sampling && hasTransitionKL {
            noise.fill(.langevin, normal: true, into: epsilon.ptr, rows: steps, width: h)
        } else {
            epsilon.ptr.update(repeating: 0, count: steps * block)
        }
        let noiseScale = noiseVariance.squareRoot()
        var kl: S = 0
        for t in 1..<max(steps, 1) {
            let zPrev = positions.ptr + (t - 1) * block, z = positions.ptr + t * block
            let mu = means.ptr + t * block, eps = epsilon.ptr + t * block
            // f(z_{t-1}) = z_{t-1} A (A is symmetric)                     // (B, H)
            S.gemm(transA: false, transB: false, m: batch, n: h, k: h, alpha: 1, a: zPrev, lda: h,
                   b: a, ldb: h, beta: 0, c: force.ptr, ldc: h)
            let f = force.ptr
            if secondOrder {
                let vPrev = velocities.ptr + (t - 1) * block, v = velocities.ptr + t * block
                for i in 0..<block {
                    z[i] = zPrev[i] + dt * vPrev[i]
                    mu[i] = (1 - damping) * (vPrev[i] - dt * f[i] / mass)
                    v[i] = mu[i] + noiseScale * eps[i]
                }
            } else {
                for i in 0..<block {
                    mu[i] = zPrev[i] - dt * f[i]
                    z[i] = mu[i] + noiseScale * eps[i]
                }
            }
            if hasTransitionKL {
                let constant = noiseVariance / priorVariance - 1 - S.log(noiseVariance / priorVariance)
                for i in 0..<block { kl += (constant + mu[i] * mu[i] / priorVariance) / 2 }
            }
        }
        return kl
    }

    /// Backward through the integrator. Reads and overwrites `dPositions` / `dVelocities`
    /// (d loss / d z_t, v_t from the decoder); on return their step-0 blocks hold d loss / d z_0
    /// and d loss / d v_0. Overwrites `dForceMatrix` with d loss / dA. `klScale` is the weight
    /// of the summed transition KL in the loss.
    public func backward(forceMatrix a: UnsafePointer<S>, klScale: S, batch: Int) {
        let h = hidden, block = batch * h
        let klGrad: S = hasTransitionKL ? klScale / priorVariance : 0
        for t in stride(from: steps - 1, through: 1, by: -1) {
            let mu = means.ptr + t * block
            let dzPrev = dPositions.ptr + (t - 1) * block, dz = dPositions.ptr + t * block
            let df = dForce.ptr + t * block
            if secondOrder {
                let dvPrev = dVelocities.ptr + (t - 1) * block, dv = dVelocities.ptr + t * block
                for i in 0..<block {
                    let dMu = dv[i] + klGrad * mu[i]
                    let dvPrime = (1 - damping) * dMu
                    dvPrev[i] += dvPrime + dt * dz[i]
                    dzPrev[i] += dz[i]
                    df[i] = -dt / mass * dvPrime
                }
            } else {
                for i in 0..<block {
                    let dMu = dz[i] + klGrad * mu[i]
                    dzPrev[i] += dMu
                    df[i] = -dt * dMu
                }
            }
            // f = z A, so dz_{t-1} (B, H) += df (B, H) · Aᵀ (H, H)
            S.gemm(transA: false, transB: true, m: batch, n: h, k: h, alpha: 1, a: df, lda: h,
                   b: a, ldb: h, beta: 1, c: dzPrev, ldc: h)
        }
        // f = z A, so dA = Σ_t z_{t-1}ᵀ df_t: one GEMM over the stacked steps.
        if steps > 1 {
            S.gemm(transA: true, transB: false, m: h, n: h, k: (steps - 1) * batch, alpha: 1,
                   a: positions.ptr, lda: h, b: dForce.ptr + block, ldb: h,
                   beta: 0, c: dForceMatrix.ptr, ldc: h)
        } else {
            dForceMatrix.zero()
        }
    }
}
