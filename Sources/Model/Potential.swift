import Kernels

/// The coupled-oscillator potential and its force matrix.
///
/// Ŵ = W / max(‖W_oi·‖₂, 1e-8) (norm over the K taps); Z = z as G channels of length L;
/// V = conv1d(Z, Ŵ, zero padding ⌊K/2⌋) (cross-correlation, as PyTorch);
/// U = κ Σ_o Σ_j ⟨V_o, Z_j⟩ (`allPairs`) or κ Σ_o ⟨V_o, Z_o⟩ (`diagonal`).
///
/// U = κ zᵀ B z with B[(j,l),(i,l')] = Σ_o Ŵ[o,i,l'-l+P] (allPairs; the same for every j) or
/// Ŵ[j,i,l'-l+P] (diagonal), so the force f = ∂U/∂z = A z with A = κ (B + Bᵀ), symmetric H×H
/// (`stiffness: paper`, the spec's). `stiffness: gram` makes it an energy instead:
/// U = κ/2 ‖B z‖²/b, A = κ BᵀB/b, positive semi-definite for κ ≥ 0, with b = `gramScale` the
/// bound on ‖B‖, so A's eigenvalues lie in [0, κ b].
/// A is built once per forward pass and applied with one GEMM per Langevin step.
public final class CoupledOscillatorPotential<S: Scalar> {
    let groups: Int, taps: Int, length: Int, hidden: Int
    let form: ModelConfig.Potential
    let coupling: S
    let gram: Bool
    /// With `gram`: B itself, the scratch dA + dAᵀ, and d loss / dB.   (H, H) each
    let bMatrix: Buffer<S>, dASymmetric: Buffer<S>, dB: Buffer<S>
    public let forceMatrix: Buffer<S>     // A (H, H), symmetric
    let normalised: Buffer<S>            // Ŵ (G, G, K)
    let norms: Buffer<S>                 // max(‖W_oi‖, 1e-8) (G, G)
    let dNormalised: Buffer<S>           // (G, G, K) scratch
    let kernel: ParameterSlot

    static var normFloor: S { 1e-8 }

    /// b, the bound on ‖B‖ that scales the gram stiffness: groups²·√K′ (allPairs) or
    /// groups·√K′ (diagonal), K′ = min(K, 2L − 1) the taps that reach within a group.
    public static func gramScale(_ c: ModelConfig) -> Double {
        let taps = Double(min(c.kernelSize, 2 * max(c.groupLength, 1) - 1)).squareRoot()
        let g = Double(c.groups)
        return (c.potential == .allPairs ? g * g : g) * taps
    }
    var gramScale: S {
        let taps = S(min(taps, 2 * max(length, 1) - 1)).squareRoot()
        return (form == .allPairs ? S(groups * groups) : S(groups)) * taps
    }

    public init(config: ModelConfig, layout: ParameterLayout) {
        kernel = layout.slot("potential.conv_z")
        groups = config.groups
        taps = config.kernelSize
        length = config.groupLength
        hidden = config.hidden
        form = config.potential
        coupling = S(config.coupling)
        gram = config.stiffness == .gram
        bMatrix = Buffer(count: gram ? hidden * hidden : 0)
        dASymmetric = Buffer(count: gram ? hidden * hidden : 0)
        dB = Buffer(count: gram ? hidden * hidden : 0)
        forceMatrix = Buffer(count: hidden * hidden)
        normalised = Buffer(count: groups * groups * taps)
        norms = Buffer(count: groups * groups)
        dNormalised = Buffer(count: groups * groups * taps)
    }

