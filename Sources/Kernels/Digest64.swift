/// The project's one non-cryptographic 64-bit digest (tensor checksums in checkpoints, the
/// replica agreement check, data-file fingerprints).
///
/// FNV-1a's step, state = (state ⊕ word) · 0x100000001b3, taken over 8-byte little-endian words
/// (single bytes for a tail), then splitmix64's finaliser. Each step is a bijection of the
/// state, so any single changed word changes the digest; a word per multiply hashes ~1 GB/s,
/// eight times byte-wise FNV-1a (which cost half the time of a paper-size checkpoint write).
/// The digest depends on how the bytes are split between `combine` calls; every caller uses
/// a fixed split.
public struct Digest64: Sendable {
    var state: UInt64 = 0xcbf2_9ce4_8422_2325
    static let prime: UInt64 = 0x100_0000_01b3

    public init() {}

    public mutating func combine(_ bytes: UnsafeRawBufferPointer) {
        let words = bytes.count / 8
        var h = state
        for i in 0..<words {
            h = (h ^ UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: 8 * i, as: UInt64.self))) &* Self.prime
        }
        for byte in bytes[(8 * words)...] { h = (h ^ UInt64(byte)) &* Self.prime }
        state = h
    }

    /// The finished digest.
    public var value: UInt64 {
        var z = state &+ 0x9E37_79B9_7F4A_7C15
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    public var hex: String { String(value, radix: 16) }
}
