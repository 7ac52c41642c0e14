import Foundation
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

    public init(config: ModelConfig, steps: Int, maxBatch: Int) {
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
        let hasKL = hasTransitionKL
        let klConstant = hasKL ? noiseVariance / priorVariance - 1 - S.log(noiseVariance / priorVariance) : 0
        var kl: S = 0
        for t in 1..<max(steps, 1) {
            let zPrev = positions.ptr + (t - 1) * block, z = positions.ptr + t * block
            let mu = means.ptr + t * block
            let eps = innovations.map { $0 + (t - 1) * block } ?? UnsafePointer(epsilon.ptr + t * block)
            // f(z_{t-1}) = z_{t-1} A (A is symmetric)                     // (B, H)
            S.gemm(transA: false, transB: false, m: batch, n: h, k: h, alpha: 1, a: zPrev, lda: h,
                   b: a, ldb: h, beta: 0, c: force.ptr, ldc: h)
            // The step in one pass over the block: the drive joins the force, the update, and the
            // transition KL of the mean (0 when there is none).
            let f = force.ptr
            let phi = drive.map { $0 + driveRow(t) * block }
            if secondOrder {
                let vPrev = velocities.ptr + (t - 1) * block, v = velocities.ptr + t * block
                for i in 0..<block {
                    let fi = phi.map { f[i] + $0[i] } ?? f[i]
                    z[i] = zPrev[i] + dt * vPrev[i]
                    mu[i] = (1 - damping) * (vPrev[i] - dt * fi / mass)
                    v[i] = mu[i] + noiseScale * eps[i]
                    if hasKL { kl += (klConstant + mu[i] * mu[i] / priorVariance) / 2 }
                }
            } else {
                for i in 0..<block {
                    let fi = phi.map { f[i] + $0[i] } ?? f[i]
                    mu[i] = zPrev[i] - dt * fi
                    z[i] = mu[i] + noiseScale * eps[i]
                    if hasKL { kl += (klConstant + mu[i] * mu[i] / priorVariance) / 2 }
                }
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

/// Whether the Langevin integrator keeps the latent path finite for every potential the model
/// can learn, checked before training (`Trainer` refuses the config otherwise).
///
/// The force is f = A z with A = κ(B + Bᵀ) built from a kernel normalised per channel pair, so
/// whatever the kernel learns, ‖A‖ ≤ 2|κ|·G²·√K' (allPairs) or 2|κ|·G·√K' (diagonal), K' =
/// min(K, 2L−1) the taps that reach within a group (each pair's conv matrix has norm at most the
/// tap sum, ≤ √K'). Per eigenvalue λ of A the mean path evolves linearly, (z, v) ← M(λ)(z, v) with
/// M = [[1, Δt], [−(1−γ)Δtλ/m, 1−γ]] (second order) or z ← (1 − Δtλ) z (first order). The
/// check takes the largest ‖M(λ)^(steps−1)‖ over λ ∈ [−ρ, ρ]: repulsive modes (λ < 0, the
/// potential is indefinite) grow like e^{Δt·√(ρ/m)·steps}, and the explicit step gains energy in
/// stiff oscillating modes when Δt²λ/m > γ/(1−γ). Above `limit` the path of some learnable
/// potential overflows float32 within a trial (the KL sums the squares of ~10⁷ such values).
public enum LangevinStability {
    /// The largest amplification over a trial that training accepts.
    public static let limit = 1e12

    /// The bound ρ on the spectral norm of A for `config`.
    public static func stiffness(_ c: ModelConfig) -> Double {
        let taps = Double(min(c.kernelSize, 2 * max(c.groupLength, 1) - 1)).squareRoot()
        let g = Double(c.groups)
        return 2 * abs(c.coupling) * (c.potential == .allPairs ? g * g : g) * taps
    }

    /// log10 of the largest ‖M(λ)^(steps−1)‖₂ over λ ∈ [−ρ, ρ].
    public static func log10Amplification(_ c: ModelConfig, steps: Int) -> Double {
        let n = steps - 1, rho = stiffness(c)
        guard n > 0 else { return 0 }
        var worst = 0.0
        let samples = 400
        for k in 0...samples {
            let lambda = rho * (2 * Double(k) / Double(samples) - 1)
            worst = max(worst, log10Norm(c, lambda: lambda, power: n))
        }
        return worst
    }

    /// log10 ‖M(λ)ⁿ‖₂, by repeated products renormalised at every step.
    static func log10Norm(_ c: ModelConfig, lambda: Double, power n: Int) -> Double {
        if c.dynamics == .firstOrder { return Double(n) * log10(max(abs(1 - c.dt * lambda), 1e-300)) }
        let g = c.damping, dt = c.dt
        let m = [1, dt, -(1 - g) * dt * lambda / c.mass, 1 - g]
        var p = [1.0, 0, 0, 1]
        var scale = 0.0
        for _ in 0..<n {
            p = [m[0] * p[0] + m[1] * p[2], m[0] * p[1] + m[1] * p[3], m[2] * p[0] + m[3] * p[2], m[2] * p[1] + m[3] * p[3]]
            let largest = p.map(abs).max()!
            guard largest > 0 else { return -300 }
            p = p.map { $0 / largest }
            scale += log10(largest)
        }
        // Spectral norm of the 2×2 remainder: √ of the largest eigenvalue of PᵀP.
        let a = p[0] * p[0] + p[2] * p[2], d = p[1] * p[1] + p[3] * p[3], b = p[0] * p[1] + p[2] * p[3]
        let top = (a + d) / 2 + (((a - d) / 2) * ((a - d) / 2) + b * b).squareRoot()
        return scale + log10(top.squareRoot())
    }

    /// nil when `c` is stable over `steps` steps; else the reason, with the nearest stable dt and
    /// coupling (and mass, in second order) with everything else unchanged.
    public static func problem(_ c: ModelConfig, steps: Int) -> String? {
        let exponent = log10Amplification(c, steps: steps)
        guard exponent > log10(limit) else { return nil }
        func stable(_ edit: (inout ModelConfig, Double) -> Void, below high: Double) -> Double {
            var lo = 0.0, hi = high
            for _ in 0..<60 {
                let mid = (lo + hi) / 2
                var trial = c
                edit(&trial, mid)
                if log10Amplification(trial, steps: steps) <= log10(limit) { lo = mid } else { hi = mid }
            }
            return lo
        }
        let dt = stable({ $0.dt = $1 }, below: c.dt)
        let coupling = stable({ $0.coupling = $1 * ($0.coupling < 0 ? -1 : 1) }, below: abs(c.coupling))
        func round(_ v: Double) -> String { String(format: "%.3g", v) }
        let order = c.dynamics == .secondOrder
        // Three significant figures, rounded toward the stable side.
        func towards(_ v: Double, up: Bool) -> String {
            guard v > 0 else { return "0" }
            let unit = pow(10, floor(log10(v)) - 2)
            return round((up ? (v / unit).rounded(.up) : (v / unit).rounded(.down)) * unit)
        }
        var fixes = ["dt ≤ \(towards(dt, up: false))", "|coupling| ≤ \(towards(coupling, up: false))"]
        if order && coupling > 0 { fixes.append("mass ≥ \(towards(c.mass * abs(c.coupling) / coupling, up: true))") }
        let mechanism = order
            ? "its repulsive modes (the potential is indefinite) grow like e^(dt·√(stiffness/mass)) per step, and for dt²·stiffness/mass > damping/(1 − damping) the explicit Langevin step adds energy to its oscillating modes"
            : "its repulsive modes grow by 1 + dt·stiffness per step"
        return String(format: "dt %@, damping %@, coupling %@, mass %@ (%@) make the Langevin integrator unstable for this model: a potential it can learn (stiffness up to %@ = 2·|coupling|·%@·√kernelSize for %@ with %d groups) can grow the latent path by 10^%.0f over the %d steps of a trial, past the 10^12 float32 training survives (the KL sums ~10^7 squares of the path and the gradient grows back the same way, past float32's 3·10^38), so training would end in NaN; %@. With the rest unchanged, any of these is stable: %@.",
                      round(c.dt), round(c.damping), round(c.coupling), round(c.mass), c.dynamics.rawValue,
                      round(stiffness(c)), c.potential == .allPairs ? "groups²" : "groups", c.potential.rawValue, c.groups,
                      exponent, steps - 1, mechanism, fixes.joined(separator: ", "))
    }
}
