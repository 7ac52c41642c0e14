/// 64-bit FNV-1a: the project's one non-cryptographic digest (tensor checksums, the replica
/// agreement check, data-file fingerprints).
public struct FNV1a: Sendable {
    public private(set) var value: UInt64 = 0xcbf2_9ce4_8422_2325
    public init() {}

    public mutating func combine(_ bytes: UnsafeRawBufferPointer) {
        for byte in bytes { value = (value ^ UInt64(byte)) &* 0x100_0000_01b3 }
    }

    public var hex: String { String(value, radix: 16) }
}
