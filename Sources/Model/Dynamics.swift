import Foundation
import Kernels

/// Langevin integration of the latents over steps t = 1 … steps-1, with f(z) = A z:
///
/// secondOrder (spec step 5):  z_t = z_{t-1} + Δt v_{t-1};  v' = v_{t-1} - Δt f(z_{t-1}) / m;
///                             μ_t = (1 - γ) v';  v_t = μ_t + √(2γτ) ε_t.
/// firstOrder (ablation):      μ_t = z_{t-1} - Δt f(z_{t-1});  z_t = μ_t + √(2τΔt) ε_t.
///
/// `integrator: midpoint` replaces the explicit deterministic part by the implicit midpoint rule
/// for the linear force (first order: the trapezoid rule), solved exactly once per pass through
/// M = (I + cA)⁻¹ and N = (I − cA)M:
///
/// secondOrder, c = Δt²/4m:    z_t = z_{t-1} N + (Δt v_{t-1} − Δt²/(2m) φ_t) M;
///                             v' = v_{t-1} − Δt/(2m) (z_{t-1} + z_t) A − Δt/m φ_t;  μ_t, v_t as above.
/// firstOrder, c = Δt/2:       μ_t = z_{t-1} N − Δt φ_t M;  z_t = μ_t + √(2τΔt) ε_t.
///
/// For A positive semi-definite (`stiffness: gram`) every mode is a rotation (first order: a
/// decay) of modulus ≤ 1 at any Δt, so only the damping and the noise change the energy.
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
    /// `integrator: midpoint`, its c, its step matrices M and N and their gradients (H, H), and
    /// two (B, H) scratch blocks; empty with the explicit step.
    let midpoint: Bool
    let midpointC: S
    let stepM: Buffer<S>, stepN: Buffer<S>, dStepM: Buffer<S>, dStepN: Buffer<S>
    let work1: Buffer<S>, work2: Buffer<S>
    /// The backward's (H, H) scratch for dY, dX and Y.
    let midpointScratch: Buffer<S>
    /// The forward's Double workspace for I + cA and its inverse.   (2·H·H)
    var midpointInverse: [Double]
    /// The midpoint forward's drive and its rows, which its backward reads again (φ enters w).
    var midpointDrive: UnsafePointer<S>?
    var midpointDriveRows: [Int] = []

    /// `scratch`: memory free from the end of the transformer's backward to the end of this
    /// backward (LangevinFlow lends the decoder's); dPositions, dVelocities and dInnovations live
    /// there when it is large enough, else in buffers of their own.
    public init(config: ModelConfig, steps: Int, maxBatch: Int, scratch: Buffer<S>? = nil) {
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
        perStep = config.posterior == .perStep
        let nv = secondOrder ? n : 0, nu = perStep ? n : 0
        if let scratch, scratch.count >= n + nv + nu {
            dPositions = Buffer(viewing: scratch, count: n)
            dVelocities = Buffer(viewing: scratch, offset: n, count: nv)
            dInnovations = Buffer(viewing: scratch, offset: n + nv, count: nu)
        } else {
            dPositions = Buffer(count: n)
            dVelocities = Buffer(count: nv)
            dInnovations = Buffer(count: nu)
        }
        dForce = epsilon            // the noise is spent once the forward pass is done
        dForceMatrix = Buffer(count: hidden * hidden)
        midpoint = config.integrator == .midpoint
        midpointC = secondOrder ? S(config.dt * config.dt / (4 * config.mass)) : S(config.dt / 2)
        let hh = midpoint ? hidden * hidden : 0, bh = midpoint ? maxBatch * hidden : 0
        stepM = Buffer(count: hh); stepN = Buffer(count: hh); dStepM = Buffer(count: hh); dStepN = Buffer(count: hh)
        work1 = Buffer(count: bh); work2 = Buffer(count: bh)
        midpointScratch = Buffer(count: 3 * hh)
        midpointInverse = [Double](repeating: 0, count: 2 * hh)
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
        if midpoint {
            return midpointForward(forceMatrix: a, batch: batch, drive: drive, driveRow: driveRow, innovations: innovations)
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
        if midpoint {
            midpointBackward(forceMatrix: a, klScale: klScale, batch: batch, dDrive: dDrive, driveRow: driveRow)
            return
        }
        let h = hidden, block = batch * h
        let klGrad: S = hasTransitionKL ? klScale / priorVariance : 0
        for t in stride(from: steps - 1, through: 1, by: -1) {
            innovationGradient(t, block: block)
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

extension LangevinDynamics {
    /// With innovations: v_t (z_t in first order) = μ_t + s u_t, so d u_t = s · d v_t, complete
    /// when the backward reaches step t (under either integrator).
    @inline(__always)
    func innovationGradient(_ t: Int, block: Int) {
        guard perStep else { return }
        let scale = noiseScale
        let d = (secondOrder ? dVelocities.ptr : dPositions.ptr) + t * block, du = dInnovations.ptr + t * block
        for i in 0..<block { du[i] = scale * d[i] }
    }

    /// M = (I + cA)⁻¹ and N = (I − cA) M, computed in Double (Gauss–Jordan with partial
    /// pivoting; I + cA is symmetric positive definite for A ⪰ 0, and `LangevinStability`
    /// refuses an indefinite A with c·ρ ≥ 1, where it could be singular).
    func buildStepMatrices(_ a: UnsafePointer<S>) {
        let h = hidden, c = Double(midpointC)
        var work = midpointInverse
        midpointInverse = []
        defer { midpointInverse = work }
        work.withUnsafeMutableBufferPointer { buffer in
        let x = buffer.baseAddress!, inv = x + h * h
        for i in 0..<h {
            for j in 0..<h { x[i * h + j] = c * Double(a[i * h + j]); inv[i * h + j] = 0 }
            x[i * h + i] += 1
            inv[i * h + i] = 1
        }
        for col in 0..<h {
            var pivot = col
            for r in (col + 1)..<max(h, col + 1) where abs(x[r * h + col]) > abs(x[pivot * h + col]) { pivot = r }
            if pivot != col {
                for j in 0..<h { swap(&x[col * h + j], &x[pivot * h + j]); swap(&inv[col * h + j], &inv[pivot * h + j]) }
            }
            let p = x[col * h + col]
            precondition(p != 0 && p.isFinite, "the midpoint step's I + cA is singular (an indefinite potential with c·stiffness ≥ 1)")
            for j in 0..<h { x[col * h + j] /= p; inv[col * h + j] /= p }
            for r in 0..<h where r != col {
                let f = x[r * h + col]
                guard f != 0 else { continue }
                for j in 0..<h { x[r * h + j] -= f * x[col * h + j]; inv[r * h + j] -= f * inv[col * h + j] }
            }
        }
        for i in 0..<(h * h) { stepM[i] = S(inv[i]) }
        // N = (I − cA) M
        for i in 0..<h {
            for j in 0..<h {
                var sum = inv[i * h + j]
                for k in 0..<h { sum -= c * Double(a[i * h + k]) * inv[k * h + j] }
                stepN[i * h + j] = S(sum)
            }
        }
        }
    }

    func midpointForward(forceMatrix a: UnsafePointer<S>, batch: Int, drive: UnsafePointer<S>?, driveRow: (Int) -> Int,
                         innovations: UnsafePointer<S>?) -> S {
        let h = hidden, block = batch * h
        buildStepMatrices(a)
        midpointDrive = drive
        midpointDriveRows = drive == nil ? [] : (0..<steps).map(driveRow)
        let noiseScale = noiseVariance.squareRoot()
        let hasKL = hasTransitionKL
        let klConstant = hasKL ? noiseVariance / priorVariance - 1 - S.log(noiseVariance / priorVariance) : 0
        let w = work1.ptr, sum = work2.ptr, f = force.ptr
        var kl: S = 0
        for t in 1..<max(steps, 1) {
            let zPrev = positions.ptr + (t - 1) * block, z = positions.ptr + t * block
            let mu = means.ptr + t * block
            let eps = innovations.map { $0 + (t - 1) * block } ?? UnsafePointer(epsilon.ptr + t * block)
            let phi = drive.map { $0 + driveRow(t) * block }
            if secondOrder {
                let vPrev = velocities.ptr + (t - 1) * block, v = velocities.ptr + t * block
                // w = Δt v − Δt²/(2m) φ;  z_t = z N + w M
                for i in 0..<block { w[i] = dt * vPrev[i] - (phi.map { dt * dt / (2 * mass) * $0[i] } ?? 0) }
                S.gemm(transA: false, transB: false, m: batch, n: h, k: h, alpha: 1, a: zPrev, lda: h, b: stepN.ptr, ldb: h,
                       beta: 0, c: z, ldc: h)
                S.gemm(transA: false, transB: false, m: batch, n: h, k: h, alpha: 1, a: w, lda: h, b: stepM.ptr, ldb: h,
                       beta: 1, c: z, ldc: h)
                // f̄ = (z_{t-1} + z_t) A
                for i in 0..<block { sum[i] = zPrev[i] + z[i] }
                S.gemm(transA: false, transB: false, m: batch, n: h, k: h, alpha: 1, a: sum, lda: h, b: a, ldb: h,
                       beta: 0, c: f, ldc: h)
                for i in 0..<block {
                    let vPrime = vPrev[i] - dt / (2 * mass) * f[i] - (phi.map { dt / mass * $0[i] } ?? 0)
                    mu[i] = (1 - damping) * vPrime
                    v[i] = mu[i] + noiseScale * eps[i]
                    if hasKL { kl += (klConstant + mu[i] * mu[i] / priorVariance) / 2 }
                }
            } else {
                // μ = z N − Δt φ M
                S.gemm(transA: false, transB: false, m: batch, n: h, k: h, alpha: 1, a: zPrev, lda: h, b: stepN.ptr, ldb: h,
                       beta: 0, c: mu, ldc: h)
                if let phi {
                    S.gemm(transA: false, transB: false, m: batch, n: h, k: h, alpha: -dt, a: phi, lda: h, b: stepM.ptr, ldb: h,
                           beta: 1, c: mu, ldc: h)
                }
                for i in 0..<block {
                    z[i] = mu[i] + noiseScale * eps[i]
                    if hasKL { kl += (klConstant + mu[i] * mu[i] / priorVariance) / 2 }
                }
            }
        }
        return kl
    }

    func midpointBackward(forceMatrix a: UnsafePointer<S>, klScale: S, batch: Int, dDrive: UnsafeMutablePointer<S>?,
                          driveRow: (Int) -> Int) {
        let h = hidden, block = batch * h
        let drive = midpointDrive, rows = midpointDriveRows
        func driveValue(_ t: Int, _ i: Int) -> S { drive.map { $0[rows[t] * block + i] } ?? 0 }
        let klGrad: S = hasTransitionKL ? klScale / priorVariance : 0
        dStepM.zero(); dStepN.zero(); dForceMatrix.zero()
        let w1 = work1.ptr, w2 = work2.ptr
        for t in stride(from: steps - 1, through: 1, by: -1) {
            innovationGradient(t, block: block)
            let mu = means.ptr + t * block
            let zPrev = positions.ptr + (t - 1) * block, z = positions.ptr + t * block
            let dzPrev = dPositions.ptr + (t - 1) * block, dz = dPositions.ptr + t * block
            let df = dForce.ptr + t * block
            let dphi = dDrive.map { $0 + driveRow(t) * block }
            if secondOrder {
                let vPrev = velocities.ptr + (t - 1) * block
                let dvPrev = dVelocities.ptr + (t - 1) * block, dv = dVelocities.ptr + t * block
                for i in 0..<block {
                    let dvPrime = (1 - damping) * (dv[i] + klGrad * mu[i])
                    dvPrev[i] += dvPrime
                    df[i] = -dt / (2 * mass) * dvPrime                       // d f̄
                    if let dphi { dphi[i] += -dt / mass * dvPrime }
                }
                // f̄ = s A, s = z_{t-1} + z_t: dA += sᵀ d f̄; ds = d f̄ Aᵀ to both z's.
                for i in 0..<block { w1[i] = zPrev[i] + z[i] }
                S.gemm(transA: true, transB: false, m: h, n: h, k: batch, alpha: 1, a: w1, lda: h, b: df, ldb: h,
                       beta: 1, c: dForceMatrix.ptr, ldc: h)
                S.gemm(transA: false, transB: true, m: batch, n: h, k: h, alpha: 1, a: df, lda: h, b: a, ldb: h,
                       beta: 0, c: w2, ldc: h)
                for i in 0..<block { dzPrev[i] += w2[i]; dz[i] += w2[i] }
                // z_t = z_{t-1} N + w M
                S.gemm(transA: false, transB: true, m: batch, n: h, k: h, alpha: 1, a: dz, lda: h, b: stepN.ptr, ldb: h,
                       beta: 1, c: dzPrev, ldc: h)
                S.gemm(transA: true, transB: false, m: h, n: h, k: batch, alpha: 1, a: zPrev, lda: h, b: dz, ldb: h,
                       beta: 1, c: dStepN.ptr, ldc: h)
                for i in 0..<block { w1[i] = dt * vPrev[i] - (drive == nil ? 0 : dt * dt / (2 * mass) * driveValue(t, i)) }
                S.gemm(transA: true, transB: false, m: h, n: h, k: batch, alpha: 1, a: w1, lda: h, b: dz, ldb: h,
                       beta: 1, c: dStepM.ptr, ldc: h)
                S.gemm(transA: false, transB: true, m: batch, n: h, k: h, alpha: 1, a: dz, lda: h, b: stepM.ptr, ldb: h,
                       beta: 0, c: w2, ldc: h)                                 // d w
                for i in 0..<block {
                    dvPrev[i] += dt * w2[i]
                    if let dphi { dphi[i] += -dt * dt / (2 * mass) * w2[i] }
                }
            } else {
                for i in 0..<block { df[i] = dz[i] + klGrad * mu[i] }        // d μ
                S.gemm(transA: false, transB: true, m: batch, n: h, k: h, alpha: 1, a: df, lda: h, b: stepN.ptr, ldb: h,
                       beta: 1, c: dzPrev, ldc: h)
                S.gemm(transA: true, transB: false, m: h, n: h, k: batch, alpha: 1, a: zPrev, lda: h, b: df, ldb: h,
                       beta: 1, c: dStepN.ptr, ldc: h)
                if let dphi {
                    for i in 0..<block { w1[i] = -dt * driveValue(t, i) }
                    S.gemm(transA: true, transB: false, m: h, n: h, k: batch, alpha: 1, a: w1, lda: h, b: df, ldb: h,
                           beta: 1, c: dStepM.ptr, ldc: h)
                    S.gemm(transA: false, transB: true, m: batch, n: h, k: h, alpha: -dt, a: df, lda: h, b: stepM.ptr, ldb: h,
                           beta: 1, c: dphi, ldc: h)
                }
            }
        }
        // Through N = Y M (Y = I − cA) and M = X⁻¹ (X = I + cA): dY = dN Mᵀ, dM += Yᵀ dN,
        // dX = −Mᵀ dM Mᵀ; dA += c (dX − dY).
        let c = midpointC, m = stepM.ptr, n = h
        let dY = midpointScratch.ptr, dX = dY + n * n, y = dX + n * n
        for i in 0..<n { for j in 0..<n { y[i * n + j] = (i == j ? 1 : 0) - c * a[i * n + j] } }
        S.gemm(transA: false, transB: true, m: n, n: n, k: n, alpha: 1, a: dStepN.ptr, lda: n, b: m, ldb: n, beta: 0, c: dY, ldc: n)
        S.gemm(transA: true, transB: false, m: n, n: n, k: n, alpha: 1, a: y, lda: n, b: dStepN.ptr, ldb: n, beta: 1, c: dStepM.ptr, ldc: n)
        S.gemm(transA: true, transB: false, m: n, n: n, k: n, alpha: 1, a: m, lda: n, b: dStepM.ptr, ldb: n, beta: 0, c: y, ldc: n)
        S.gemm(transA: false, transB: true, m: n, n: n, k: n, alpha: -1, a: y, lda: n, b: m, ldb: n, beta: 0, c: dX, ldc: n)
        for i in 0..<(n * n) { dForceMatrix[i] += c * (dX[i] - dY[i]) }
    }
}

/// Whether the Langevin integrator keeps the latent path finite for every potential the model
/// can learn, checked before training (`Trainer` refuses the config otherwise).
///
/// The force is f = A z with A built from a kernel normalised per channel pair, so whatever the
/// kernel learns, ‖B‖ ≤ b = G²·√K' (allPairs) or G·√K' (diagonal), K' = min(K, 2L−1) the taps
/// that reach within a group (each pair's conv matrix has norm at most the tap sum, ≤ √K'). With
/// `stiffness: paper` A = κ(B + Bᵀ) has its eigenvalues λ in [−ρ, ρ], ρ = 2|κ|b; with `gram`,
/// A = κBᵀB/b, in [0, κb]. Per eigenvalue the mean path evolves linearly, (z, v) ← M(λ)(z, v):
/// explicit, M = [[1, Δt], [−(1−γ)Δtλ/m, 1−γ]] (first order z ← (1 − Δtλ) z); midpoint, with
/// q = Δt²λ/4m, M = [[(1−q), Δt], [−(1−γ)Δtλ/m, (1−γ)(1−q)]]/(1+q) (first order
/// z ← (1 − Δtλ/2)/(1 + Δtλ/2) z), a rotation times (1−γ) for λ ≥ 0 at any Δt. The check takes
/// the largest ‖M(λ)^(steps−1)‖ over the range: repulsive modes (λ < 0, only with `paper`) grow
/// like e^{Δt·√(ρ/m)·steps} under either integrator, and the explicit step gains energy in stiff
/// oscillating modes when Δt²λ/m > γ/(1−γ). Above `limit` the path of some learnable potential
/// overflows float32 within a trial (the KL sums the squares of ~10⁷ such values).
public enum LangevinStability {
    /// The largest amplification over a trial that training accepts.
    public static let limit = 1e12

    /// The bound ρ on the eigenvalues of A for `config` (|λ| ≤ ρ; with `gram`, 0 ≤ λ ≤ ρ).
    public static func stiffness(_ c: ModelConfig) -> Double {
        let b = CoupledOscillatorPotential<Double>.gramScale(c)
        return c.stiffness == .gram ? abs(c.coupling) * b : 2 * abs(c.coupling) * b
    }

    /// The range of A's eigenvalues the model can learn.
    static func eigenvalueRange(_ c: ModelConfig) -> ClosedRange<Double> {
        let rho = stiffness(c)
        return c.stiffness == .gram ? 0...rho : -rho...rho
    }

    /// With the midpoint step: whether I + cA can be singular (1 + cλ ≤ 0 for a learnable λ).
    static func midpointSingular(_ c: ModelConfig) -> Bool {
        guard c.integrator == .midpoint else { return false }
        let coefficient = c.dynamics == .secondOrder ? c.dt * c.dt / (4 * c.mass) : c.dt / 2
        return 1 + coefficient * eigenvalueRange(c).lowerBound <= 1e-6
    }

    /// log10 of the largest ‖M(λ)^(steps−1)‖₂ over the learnable eigenvalues.
    public static func log10Amplification(_ c: ModelConfig, steps: Int) -> Double {
        let n = steps - 1, range = eigenvalueRange(c)
        guard n > 0 else { return 0 }
        if midpointSingular(c) { return .infinity }
        var worst = 0.0
        let samples = 400
        for k in 0...samples {
            let lambda = range.lowerBound + (range.upperBound - range.lowerBound) * Double(k) / Double(samples)
            worst = max(worst, log10Norm(c, lambda: lambda, power: n))
        }
        return worst
    }

    /// log10 ‖M(λ)ⁿ‖₂, by repeated products renormalised at every step.
    static func log10Norm(_ c: ModelConfig, lambda: Double, power n: Int) -> Double {
        let g = c.damping, dt = c.dt, midpoint = c.integrator == .midpoint
        if c.dynamics == .firstOrder {
            let factor = midpoint ? (1 - dt * lambda / 2) / (1 + dt * lambda / 2) : 1 - dt * lambda
            return Double(n) * log10(max(abs(factor), 1e-300))
        }
        // M = [[m0, m1], [m2, m3]]; the running product P in four scalars (no arrays: this runs
        // 400 eigenvalues × the trial's steps per check, and a search's bisections repeat it).
        let m0, m1, m2, m3: Double
        if midpoint {
            let q = dt * dt * lambda / (4 * c.mass)
            (m0, m1, m2, m3) = ((1 - q) / (1 + q), dt / (1 + q), -(1 - g) * dt * lambda / c.mass / (1 + q), (1 - g) * (1 - q) / (1 + q))
        } else {
            (m0, m1, m2, m3) = (1, dt, -(1 - g) * dt * lambda / c.mass, 1 - g)
        }
        var (p0, p1, p2, p3) = (1.0, 0.0, 0.0, 1.0)
        var scale = 0.0
        for _ in 0..<n {
            (p0, p1, p2, p3) = (m0 * p0 + m1 * p2, m0 * p1 + m1 * p3, m2 * p0 + m3 * p2, m2 * p1 + m3 * p3)
            let largest = max(max(abs(p0), abs(p1)), max(abs(p2), abs(p3)))
            guard largest > 0 else { return -300 }
            (p0, p1, p2, p3) = (p0 / largest, p1 / largest, p2 / largest, p3 / largest)
            scale += log10(largest)
        }
        // Spectral norm of the 2×2 remainder: √ of the largest eigenvalue of PᵀP.
        let a = p0 * p0 + p2 * p2, d = p1 * p1 + p3 * p3, b = p0 * p1 + p2 * p3
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
        var fixes: [String] = []
        // The options that remove the cause, first: an energy cannot repel, and the midpoint
        // step adds no energy to it at any dt.
        var energy = c
        energy.stiffness = .gram
        energy.coupling = abs(c.coupling)
        energy.integrator = .midpoint
        if c.stiffness == .paper || c.integrator == .explicit, log10Amplification(energy, steps: steps) <= log10(limit) {
            var switches: [String] = []
            if c.stiffness == .paper { switches.append("stiffness=gram") }
            if c.coupling < 0 { switches.append("coupling=\(round(abs(c.coupling)))") }
            if c.integrator == .explicit { switches.append("integrator=midpoint") }
            fixes.append(switches.joined(separator: " ") + " (stable at every dt, damping and coupling)")
        }
        if dt > 0 { fixes.append("dt ≤ \(towards(dt, up: false))") }
        fixes.append("|coupling| ≤ \(towards(coupling, up: false))")
        if order && coupling > 0 { fixes.append("mass ≥ \(towards(c.mass * abs(c.coupling) / coupling, up: true))") }
        var mechanisms: [String] = []
        if c.stiffness == .paper {
            mechanisms.append(order ? "its repulsive modes (the potential is indefinite) grow like e^(dt·√(stiffness/mass)) per step"
                                    : "its repulsive modes grow by 1 + dt·stiffness per step")
        }
        if c.integrator == .explicit && order {
            mechanisms.append("for dt²·stiffness/mass > damping/(1 − damping) the explicit Langevin step adds energy to its oscillating modes")
        } else if c.integrator == .explicit {
            mechanisms.append("for dt·stiffness > 2 the explicit step overshoots and grows")
        }
        if midpointSingular(c) {
            mechanisms.append("the midpoint step's I + c·A (c = \(order ? "dt²/4m" : "dt/2")) is singular for a repulsive mode of that stiffness")
        }
        let form = c.stiffness == .gram ? "|coupling|·" : "2·|coupling|·"
        let growth = exponent.isFinite ? String(format: "can grow the latent path by 10^%.0f over the %d steps of a trial, past the 10^12 float32 training survives (the KL sums ~10^7 squares of the path and the gradient grows back the same way, past float32's 3·10^38), so training would end in NaN", exponent, steps - 1)
                                       : "makes the step undefined"
        return String(format: "dt %@, damping %@, coupling %@, mass %@ (%@, stiffness %@, integrator %@) make the Langevin integrator unstable for this model: a potential it can learn (stiffness up to %@ = %@%@·√kernelSize for %@ with %d groups) %@; %@. With the rest unchanged, any of these is stable: %@.",
                      round(c.dt), round(c.damping), round(c.coupling), round(c.mass), c.dynamics.rawValue,
                      c.stiffness.rawValue, c.integrator.rawValue,
                      round(stiffness(c)), form, c.potential == .allPairs ? "groups²" : "groups", c.potential.rawValue, c.groups,
                      growth, mechanisms.joined(separator: ", and "), fixes.joined(separator: ", "))
    }
}
