import Distributed
import Foundation
import Model
import Support
import Training

/// One buffer size's allreduce, timed on one path: what the communication of one training step
/// costs on this network (`lflow-dist bench --allreduce` under mpirun).
public struct AllreduceResult: Codable, Sendable {
    /// The bench size whose flat gradient buffer this is ("paper", "small", …), or "floats".
    public var name: String
    public var floats: Int
    public var bytes: Int
    public var ranks: Int
    /// "trainer": the trainer's own call (`Communicator.allreduceSum` with the collective
    /// watchdog: MPI_Iallreduce in place, polled); "blocking": the same call without a deadline
    /// (MPI_Allreduce in place); "ordered": the gradient reduction training uses
    /// (`Communicator.allreduceSumInRankOrder` with the watchdog: MPI_Ialltoallv, the sum in rank
    /// order, MPI_Iallgatherv, polled), the whole buffer at once.
    public var path: String
    /// Seconds of each timed repetition, the slowest rank's.
    public var seconds: [Double]
    public var median: Double
    public var min: Double
    public var max: Double
    /// bytes / median, GB/s (10⁹ bytes): the buffer's size over the time, whatever the algorithm.
    public var algorithmGBps: Double
    /// Every element of the result equalled the exact sum on every rank.
    public var checked: Bool
}

public struct AllreduceReport: Codable, Sendable {
    public var ranks: Int
    /// Distinct host names among the ranks.
    public var hosts: Int
    public var repeats: Int
    public var warmup: Int
    public var results: [AllreduceResult]
}

extension Bench {
    /// The length of `size`'s flat gradient buffer: what `TrainingStep` allreduces each step.
    public static func gradientFloats(_ size: BenchSize) -> Int {
        ParameterLayout(config: size.config().model, dims: size.dims).totalCount
    }

    /// Times `Communicator.allreduceSum` of a Float buffer of each length in `buffers` (name,
    /// floats), `repeats` times after `warmup` untimed ones, on each path (see
    /// `AllreduceResult.path`). Each repetition starts after a barrier and lasts until the
    /// slowest rank has its result. Collective: every rank calls it; every rank gets the report.
    public static func allreduce(buffers: [(name: String, floats: Int)], repeats: Int, warmup: Int, comm: MPICommunicator,
                                 watchdogSeconds: Double) throws -> AllreduceReport {
        var results: [AllreduceResult] = []
        for (name, floats) in buffers {
            let buffer = UnsafeMutablePointer<Float>.allocate(capacity: Swift.max(floats, 1))
            defer { buffer.deallocate() }
            for path in ["trainer", "blocking", "ordered"] {
                comm.deadline = path == "blocking" ? nil : CollectiveDeadline(seconds: watchdogSeconds)
                var times: [Double] = []
                var exact = true
                for r in 0..<(warmup + repeats) {
                    // Rank r contributes r + 1 (small integers: the sum is exact in Float).
                    buffer.update(repeating: Float(comm.rank + 1), count: floats)
                    try comm.barrier()
                    let started = now()
                    if path == "ordered" {
                        try comm.allreduceSumInRankOrder(buffer, count: floats)
                    } else {
                        try comm.allreduceSum(buffer, count: floats)
                    }
                    let elapsed = now() - started
                    if r >= warmup { times.append(elapsed) }
                    let expected = Float(comm.size * (comm.size + 1) / 2)
                    if floats > 0 && (buffer[0] != expected || buffer[floats - 1] != expected || buffer[floats / 2] != expected) {
                        exact = false
                    }
                }
                try times.withUnsafeMutableBufferPointer { try comm.allreduceMax($0.baseAddress!, count: $0.count) }
                var flags = [exact ? 0.0 : 1.0]
                try flags.withUnsafeMutableBufferPointer { try comm.allreduceMax($0.baseAddress!, count: 1) }
                let med = median(times)
                results.append(AllreduceResult(name: name, floats: floats, bytes: 4 * floats, ranks: comm.size, path: path,
                                               seconds: times, median: med, min: times.min() ?? 0, max: times.max() ?? 0,
                                               algorithmGBps: med > 0 ? Double(4 * floats) / med / 1e9 : 0, checked: flags[0] == 0))
            }
        }
        comm.deadline = CollectiveDeadline(seconds: watchdogSeconds)
        return AllreduceReport(ranks: comm.size, hosts: try comm.hostCount(), repeats: repeats, warmup: warmup, results: results)
    }

