import RealModule

/// Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC 2011).
///
/// A counter-based generator: each draw is a pure function of a 128-bit counter and a 64-bit
/// key, with no state to carry. That is what lets the same trial see the same noise at any
/// world size, and lets a checkpoint resume the random stream from counters alone.
public enum Philox {
    @inlinable
    public static func block(_ c: SIMD4<UInt32>, key: SIMD2<UInt32>) -> SIMD4<UInt32> {
        var c = c
        var k = key
        for _ in 0..<10 {
            let p0 = UInt64(0xD251_1F53) &* UInt64(c[0])
            let p1 = UInt64(0xCD9E_8D57) &* UInt64(c[2])
            let hi0 = UInt32(truncatingIfNeeded: p0 >> 32), lo0 = UInt32(truncatingIfNeeded: p0)
            let hi1 = UInt32(truncatingIfNeeded: p1 >> 32), lo1 = UInt32(truncatingIfNeeded: p1)
            c = SIMD4(hi1 ^ c[1] ^ k[0], lo1, hi0 ^ c[3] ^ k[1], lo0)
            k &+= SIMD2(0x9E37_79B9, 0xBB67_AE85)
        }
        return c
    }
}

/// What a stream of random numbers is for. Distinct purposes never share counters.
public enum NoisePurpose: UInt32, Sendable {
    case initialisation = 1
    case coordinatedDropoutKeep, coordinatedDropoutPass
    case encoderDropout
    case posteriorZ, posteriorV
    case langevin
    case attentionDropout, attentionOutputDropout, feedForwardDropout, feedForwardOutputDropout
    case shuffle, validationSplit
    case synthetic
}

/// A keyed random stream: draws are addressed by (seed, purpose, epoch, step, trial, index).
///
/// Counter layout of one Philox block: (index / 4, trial, step, purpose << 24 | epoch), key =
/// seed. Each block yields four uniforms, or two normals by Box–Muller.
public struct NoiseStream: Sendable {
    public let seed: UInt64
    public let purpose: NoisePurpose
    public let epoch: Int
    public let step: Int

    public init(seed: UInt64, purpose: NoisePurpose, epoch: Int = 0, step: Int = 0) {
        self.seed = seed
        self.purpose = purpose
        self.epoch = epoch
        self.step = step
    }

    @inlinable
    func words(block: Int, trial: Int) -> SIMD4<UInt32> {
        let c = SIMD4<UInt32>(
            UInt32(truncatingIfNeeded: block), UInt32(truncatingIfNeeded: trial),
            UInt32(truncatingIfNeeded: step),
            (purpose.rawValue << 24) | UInt32(truncatingIfNeeded: epoch & 0xFF_FFFF))
        let key = SIMD2<UInt32>(UInt32(truncatingIfNeeded: seed), UInt32(truncatingIfNeeded: seed >> 32))
        return Philox.block(c, key: key)
    }

    /// Uniform in [0, 1) with 32 random bits.
    @inlinable
    static func unit(_ w: UInt32) -> Double { Double(w) * 0x1p-32 }

    /// Overwrites `out[0..<count]` with U[0, 1) draws number 0..<count of `trial`.
    public func fillUniform<S: Scalar>(trial: Int, into out: UnsafeMutablePointer<S>, count: Int) {
        var i = 0
        var block = 0
        while i < count {
            let w = words(block: block, trial: trial)
            for j in 0..<4 where i + j < count { out[i + j] = S(Self.unit(w[j])) }
            i += 4
            block += 1
        }
    }

    /// Overwrites `out[0..<count]` with N(0, 1) draws number 0..<count of `trial`.
    public func fillNormal<S: Scalar>(trial: Int, into out: UnsafeMutablePointer<S>, count: Int) {
        var i = 0
        var block = 0
        while i < count {
            let w = words(block: block, trial: trial)
            for pair in 0..<2 where i + 2 * pair < count {
                // u1 in (0, 1] so that the log is finite.
                let u1 = (Double(w[2 * pair]) + 1) * 0x1p-32
                let u2 = Self.unit(w[2 * pair + 1])
                let radius = (-2 * Double.log(u1)).squareRoot()
                let angle = 2 * Double.pi * u2
                out[i + 2 * pair] = S(radius * Double.cos(angle))
                if i + 2 * pair + 1 < count { out[i + 2 * pair + 1] = S(radius * Double.sin(angle)) }
            }
            i += 4
            block += 1
        }
    }
}
