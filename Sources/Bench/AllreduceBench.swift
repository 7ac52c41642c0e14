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
    /// (MPI_Allreduce in place).
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
    /// floats), `repeats` times after `warmup` untimed ones, on both paths (see
    /// `AllreduceResult.path`). Each repetition starts after a barrier and lasts until the
    /// slowest rank has its result. Collective: every rank calls it; every rank gets the report.
    public static func allreduce(buffers: [(name: String, floats: Int)], repeats: Int, warmup: Int, comm: MPICommunicator,
                                 watchdogSeconds: Double) throws -> AllreduceReport {
        var results: [AllreduceResult] = []
        for (name, floats) in buffers {
            let buffer = UnsafeMutablePointer<Float>.allocate(capacity: Swift.max(floats, 1))
            defer { buffer.deallocate() }
            for path in ["trainer", "blocking"] {
                comm.deadline = path == "trainer" ? CollectiveDeadline(seconds: watchdogSeconds) : nil
                var times: [Double] = []
                var exact = true
                for r in 0..<(warmup + repeats) {
                    // Rank r contributes r + 1 (small integers: the sum is exact in Float).
                    buffer.update(repeating: Float(comm.rank + 1), count: floats)
                    try comm.barrier()
                    let started = now()
                    try comm.allreduceSum(buffer, count: floats)
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
        return AllreduceReport(ranks: comm.size, hosts: try distinctHosts(comm), repeats: repeats, warmup: warmup, results: results)
    }

    /// How many distinct host names the ranks run on (a hash of each name, gathered).
    static func distinctHosts(_ comm: MPICommunicator) throws -> Int {
        let name = ProcessInfo.processInfo.hostName
        var hash: UInt32 = 2_166_136_261
        for byte in name.utf8 { hash = (hash ^ UInt32(byte)) &* 16_777_619 }
        let mine = [Float(hash >> 8)]                    // 24 bits: exact in a Float
        var all = [Float](repeating: 0, count: comm.size)
        try mine.withUnsafeBufferPointer { m in
            try all.withUnsafeMutableBufferPointer { a in
                try comm.gather(m.baseAddress!, count: 1, counts: Array(repeating: 1, count: comm.size), into: a.baseAddress, root: 0)
            }
        }
        var count = [Double(Set(all).count)]
        try count.withUnsafeMutableBufferPointer { try comm.broadcast($0.baseAddress!, count: 1, root: 0) }
        return Int(count[0])
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