    /// `bench --allreduce --check-buckets`: rank r contributes pseudo-random floats of widely
    /// spread magnitudes (so that the order of the sum shows in the bits). The gradient reduction
    /// of the whole buffer must equal the rank-ordered sum ((g₀ + g₁) + g₂) + … exactly, and the
    /// same reduction cut into buckets several ways and handed to the communication thread
    /// (`GradientReduction`, as the backward hands them) must equal it bitwise, with the collective
    /// watchdog and without. MPI's own allreduce, whole and in the same buckets, is compared for
    /// the record. Collective; `ok` is the same on every rank.
    public static func checkBuckets(floats n: Int, comm: Communicator) throws -> (ok: Bool, report: String) {
        let p = comm.size
        func value(_ rank: Int, _ i: Int) -> Float {
            var x = UInt64(truncatingIfNeeded: i) &* 0x9E37_79B9_7F4A_7C15 &+ UInt64(rank + 1) &* 0xD1B5_4A32_D192_ED03
            x ^= x >> 31; x = x &* 0xBF58_476D_1CE4_E5B9; x ^= x >> 29
            let mantissa = Float(x >> 40) / Float(1 << 24) + 0.5                 // [0.5, 1.5)
            let exponent = Int((x >> 8) & 31) - 16                              // 2^-16 … 2^15
            return (x & 1 == 0 ? 1 : -1) * Float(sign: .plus, exponent: exponent, significand: mantissa)
        }
        var expected = [Float](repeating: 0, count: n)
        for i in 0..<n {
            var s = value(0, i)
            for r in 1..<Swift.max(p, 1) { s += value(r, i) }
            expected[i] = s
        }
        let mine = (0..<n).map { value(comm.rank, $0) }
        let buffer = UnsafeMutablePointer<Float>.allocate(capacity: Swift.max(n, 1))
        defer { buffer.deallocate() }
        func load() { mine.withUnsafeBufferPointer { buffer.update(from: $0.baseAddress!, count: n) } }
        func differing(_ reference: [Float]) -> Int {
            (0..<n).reduce(0) { $0 + (buffer[$1].bitPattern == reference[$1].bitPattern ? 0 : 1) }
        }
        // Suffix cuts, handed over falling, as the backward does: one bucket, halves, the
        // paper model's proportions, ragged ones (a bucket smaller than the ranks included).
        let cuts: [[Int]] = [[], [n / 2], [n - 1, 1], [n * 96 / 100, n * 18 / 100, n * 8 / 100], [n - 2, n * 2 / 3, 12_345 % n, 3],
                             stride(from: n - Swift.max(n / 16, 1), to: 0, by: -Swift.max(n / 16, 1)).map { $0 }]
        var lines = ["gradient reduction of \(n) floats on \(p) rank\(p == 1 ? "" : "s"), every element summed in rank order:"]
        var bad = 0
        let saved = comm.deadline
        defer { comm.deadline = saved }
        for watchdog in [true, false] {
            comm.deadline = watchdog ? CollectiveDeadline(seconds: 60) : nil
            let label = watchdog ? "with the watchdog" : "without it"
            load()
            try comm.allreduceSumInRankOrder(buffer, count: n)
            let whole = differing(expected)
            bad += whole
            lines.append("  whole buffer (\(label)): \(whole) of \(n) elements differ from the rank-ordered sum")
            for cut in cuts {
                load()
                // Handed over as the backward does: group by group, falling; and, as a rank
                // without a slice does, all at once at the end (the same buckets).
                let reduction = GradientReduction(comm: comm, buffer: buffer, count: n, bucketStarts: cut, overlap: true)
                try reduction.begin()
                if comm.rank != 1 { for offset in cut { reduction.final(from: offset) } }
                try reduction.finish()
                let d = differing(expected)
                bad += d
                lines.append("  buckets from \(cut.isEmpty ? "[0]" : "\(cut + [0])") (communication thread, \(label)): \(d) differ")
            }
        }
        // MPI's own allreduce, for the record: its order depends on where an element falls.
        comm.deadline = nil
        load()
        try comm.allreduceSum(buffer, count: n)
        let mpiWhole = (0..<n).map { buffer[$0] }
        lines.append("  MPI_Allreduce whole: \(differing(expected)) differ from the rank-ordered sum")
        load()
        var upper = n
        for offset in cuts[3] + [0] {
            try comm.allreduceSum(buffer + offset, count: upper - offset)
            upper = offset
        }
        lines.append("  MPI_Allreduce in the buckets from \(cuts[3] + [0]): \(differing(mpiWhole)) differ from MPI_Allreduce whole")
        var flag = [Double(bad)]
        try flag.withUnsafeMutableBufferPointer { try comm.allreduceMax($0.baseAddress!, count: 1) }
        let ok = flag[0] == 0
        lines.append(ok ? "bitwise equal on every rank: yes" : "bitwise equal on every rank: NO")
        return (ok, lines.joined(separator: "\n"))
    }

    /// Rank 0's lines for the report.
    public static func allreduceTable(_ report: AllreduceReport) -> String {
        var lines = ["allreduce of Float buffers on \(report.ranks) rank\(report.ranks == 1 ? "" : "s") over \(report.hosts) host\(report.hosts == 1 ? "" : "s"), \(report.warmup) + \(report.repeats) repetitions; seconds are the slowest rank's",
                     "buffer   floats           MB   path      median ms   (min–max ms)              GB/s (bytes/median)  exact"]
        for r in report.results {
            let spread = String(format: "(%.3f–%.3f)", 1000 * r.min, 1000 * r.max)
            lines.append(r.name.padding(toLength: 9, withPad: " ", startingAt: 0)
                         + String(format: "%-11d %7.3f   ", r.floats, Double(r.bytes) / 1e6)
                         + r.path.padding(toLength: 9, withPad: " ", startingAt: 0)
                         + String(format: "%10.3f   ", 1000 * r.median) + spread.padding(toLength: 23, withPad: " ", startingAt: 0)
                         + String(format: "%10.3f             ", r.algorithmGBps) + (r.checked ? "yes" : "NO"))
        }
        return lines.joined(separator: "\n")
    }
}