    /// Overwrites `forceMatrix` from `potential.conv_z`.
    public func build(params: ParameterSet<S>) {
        let g = groups, k = taps, h = hidden
        let w = params.value(kernel)
        for pair in 0..<(g * g) {
            var sq: S = 0
            for tap in 0..<k { sq += w[pair * k + tap] * w[pair * k + tap] }
            let norm = max(sq.squareRoot(), Self.normFloor)
            norms[pair] = norm
            for tap in 0..<k { normalised[pair * k + tap] = w[pair * k + tap] / norm }
        }
        let a = forceMatrix.ptr
        a.update(repeating: 0, count: h * h)
        if gram {
            // B, then A = κ BᵀB / b.
            let bm = bMatrix.ptr
            bm.update(repeating: 0, count: h * h)
            forEachEntry { row, col, tapValue in bm[row * h + col] += tapValue }
            S.gemm(transA: true, transB: false, m: h, n: h, k: h, alpha: coupling / gramScale, a: bm, lda: h, b: bm, ldb: h,
                   beta: 0, c: a, ldc: h)
            return
        }
        // A = κ (B + Bᵀ): add each B entry at (row, col) and at (col, row).
        forEachEntry { row, col, wHat in
            let value = coupling * wHat
            a[row * h + col] += value
            a[col * h + row] += value
        }
    }

    /// Calls `body(row, col, Ŵ entry)` for every kernel entry of B, in the order `build` adds them.
    @inline(__always)
    func forEachEntry(_ body: (Int, Int, S) -> Void) {
        let g = groups, k = taps, l = length, pad = taps / 2
        for j in 0..<g {
            for i in 0..<g {
                for tap in 0..<k {
                    let wHat: S
                    switch form {
                    case .allPairs:
                        var sum: S = 0
                        for o in 0..<g { sum += normalised[(o * g + i) * k + tap] }
                        wHat = sum
                    case .diagonal:
                        wHat = normalised[(j * g + i) * k + tap]
                    }
                    for pos in 0..<l {
                        let other = pos + tap - pad
                        guard other >= 0 && other < l else { continue }
                        body(j * l + pos, i * l + other, wHat)
                    }
                }
            }
        }
    }

    /// Accumulates into the `potential.conv_z` gradient from dA (H, H).
    public func backward(dForceMatrix dA: UnsafePointer<S>, params: ParameterSet<S>) {
        let h = hidden
        dNormalised.zero()
        if gram {
            // A = s BᵀB, s = κ/b: dB = s B (dA + dAᵀ); each kernel entry gathers its dB entries.
            let sym = dASymmetric.ptr, gradB = dB.ptr
            for r in 0..<h { for c in 0..<h { sym[r * h + c] = dA[r * h + c] + dA[c * h + r] } }
            S.gemm(transA: false, transB: false, m: h, n: h, k: h, alpha: coupling / gramScale, a: bMatrix.ptr, lda: h,
                   b: sym, ldb: h, beta: 0, c: gradB, ldc: h)
            gatherIntoKernel(scale: nil) { row, col in gradB[row * h + col] }
        } else {
            // dŴ from dA through A = κ(B + Bᵀ): each B entry receives κ (dA[row,col] + dA[col,row]).
            gatherIntoKernel(scale: coupling) { row, col in dA[row * h + col] + dA[col * h + row] }
        }
        normalisationBackward(params: params)
    }

    /// dŴ from the gradient of each B entry (`entry(row, col)`): per kernel entry the sum over
    /// the positions it fills, times `scale`, into every Ŵ that made it.
    @inline(__always)
    func gatherIntoKernel(scale: S?, _ entry: (Int, Int) -> S) {
        let g = groups, k = taps, l = length, pad = taps / 2
        for j in 0..<g {
            for i in 0..<g {
                for tap in 0..<k {
                    var acc: S = 0
                    for pos in 0..<l {
                        let other = pos + tap - pad
                        guard other >= 0 && other < l else { continue }
                        acc += entry(j * l + pos, i * l + other)
                    }
                    if let scale { acc *= scale }
                    switch form {
                    case .allPairs:
                        for o in 0..<g { dNormalised[(o * g + i) * k + tap] += acc }
                    case .diagonal:
                        dNormalised[(j * g + i) * k + tap] += acc
                    }
                }
            }
        }
    }

