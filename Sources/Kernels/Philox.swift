import CKernels
import RealModule

/// Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC 2011).
///
/// A counter-based generator: each draw is a pure function of a 128-bit counter and a 64-bit
/// key, with no state to carry. That is what lets the same trial see the same noise at any
/// world size, and lets a checkpoint resume the random stream from counters alone.
public enum Philox {
    @inlinable @inline(__always)
    public static func block(_ c: SIMD4<UInt32>, key: SIMD2<UInt32>) -> SIMD4<UInt32> {
        // Plain scalars: SIMD4 lane shuffles per round cost more than the arithmetic.
        var c0 = c[0], c1 = c[1], c2 = c[2], c3 = c[3]
        var k0 = key[0], k1 = key[1]
        for _ in 0..<10 {
            let p0 = UInt64(0xD251_1F53) &* UInt64(c0)
            let p1 = UInt64(0xCD9E_8D57) &* UInt64(c2)
            let n0 = UInt32(truncatingIfNeeded: p1 >> 32) ^ c1 ^ k0
            let n2 = UInt32(truncatingIfNeeded: p0 >> 32) ^ c3 ^ k1
            c1 = UInt32(truncatingIfNeeded: p1)
            c3 = UInt32(truncatingIfNeeded: p0)
            c0 = n0
            c2 = n2
            k0 &+= 0x9E37_79B9
            k1 &+= 0xBB67_AE85
        }
        return SIMD4(c0, c1, c2, c3)
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
    // 15 to 26 were the dropouts of decoder layers 2 to 4 (decoderLayers, retired); the values
    // below keep their numbers, so every stream draws what it drew.
    /// The dropout of the reverse GRU of a bidirectional encoder.
    case encoderReverseDropout = 27
    /// The per-step posterior's innovation samples (`posterior: perStep`).
    case innovation = 28
    /// A search's own draws (PBT's pairings, perturbations and initial samples).
    case search = 29
    /// The held-out neurons of a spikes file with no `heldout` mask (`RecordingFile`).
    case heldOutSplit = 30
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

    /// The counter of one block: (block, trial, step, purpose << 24 | epoch).
    @inlinable @inline(__always)
    func counter(block: Int, trial: Int) -> SIMD4<UInt32> {
        SIMD4<UInt32>(
            UInt32(truncatingIfNeeded: block), UInt32(truncatingIfNeeded: trial),
            UInt32(truncatingIfNeeded: step),
            (purpose.rawValue << 24) | UInt32(truncatingIfNeeded: epoch & 0xFF_FFFF))
    }

    /// The key: the seed's two halves.
    @inlinable
    var key: SIMD2<UInt32> { SIMD2(UInt32(truncatingIfNeeded: seed), UInt32(truncatingIfNeeded: seed >> 32)) }

    @inlinable @inline(__always)
    func words(block: Int, trial: Int) -> SIMD4<UInt32> {
        Philox.block(counter(block: block, trial: trial), key: key)
    }

    /// Uniform in [0, 1) with 32 random bits.
    @inlinable
    static func unit(_ w: UInt32) -> Double { Double(w) * 0x1p-32 }

    /// The one walk over draws `first`..<`first + count` of `trial` that every fill shares: draw
    /// n is word n % 4 of Philox block n / 4. `perBlock` turns a block's four words into four
    /// values once; `store(i, values, j)` writes output i from word j of that block. Whole
    /// blocks are stored unrolled (a per-draw block check cost 15% of the decoder's forward).
    /// Blocks made per call of the vectorised generator: 1 KB of words, the most that
    /// `withUnsafeTemporaryAllocation` keeps on the stack (at 4 KB it called malloc per fill,
    /// 3.5% of a main-job step).
    @usableFromInline static let chunkBlocks = 64

    @inlinable @inline(__always)
    func forEachDraw<V>(trial: Int, first: Int, count: Int, perBlock: (SIMD4<UInt32>) -> V,
                        _ store: (_ i: Int, _ values: V, _ j: Int) -> Void) {
        var i = 0, block = first / 4
        if first % 4 != 0 {                                  // the rest of a started block
            let v = perBlock(words(block: block, trial: trial))
            for j in (first % 4)..<4 where i < count {
                store(i, v, j)
                i += 1
            }
            block += 1
        }
        // Whole blocks, their words made sixteen at a time where the CPU can (CKernels), the
        // rest by `words`: the same words either way.
        let whole = (count - i) / 4
        if whole > 0 {
            let c = counter(block: 0, trial: trial), k = key
            withUnsafeTemporaryAllocation(of: UInt32.self, capacity: 4 * Self.chunkBlocks) { scratch in
                let w = scratch.baseAddress!
                var done = 0
                while done < whole {
                    let n = min(Self.chunkBlocks, whole - done)
                    let fast = lf_philox_blocks(UInt32(truncatingIfNeeded: block + done), c[1], c[2], c[3], k[0], k[1], n, w)
                    for q in fast..<n {
                        let v = words(block: block + done + q, trial: trial)
                        w[4 * q] = v[0]; w[4 * q + 1] = v[1]; w[4 * q + 2] = v[2]; w[4 * q + 3] = v[3]
                    }
                    for q in 0..<n {
                        let v = perBlock(SIMD4(w[4 * q], w[4 * q + 1], w[4 * q + 2], w[4 * q + 3]))
                        store(i, v, 0)
                        store(i + 1, v, 1)
                        store(i + 2, v, 2)
                        store(i + 3, v, 3)
                        i += 4
                    }
                    done += n
                }
            }
            block += whole
        }
        if i < count {                                       // the start of a last block
            let v = perBlock(words(block: block, trial: trial))
            for j in 0..<(count - i) { store(i + j, v, j) }
        }
    }

    /// Overwrites `out[0..<count]` with U[0, 1) draws number `first`..<`first + count` of
    /// `trial`.
    public func fillUniform<S: Scalar>(trial: Int, first: Int = 0, into out: UnsafeMutablePointer<S>, count: Int) {
        forEachDraw(trial: trial, first: first, count: count, perBlock: { $0 }) { i, w, j in out[i] = S(Self.unit(w[j])) }
    }

    /// Overwrites `out[0..<count]` with an inverted-dropout mask from uniform draws number
    /// `first`..<`first + count` of `trial`: 0 where the draw's 32 bits are below `threshold`
    /// (probability threshold / 2³²), else `keepValue`. Compares integers: no conversion per
    /// element.
    @inlinable
    public func fillDropout<S: Scalar>(trial: Int, first: Int = 0, into out: UnsafeMutablePointer<S>, count: Int,
                                       threshold: UInt32, keepValue: S) {
        forEachDraw(trial: trial, first: first, count: count, perBlock: { $0 }) { i, w, j in
            out[i] = w[j] < threshold ? 0 : keepValue
        }
    }

    /// Overwrites `out[0..<count]` with keep flags from uniform draws number `first`..<`first +
    /// count` of `trial`: 0 where the draw's 32 bits are below `threshold`, else 1 (the same
    /// draws and comparison as `fillDropout`).
    /// Whole blocks go straight from the generator to flags where the CPU can (`lf_philox_keep`,
    /// AVX2: no words in memory between them), the rest through `forEachDraw`.
    @inlinable
    public func fillKept(trial: Int, first: Int = 0, into out: UnsafeMutablePointer<UInt8>, count: Int, threshold: UInt32) {
        let head = min(count, (4 - first % 4) % 4)           // the rest of a started block
        var done = head
        let whole = (count - head) / 4
        if whole > 0 {
            let c = counter(block: 0, trial: trial), k = key
            done += 4 * lf_philox_keep(UInt32(truncatingIfNeeded: (first + head) / 4), c[1], c[2], c[3], k[0], k[1],
                                       whole, threshold, out + head)
        }
        let rest = done
        if head > 0 {
            forEachDraw(trial: trial, first: first, count: head, perBlock: { $0 }) { i, w, j in out[i] = w[j] < threshold ? 0 : 1 }
        }
        if rest < count {
            forEachDraw(trial: trial, first: first + rest, count: count - rest, perBlock: { $0 }) { i, w, j in
                out[rest + i] = w[j] < threshold ? 0 : 1
            }
        }
    }

    /// The `fillDropout` threshold for drop probability `rate` in [0, 1): ⌈rate·2³²⌉.
    public static func dropoutThreshold(rate: Double) -> UInt32 {
        UInt32(min((rate * 0x1p32).rounded(.up), Double(UInt32.max)))
    }

    /// Overwrites `out[0..<count]` with N(0, 1) draws number `first`..<`first + count` of
    /// `trial`: Box–Muller on the words of block n / 4, the cosine of a pair at even n, its
    /// sine at odd n. Float buffers get the same Box–Muller in single precision (a Double log,
    /// sin and cos per pair cost 16 ns per normal; the result is stored as Float either way).
    public func fillNormal<S: Scalar>(trial: Int, first: Int = 0, into out: UnsafeMutablePointer<S>, count: Int) {
        if S.self == Float.self {
            forEachDraw(trial: trial, first: first, count: count, perBlock: Self.boxMuller(Float.self)) { i, v, j in out[i] = S(v[j]) }
        } else {
            forEachDraw(trial: trial, first: first, count: count, perBlock: Self.boxMuller(Double.self)) { i, v, j in out[i] = S(v[j]) }
        }
    }

    /// Four N(0, 1) values from one block's words, computed in `T`: two pairs (cos, sin).
    @inlinable @inline(__always)
    static func boxMuller<T: Real & BinaryFloatingPoint & SIMDScalar>(_: T.Type) -> (SIMD4<UInt32>) -> SIMD4<T> {
        { w in
            var normals = SIMD4<T>()
            for pair in 0..<2 {
                // u1 in (0, 1] so that the log is finite.
                let u1 = T((Double(w[2 * pair]) + 1) * 0x1p-32)
                let radius = (-2 * T.log(u1)).squareRoot()
                let angle = 2 * T.pi * T(Self.unit(w[2 * pair + 1]))
                normals[2 * pair] = radius * T.cos(angle)
                normals[2 * pair + 1] = radius * T.sin(angle)
            }
            return normals
        }
    }
}

/// A seeded permutation of 0..<n (Fisher–Yates over keyed Philox uniforms).
public func seededPermutation(_ n: Int, seed: Int, purpose: NoisePurpose, key: Int) -> [Int] {
    var order = Array(0..<n)
    guard n > 1 else { return order }
    let draws = Buffer<Double>(count: n)
    NoiseStream(seed: UInt64(seed), purpose: purpose).fillUniform(trial: key, into: draws.ptr, count: n)
    for i in stride(from: n - 1, to: 0, by: -1) {
        let j = min(Int(draws[i] * Double(i + 1)), i)
        order.swapAt(i, j)
    }
    return order
}
