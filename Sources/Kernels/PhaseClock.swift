#if canImport(Glibc)
import Glibc
#endif

/// Wall time per phase of a training step, for `lflow-dist bench`. The model marks the end of
/// each phase; a nil clock (training) costs one optional check per phase.
public final class PhaseClock {
    public enum Phase: Int, CaseIterable, Sendable {
        case encoder, dynamics, decoder, readoutLoss
        case readoutBackward, decoderBackward, dynamicsBackward, encoderBackward
        case rankWait, allreduce, optimiser

        public var name: String {
            switch self {
            case .encoder: "encoder (coordinated dropout + GRU)"
            case .dynamics: "posterior + potential + Langevin"
            case .decoder: "decoder (Transformer)"
            case .readoutLoss: "readout + loss"
            case .readoutBackward: "backward: readout + loss"
            case .decoderBackward: "backward: decoder"
            case .dynamicsBackward: "backward: Langevin + potential + posterior"
            case .encoderBackward: "backward: encoder"
            case .rankWait: "waiting for the slowest rank"
            case .allreduce: "allreduce"
            case .optimiser: "optimiser (zero, clip, Adam)"
            }
        }
    }

    public private(set) var seconds = [Double](repeating: 0, count: Phase.allCases.count)
    var last: UInt64 = 0

    public init() {}

    static func now() -> UInt64 {
        var t = timespec()
        clock_gettime(CLOCK_MONOTONIC, &t)
        return UInt64(t.tv_sec) * 1_000_000_000 + UInt64(t.tv_nsec)
    }

    /// Starts timing: the next `mark` charges the time since now.
    public func start() { last = Self.now() }

    /// Charges the time since the previous mark (or `start`) to `phase`.
    public func mark(_ phase: Phase) {
        let t = Self.now()
        seconds[phase.rawValue] += Double(t &- last) * 1e-9
        last = t
    }

    public func reset() { seconds = seconds.map { _ in 0 } }
}