    /// Through Ŵ = W / max(‖W‖, ε): dW = (dŴ - Ŵ ⟨Ŵ, dŴ⟩) / ‖W‖ above the floor, dŴ / ε below.
    func normalisationBackward(params: ParameterSet<S>) {
        let g = groups, k = taps
        let dw = params.grad(kernel)
        let w = params.value(kernel)
        for pair in 0..<(g * g) {
            let norm = norms[pair]
            var sq: S = 0
            for tap in 0..<k { sq += w[pair * k + tap] * w[pair * k + tap] }
            let aboveFloor = sq.squareRoot() > Self.normFloor
            var dot: S = 0
            if aboveFloor { for tap in 0..<k { dot += normalised[pair * k + tap] * dNormalised[pair * k + tap] } }
            for tap in 0..<k {
                let idx = pair * k + tap
                dw[idx] += (dNormalised[idx] - normalised[idx] * dot) / norm
            }
        }
    }
}

/// The input-dependent part of the potential (`potentialInput: spikes`, the paper's third
/// ablation): U(z, x_t) = U(z) + φ(x_t)·z, so the force at a Langevin step gains φ(x_t), with
/// φ = KernelNormalizedLinear(Nin→H) → ReLU → KernelNormalizedLinear(H→H), as the released
/// code's commented `layer_x` (a KernelNormalizedLinear is nn.Linear with every weight row
/// scaled to unit L2 norm, `F.normalize(weight, dim=1)`, floor 1e-12; lfads-torch's).
///
/// φ is computed for every observed bin in two products; the dynamics read the row of the bin
/// the encoder reads at each step. Buffers are time-major (T, B, ·).
public final class InputPotential<S: Scalar> {
    let inputs: Int, hidden: Int, bins: Int
    let precision: Precision
    let weight1: ParameterSlot, bias1: ParameterSlot, weight2: ParameterSlot, bias2: ParameterSlot
    /// The normalised weights and their row norms.
    let normalised1: Buffer<S>, normalised2: Buffer<S>       // (H, Nin), (H, H)
    let norms1: Buffer<S>, norms2: Buffer<S>                 // (H) each
    let preActivation: Buffer<S>, activation: Buffer<S>      // (T, B, H) each
    /// φ(x_t) for every observed bin                         // (T, B, H)
    public let drive: Buffer<S>
    /// d loss / d φ, filled by the dynamics' backward         // (T, B, H)
    public let dDrive: Buffer<S>
    let dActivation: Buffer<S>                               // (T, B, H)
    let dNormalised1: Buffer<S>, dNormalised2: Buffer<S>

    static var normFloor: S { 1e-12 }

    public init(config: ModelConfig, dims: DataDims, maxBatch: Int, layout: ParameterLayout) {
        inputs = dims.heldIn
        hidden = config.hidden
        bins = dims.bins
        precision = config.precision
        weight1 = layout.slot("potential.layer_x.0.weight")
        bias1 = layout.slot("potential.layer_x.0.bias")
        weight2 = layout.slot("potential.layer_x.2.weight")
        bias2 = layout.slot("potential.layer_x.2.bias")
        let h = hidden, n = bins * maxBatch * h
        normalised1 = Buffer(count: h * inputs)
        normalised2 = Buffer(count: h * h)
        norms1 = Buffer(count: h)
        norms2 = Buffer(count: h)
        preActivation = Buffer(count: n)
        activation = Buffer(count: n)
        drive = Buffer(count: n)
        dDrive = Buffer(count: n)
        dActivation = Buffer(count: n)
        dNormalised1 = Buffer(count: h * inputs)
        dNormalised2 = Buffer(count: h * h)
    }

