import Kernels

/// The coupled-oscillator potential and its force matrix.
///
/// Ŵ = W / max(‖W_oi·‖₂, 1e-8) (norm over the K taps); Z = z as G channels of length L;
/// V = conv1d(Z, Ŵ, zero padding ⌊K/2⌋) (cross-correlation, as PyTorch);
/// U = κ Σ_o Σ_j ⟨V_o, Z_j⟩ (`allPairs`) or κ Σ_o ⟨V_o, Z_o⟩ (`diagonal`).
///
/// U = κ zᵀ B z with B[(j,l),(i,l')] = Σ_o Ŵ[o,i,l'-l+P] (allPairs; the same for every j) or
/// Ŵ[j,i,l'-l+P] (diagonal), so the force f = ∂U/∂z = A z with A = κ (B + Bᵀ), symmetric H×H.
/// A is built once per forward pass and applied with one GEMM per Langevin step.
public final class CoupledOscillatorPotential<S: Scalar> {
    let groups: Int, taps: Int, length: Int, hidden: Int
    let form: Config.Potential
    let coupling: S
    public let forceMatrix: Buffer<S>     // A (H, H), symmetric
    let normalised: Buffer<S>            // Ŵ (G, G, K)
    let norms: Buffer<S>                 // max(‖W_oi‖, 1e-8) (G, G)
    let dNormalised: Buffer<S>           // (G, G, K) scratch
    let kernel: ParameterSlot

    static var normFloor: S { 1e-8 }

    public init(config: Config, layout: ParameterLayout) {
        kernel = layout.slot("potential.conv_z")
        groups = config.groups
        taps = config.kernelSize
        length = config.groupLength
        hidden = config.hidden
        form = config.potential
        coupling = S(config.coupling)
        forceMatrix = Buffer(count: hidden * hidden)
        normalised = Buffer(count: groups * groups * taps)
        norms = Buffer(count: groups * groups)
        dNormalised = Buffer(count: groups * groups * taps)
    }

    /// Overwrites `forceMatrix` from `potential.conv_z`.
    public func build(params: ParameterSet<S>) {
        let g = groups, k = taps, l = length, h = hidden, pad = taps / 2
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
        // A = κ (B + Bᵀ): add each B entry at (row, col) and at (col, row).
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
                    let value = coupling * wHat
                    for pos in 0..<l {
                        let other = pos + tap - pad
                        guard other >= 0 && other < l else { continue }
                        let row = j * l + pos, col = i * l + other
                        a[row * h + col] += value
                        a[col * h + row] += value
                    }
                }
            }
        }
    }

    /// Accumulates into the `potential.conv_z` gradient from dA (H, H).
    public func backward(dForceMatrix dA: UnsafePointer<S>, params: ParameterSet<S>) {
        let g = groups, k = taps, l = length, h = hidden, pad = taps / 2
        // dŴ from dA through A = κ(B + Bᵀ): each B entry receives κ (dA[row,col] + dA[col,row]).
        dNormalised.zero()
        for j in 0..<g {
            for i in 0..<g {
                for tap in 0..<k {
                    var acc: S = 0
                    for pos in 0..<l {
                        let other = pos + tap - pad
                        guard other >= 0 && other < l else { continue }
                        let row = j * l + pos, col = i * l + other
                        acc += dA[row * h + col] + dA[col * h + row]
                    }
                    acc *= coupling
                    switch form {
                    case .allPairs:
                        for o in 0..<g { dNormalised[(o * g + i) * k + tap] += acc }
                    case .diagonal:
                        dNormalised[(j * g + i) * k + tap] += acc
                    }
                }
            }
        }
        // Through Ŵ = W / max(‖W‖, ε): dW = (dŴ - Ŵ ⟨Ŵ, dŴ⟩) / ‖W‖ above the floor, dŴ / ε below.
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
