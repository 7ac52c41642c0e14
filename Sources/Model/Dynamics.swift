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
/// Two optional per-step terms from the data:
/// - a drive φ_t (`potentialInput: spikes`): the force at step t is f(z_{t-1}) + φ_t;
/// - an innovation u_t (`posterior: perStep`): the noise √(s²) ε_t is replaced by √(s²) u_t, u_t
///   drawn from the per-step posterior (the caller's head), and the transition KL is that head's
///   (these steps then add none of their own).
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
    /// d loss / d u_t of the innovations (rows t ≥ 1; row block 0 unused); empty without them.
    public let dInnovations: Buffer<S>  // (steps, B, H)
    /// With `posterior: perStep`: the noise of each step is the caller's innovation.
    let perStep: Bool

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
        perStep = config.posterior == .perStep
        dInnovations = Buffer(count: perStep ? n : 0)
    }

    /// The spec's transition KL term (none with innovations: their KL is the posterior head's).
    var hasTransitionKL: Bool { noiseVariance > 0 && !perStep }

    /// √s², the scale of the noise (and of an innovation) in one transition.
    public var noiseScale: S { noiseVariance.squareRoot() }

    /// Runs steps 1 … steps-1 from z_0 = positions[0] (and v_0 = velocities[0]), which the
    /// caller has written. Returns the transition KL summed over the batch. `drive` (rows of
    /// (·, B, H)) adds φ at row `driveRow(t)` to the force of step t; `innovations` ((steps-1, B, H),
    /// step t at row t-1) replaces the noise of every step (`posterior: perStep`).
    public func forward(forceMatrix a: UnsafePointer<S>, batch: Int, noise: NoiseContext,
                        drive: UnsafePointer<S>? = nil, driveRow: (Int) -> Int = { $0 },
                        innovations: UnsafePointer<S>? = nil) -> S {
        precondition(perStep == (innovations != nil), "posterior perStep needs innovations, and only it")
        let h = hidden, block = batch * h
        if perStep {
            // The innovations are the noise.
        } else if noise.sampling && hasTransitionKL {
            noise.fill(.langevin, normal: true, into: epsilon.ptr, rows: steps, width: h)
        } else {
            epsilon.ptr.update(repeating: 0, count: steps * block)
        }
        let noiseScale = noiseVariance.squareRoot()
        var kl: S = 0
        for t in 1..<max(steps, 1) {
            let zPrev = positions.ptr + (t - 1) * block, z = positions.ptr + t * block
            let mu = means.ptr + t * block
            let eps = innovations.map { $0 + (t - 1) * block } ?? UnsafePointer(epsilon.ptr + t * block)
            // f(z_{t-1}) = z_{t-1} A (A is symmetric)                     // (B, H)
            S.gemm(transA: false, transB: false, m: batch, n: h, k: h, alpha: 1, a: zPrev, lda: h,
                   b: a, ldb: h, beta: 0, c: force.ptr, ldc: h)
            let f = force.ptr
            if let drive {
                let phi = drive + driveRow(t) * block
                for i in 0..<block { f[i] += phi[i] }
            }
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
    /// and d loss / d v_0. Overwrites `dForceMatrix` with d loss / dA, and with innovations the
    /// rows t ≥ 1 of `dInnovations`. `klScale` is the weight of the summed transition KL in the
    /// loss. With a drive, accumulates d loss / d φ into `dDrive` at the rows `driveRow(t)`.
    public func backward(forceMatrix a: UnsafePointer<S>, klScale: S, batch: Int,
                         dDrive: UnsafeMutablePointer<S>? = nil, driveRow: (Int) -> Int = { $0 }) {
        let h = hidden, block = batch * h, scale = noiseScale
        let klGrad: S = hasTransitionKL ? klScale / priorVariance : 0
        for t in stride(from: steps - 1, through: 1, by: -1) {
            if perStep {
                // v_t (z_t in first order) = μ_t + s u_t: d u_t = s · d v_t, complete at this point.
                let d = (secondOrder ? dVelocities.ptr : dPositions.ptr) + t * block, du = dInnovations.ptr + t * block
                for i in 0..<block { du[i] = scale * d[i] }
            }
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
            // f = z A + φ: dφ += df
            if let dDrive {
                let dphi = dDrive + driveRow(t) * block
                for i in 0..<block { dphi[i] += df[i] }
            }
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