    /// W / max(‖W_row‖, 1e-12), row by row, into `out`; the norms into `norms`.
    static func normalise(_ w: UnsafePointer<S>, rows: Int, columns: Int, into out: UnsafeMutablePointer<S>, norms: UnsafeMutablePointer<S>) {
        for r in 0..<rows {
            var sq: S = 0
            for c in 0..<columns { sq += w[r * columns + c] * w[r * columns + c] }
            let norm = max(sq.squareRoot(), normFloor)
            norms[r] = norm
            for c in 0..<columns { out[r * columns + c] = w[r * columns + c] / norm }
        }
    }

    /// Through Ŵ = W / max(‖W_row‖, ε): dW += (dŴ − Ŵ ⟨Ŵ, dŴ⟩_row) / ‖W_row‖ above the floor,
    /// dŴ / ε below it.
    static func normaliseBackward(_ dHat: UnsafePointer<S>, hat: UnsafePointer<S>, weight w: UnsafePointer<S>,
                                  norms: UnsafePointer<S>, rows: Int, columns: Int, into dw: UnsafeMutablePointer<S>) {
        for r in 0..<rows {
            var sq: S = 0
            for c in 0..<columns { sq += w[r * columns + c] * w[r * columns + c] }
            var dot: S = 0
            if sq.squareRoot() > normFloor { for c in 0..<columns { dot += hat[r * columns + c] * dHat[r * columns + c] } }
            for c in 0..<columns {
                let i = r * columns + c
                dw[i] += (dHat[i] - hat[i] * dot) / norms[r]
            }
        }
    }

    /// Overwrites `drive` (T, B, H) with φ of the input `inputScale`·`x` (T, B, Nin).
    public func forward(x: UnsafePointer<S>, inputScale: S = 1, batch: Int, params: ParameterSet<S>) {
        let h = hidden, rows = bins * batch
        Self.normalise(params.value(weight1), rows: h, columns: inputs, into: normalised1.ptr, norms: norms1.ptr)
        Self.normalise(params.value(weight2), rows: h, columns: h, into: normalised2.ptr, norms: norms2.ptr)
        Linear.forward(y: preActivation.ptr, x: x, weight: normalised1.ptr, bias: params.value(bias1),
                       rows: rows, inDim: inputs, outDim: h, precision: precision, inputScale: inputScale)
        for i in 0..<(rows * h) { activation[i] = max(preActivation[i], 0) }
        Linear.forward(y: drive.ptr, x: activation.ptr, weight: normalised2.ptr, bias: params.value(bias2),
                       rows: rows, inDim: h, outDim: h, precision: precision)
    }

    /// Accumulates into the potential.layer_x.* gradients from `dDrive`.
    public func backward(x: UnsafePointer<S>, inputScale: S = 1, batch: Int, params: ParameterSet<S>) {
        let h = hidden, rows = bins * batch
        dNormalised1.zero()
        dNormalised2.zero()
        dActivation.ptr.update(repeating: 0, count: rows * h)
        Linear.backward(dx: dActivation.ptr, dWeight: dNormalised2.ptr, dBias: params.grad(bias2), dy: dDrive.ptr,
                        x: activation.ptr, weight: normalised2.ptr, rows: rows, inDim: h, outDim: h, precision: precision)
        for i in 0..<(rows * h) where preActivation[i] <= 0 { dActivation[i] = 0 }
        Linear.backward(dx: nil, dWeight: dNormalised1.ptr, dBias: params.grad(bias1), dy: dActivation.ptr,
                        x: x, weight: normalised1.ptr, rows: rows, inDim: inputs, outDim: h, precision: precision,
                        inputScale: inputScale)
        Self.normaliseBackward(dNormalised2.ptr, hat: normalised2.ptr, weight: params.value(weight2), norms: norms2.ptr,
                               rows: h, columns: h, into: params.grad(weight2))
        Self.normaliseBackward(dNormalised1.ptr, hat: normalised1.ptr, weight: params.value(weight1), norms: norms1.ptr,
                               rows: h, columns: inputs, into: params.grad(weight1))
    }
}
