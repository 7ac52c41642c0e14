import CMPI
import CShims
import Foundation
import Support
#if canImport(Glibc)
import Glibc
#endif

// Distributed: communicators (MPI; size 1 without mpirun on the same path), the collective
// watchdog, preemption signals, and Partition, the one rule for splitting work over ranks. It
// knows nothing of what is being computed.

/// An MPI failure, with MPI's own error text.
public enum CommunicatorFailure {}
public typealias CommunicatorError = Failure<CommunicatorFailure>

/// The collective operations training needs. Every rank must call them in the same order.
public protocol Communicator: AnyObject {
    var rank: Int { get }
    var size: Int { get }
    /// In place: every rank ends with the element-wise sum over ranks.
    func allreduceSum(_ buffer: UnsafeMutablePointer<Float>, count: Int) throws
    func allreduceSum(_ buffer: UnsafeMutablePointer<Double>, count: Int) throws
    /// In place: every rank ends with the element-wise sum over ranks, each element summed in
    /// rank order, ((g₀ + g₁) + g₂) + …, so that an element's result does not depend on how a
    /// buffer is cut into calls (MPI's allreduce sums in an order that depends on where the element
    /// falls). The gradient reduction (GradientReduction.swift).
    /// `spin`: whether the caller waits for the result now (the wait may then spin on the
    /// network); false while it could leave the CPU to other work (a communication thread).
    func allreduceSumInRankOrder(_ buffer: UnsafeMutablePointer<Float>, count: Int, spin: () -> Bool) throws
    /// Whether another thread may call collectives while this one does not (MPI_THREAD_SERIALIZED
    /// or more): the overlapped gradient reduction's communication thread needs it.
    var allowsCommunicationThread: Bool { get }
    /// In place: every rank ends with the element-wise maximum over ranks.
    func allreduceMax(_ buffer: UnsafeMutablePointer<Double>, count: Int) throws
    /// In place: every rank ends with `root`'s values.
    func broadcast(_ buffer: UnsafeMutablePointer<Float>, count: Int, root: Int) throws
    func broadcast(_ buffer: UnsafeMutablePointer<Double>, count: Int, root: Int) throws
    func barrier() throws
    /// Concatenates every rank's `count` floats, in rank order, into `out` on `root` (`counts`
    /// lists every rank's count, the same on every rank; `out` holds their sum and may be nil
    /// elsewhere). MPI_Gatherv.
    func gather(_ buffer: UnsafePointer<Float>, count: Int, counts: [Int], into out: UnsafeMutablePointer<Float>?, root: Int) throws
    /// Collective: ranks passing the same `color` form one new communicator, ranked by `key`
    /// (MPI_Comm_split). Used by `search` to give each group of ranks its own trainer.
    func split(color: Int, key: Int) throws -> Communicator
    /// A barrier that sleeps instead of spinning: it calls `poll` every `interval` seconds
    /// until every rank has arrived. Ranks that finished their share wait here without taking
    /// the CPU from ranks that still compute (a blocking MPI_Barrier busy-polls).
    func barrier(pollingEvery interval: Double, _ poll: () throws -> Void) throws
    /// Ends every rank of the job (a failure on one rank must not leave the others hanging).
    func abort(code: Int32) -> Never
    /// The collective watchdog: when set (and its `seconds` > 0), every collective waits at most
    /// that long, polling a non-blocking operation with short sleeps, and then throws
    /// `CollectiveTimeout`. Nil: blocking collectives, no deadline.
    var deadline: CollectiveDeadline? { get set }
}

/// How long a collective may wait for the other ranks, and what to say when it expires.
public struct CollectiveDeadline: @unchecked Sendable {
    /// Seconds; 0 disables the deadline.
    public var seconds: Double
    /// Where the job stands, for the message (step, newest checkpoint); called only on expiry.
    public var context: () -> String

    public init(seconds: Double, context: @escaping () -> String = { "" }) {
        self.seconds = seconds
        self.context = context
    }

    /// After SIGTERM/SIGUSR1 a collective waits at most this much longer: the scheduler's
    /// KillWait (30 s by default) must not run out while a rank waits for a lost peer.
    public static let graceAfterSignal = 10.0
}

/// A collective did not complete within the watchdog's deadline: another rank or its host is
/// gone (a lost node or link) or stopped. The job cannot continue; the rank exits with
/// `exitCode` without MPI_Finalize (which would wait for the lost rank too).
public struct CollectiveTimeout: Error, CustomStringConvertible {
    /// EX_UNAVAILABLE: a peer is unavailable. Launch/ scripts requeue on it, as on 75.
    public static let exitCode: Int32 = 69
    public let operation: String
    public let waited: Double
    public let limit: Double
    public let rank: Int
    public let size: Int
    public let context: String
    public let signalled: Bool

    public var description: String {
        let cause = signalled
            ? "it was still waiting \(formatDuration(waited)) after SIGTERM/SIGUSR1 (limit \(formatDuration(limit)) once signalled)"
            : "collectiveTimeoutSeconds is \(formatDuration(limit))"
        return "collective watchdog: rank \(rank) of \(size) waited \(formatDuration(waited)) in \(operation) for the other ranks, and \(cause)"
            + (context.isEmpty ? "" : "; \(context)")
            + ". Another rank or its host is unreachable (a lost node or network link) or stopped. Exiting with status \(Self.exitCode); "
            + "run the same command again, on the remaining hosts if one is lost, to resume from the newest checkpoint."
    }
}


/// Seconds on a monotonic clock.
@inline(__always)
func monotonicSeconds() -> Double {
    var t = timespec()
    clock_gettime(CLOCK_MONOTONIC, &t)
    return Double(t.tv_sec) + Double(t.tv_nsec) * 1e-9
}

extension Communicator {
    public var isRoot: Bool { rank == 0 }

    public func allreduceSumInRankOrder(_ buffer: UnsafeMutablePointer<Float>, count: Int) throws {
        try allreduceSumInRankOrder(buffer, count: count, spin: { true })
    }

    /// How many distinct hosts the ranks run on: each rank's host name hashed (24 bits, exact
    /// in a Double) into its own slot of a table summed over ranks. Collective.
    public func hostCount() throws -> Int {
        var hash: UInt32 = 2_166_136_261
        for byte in ProcessInfo.processInfo.hostName.utf8 { hash = (hash ^ UInt32(byte)) &* 16_777_619 }
        var table = [Double](repeating: 0, count: size)
        table[rank] = Double(hash >> 8)
        try table.withUnsafeMutableBufferPointer { try allreduceSum($0.baseAddress!, count: $0.count) }
        return Set(table).count
    }

    /// Sum of a few scalars over ranks.
    public func sum(_ values: [Double]) throws -> [Double] {
        var v = values
        try v.withUnsafeMutableBufferPointer { try allreduceSum($0.baseAddress!, count: $0.count) }
        return v
    }
}

/// MPI_COMM_WORLD (or a communicator split from it). Without mpirun, OpenMPI's singleton
/// init gives world size 1 on the same code path.
public final class MPICommunicator: Communicator {
    public let rank: Int
    public let size: Int
    let comm: MPI_Comm
    let ownsWorld: Bool
    public var deadline: CollectiveDeadline?
    /// The rank-ordered sum's receive buffer (GradientReduction.swift), grown as needed.
    var orderedScratch: UnsafeMutablePointer<Float>?
    var orderedScratchCount = 0

    deinit { orderedScratch?.deallocate() }

    /// Initialises MPI (once per process) and wraps MPI_COMM_WORLD. Errors return codes
    /// instead of aborting inside MPI, so they become Swift errors with MPI's message.
    public static func world() throws -> MPICommunicator {
        var initialised: Int32 = 0
        MPI_Initialized(&initialised)
        if initialised == 0 {
            // Open MPI runs the non-blocking in-place allreduce (the watchdog's MPI_Iallreduce,
            // the trainer's gradient sum) as a binomial tree unless told otherwise: 2⌈log₂ p⌉
            // whole-buffer transfers where a ring moves 2(p−1)/p of it, 2.9× slower for the paper
            // gradient on 4 hosts over 1 Gbit/s (docs/performance.md, "Past one node"). Ask for the
            // ring unless the user chose an algorithm; other MPIs ignore the variable.
            setenv("OMPI_MCA_coll_libnbc_iallreduce_algorithm", "1", 0)
            // SERIALIZED: the gradient reduction's communication thread calls MPI while the main
            // thread computes (never both at once); `allowsCommunicationThread` checks what we got.
            var provided: Int32 = 0
            guard MPI_Init_thread(nil, nil, lf_mpi_thread_serialized(), &provided) == lf_mpi_success() else {
                throw CommunicatorError("MPI_Init_thread failed")
            }
        }
        guard let world = lf_mpi_comm_world() else { throw CommunicatorError("MPI_COMM_WORLD is unavailable") }
        MPI_Comm_set_errhandler(world, lf_mpi_errors_return())
        var rank: Int32 = 0, size: Int32 = 0
        MPI_Comm_rank(world, &rank)
        MPI_Comm_size(world, &size)
        return MPICommunicator(comm: world, rank: Int(rank), size: Int(size), ownsWorld: true)
    }

    init(comm: MPI_Comm, rank: Int, size: Int, ownsWorld: Bool) {
        self.comm = comm
        self.rank = rank
        self.size = size
        self.ownsWorld = ownsWorld
    }

    /// Finalises MPI for the process. Call once, after the last collective.
    public static func finalize() {
        var finalised: Int32 = 0
        MPI_Finalized(&finalised)
        if finalised == 0 { MPI_Finalize() }
    }

    func check(_ code: Int32, _ what: String) throws {
        guard code != lf_mpi_success() else { return }
        var length: Int32 = 0
        var text = [CChar](repeating: 0, count: Int(lf_mpi_max_error_string()) + 1)
        MPI_Error_string(code, &text, &length)
        let message = String(decoding: text.prefix(Int(length)).map { UInt8(bitPattern: $0) }, as: UTF8.self)
        throw CommunicatorError("\(what) failed on rank \(rank) of \(size): \(message)")
    }

    /// With a deadline: starts the non-blocking form of a collective and waits for it with
    /// `wait`; without one: the blocking form.
    func collective(_ name: @autoclosure () -> String, spin: () -> Bool = { true },
                    blocking: () -> Int32, start: (UnsafeMutablePointer<MPI_Request?>) -> Int32) throws {
        guard let deadline, deadline.seconds > 0 else {
            try check(blocking(), name())
            return
        }
        var request: MPI_Request?
        try check(start(&request), name())
        try wait(&request, name(), deadline: deadline, spin: spin)
    }

    /// Polls `request` until it completes. For the first `spinSeconds` it tests back to back (a
    /// collective whose ranks all arrived completes in milliseconds, and the non-blocking
    /// collectives progress only inside MPI_Test); after that it sleeps between tests, from
    /// 50 µs doubling to `maxNap`, so a rank waiting for a slow or lost peer leaves the CPU to
    /// others. Throws `CollectiveTimeout` after `deadline` (nil: waits for ever), or
    /// `CollectiveDeadline.graceAfterSignal` after SIGTERM/SIGUSR1 arrived during the wait.
    /// `spin` false: sleep between tests from the start (a communication thread while the main
    /// thread computes: its core is for the computation); the spin begins when it turns true.
    func wait(_ request: inout MPI_Request?, _ name: @autoclosure () -> String, deadline: CollectiveDeadline?,
              pollingEvery pollInterval: Double? = nil, spin: () -> Bool = { true }, _ poll: () throws -> Void = {}) throws {
        let started = monotonicSeconds()
        var nap = 50e-6, lastPoll = started
        var signalledAt: Double?, spinningSince: Double?
        while true {
            var done: Int32 = 0
            try check(MPI_Test(&request, &done, lf_mpi_status_ignore()), name())
            if done != 0 { return }
            let now = monotonicSeconds(), waited = now - started
            if spinningSince == nil && spin() { spinningSince = now }
            // Yield while spinning: with more ranks than cores, the peer may need this core.
            if let spinningSince, now - spinningSince < Self.spinSeconds { sched_yield(); continue }
            if let pollInterval, now - lastPoll >= pollInterval {
                try poll()
                lastPoll = now
            }
            if let deadline, deadline.seconds > 0 {
                if Preemption.requested && signalledAt == nil { signalledAt = now }
                var limit = deadline.seconds
                if let signalledAt { limit = min(limit, signalledAt - started + CollectiveDeadline.graceAfterSignal) }
                if waited > limit {
                    throw CollectiveTimeout(operation: name(), waited: waited, limit: limit, rank: rank, size: size,
                                            context: deadline.context(), signalled: signalledAt != nil)
                }
            }
            usleep(useconds_t(nap * 1e6))
            nap = min(nap * 2, pollInterval ?? Self.maxNap)
        }
    }

    /// Busy testing before the first sleep, and the longest sleep between tests.
    static let spinSeconds = 0.02
    static let maxNap = 1e-3

    public func allreduceSum(_ buffer: UnsafeMutablePointer<Float>, count: Int) throws {
        try collective("MPI_Allreduce(sum) of \(count) floats",
                       blocking: { MPI_Allreduce(lf_mpi_in_place(), buffer, Int32(count), lf_mpi_float(), lf_mpi_sum(), comm) },
                       start: { MPI_Iallreduce(lf_mpi_in_place(), buffer, Int32(count), lf_mpi_float(), lf_mpi_sum(), comm, $0) })
    }

    public func allreduceSum(_ buffer: UnsafeMutablePointer<Double>, count: Int) throws {
        try collective("MPI_Allreduce(sum) of \(count) doubles",
                       blocking: { MPI_Allreduce(lf_mpi_in_place(), buffer, Int32(count), lf_mpi_double(), lf_mpi_sum(), comm) },
                       start: { MPI_Iallreduce(lf_mpi_in_place(), buffer, Int32(count), lf_mpi_double(), lf_mpi_sum(), comm, $0) })
    }

    public func allreduceMax(_ buffer: UnsafeMutablePointer<Double>, count: Int) throws {
        try collective("MPI_Allreduce(max) of \(count) doubles",
                       blocking: { MPI_Allreduce(lf_mpi_in_place(), buffer, Int32(count), lf_mpi_double(), lf_mpi_max(), comm) },
                       start: { MPI_Iallreduce(lf_mpi_in_place(), buffer, Int32(count), lf_mpi_double(), lf_mpi_max(), comm, $0) })
    }

    public func broadcast(_ buffer: UnsafeMutablePointer<Float>, count: Int, root: Int) throws {
        try collective("MPI_Bcast of \(count) floats from rank \(root)",
                       blocking: { MPI_Bcast(buffer, Int32(count), lf_mpi_float(), Int32(root), comm) },
                       start: { MPI_Ibcast(buffer, Int32(count), lf_mpi_float(), Int32(root), comm, $0) })
    }

    public func broadcast(_ buffer: UnsafeMutablePointer<Double>, count: Int, root: Int) throws {
        try collective("MPI_Bcast of \(count) doubles from rank \(root)",
                       blocking: { MPI_Bcast(buffer, Int32(count), lf_mpi_double(), Int32(root), comm) },
                       start: { MPI_Ibcast(buffer, Int32(count), lf_mpi_double(), Int32(root), comm, $0) })
    }

    public func gather(_ buffer: UnsafePointer<Float>, count: Int, counts: [Int], into out: UnsafeMutablePointer<Float>?, root: Int) throws {
        precondition(counts.count == size && counts[rank] == count, "gather: counts \(counts) do not match rank \(rank)'s \(count)")
        var receiveCounts = counts.map { Int32($0) }
        var offsets = [Int32](repeating: 0, count: size)
        for r in 1..<max(size, 1) { offsets[r] = offsets[r - 1] + receiveCounts[r - 1] }
        try receiveCounts.withUnsafeMutableBufferPointer { receive in
            try offsets.withUnsafeMutableBufferPointer { displacements in
                try collective("MPI_Gatherv of \(count) floats to rank \(root)",
                               blocking: { MPI_Gatherv(buffer, Int32(count), lf_mpi_float(), out, receive.baseAddress, displacements.baseAddress,
                                                       lf_mpi_float(), Int32(root), comm) },
                               start: { MPI_Igatherv(buffer, Int32(count), lf_mpi_float(), out, receive.baseAddress, displacements.baseAddress,
                                                     lf_mpi_float(), Int32(root), comm, $0) })
            }
        }
    }

    public func barrier(pollingEvery interval: Double, _ poll: () throws -> Void) throws {
        var request: MPI_Request?
        try check(MPI_Ibarrier(comm, &request), "MPI_Ibarrier")
        try wait(&request, "MPI_Ibarrier", deadline: nil, pollingEvery: interval, poll)
    }

    public func split(color: Int, key: Int) throws -> Communicator {
        var sub: MPI_Comm?
        try check(MPI_Comm_split(comm, Int32(color), Int32(key), &sub), "MPI_Comm_split")
        guard let sub else { throw CommunicatorError("MPI_Comm_split returned no communicator on rank \(rank)") }
        // New communicators inherit MPI_ERRORS_RETURN from their parent.
        var subRank: Int32 = 0, subSize: Int32 = 0
        MPI_Comm_rank(sub, &subRank)
        MPI_Comm_size(sub, &subSize)
        return MPICommunicator(comm: sub, rank: Int(subRank), size: Int(subSize), ownsWorld: false)
    }

    public func barrier() throws {
        try collective("MPI_Barrier", blocking: { MPI_Barrier(comm) }, start: { MPI_Ibarrier(comm, $0) })
    }

    public func abort(code: Int32) -> Never {
        MPI_Abort(comm, code)
        fatalError("MPI_Abort returned")
    }
}

/// One process, no MPI: for in-process tests and tools. Every collective is the identity.
public final class SingleProcess: Communicator {
    public init() {}
    public var deadline: CollectiveDeadline?
    public var rank: Int { 0 }
    public var size: Int { 1 }
    public func allreduceSum(_ buffer: UnsafeMutablePointer<Float>, count: Int) throws {}
    public func allreduceSum(_ buffer: UnsafeMutablePointer<Double>, count: Int) throws {}
    public func allreduceSumInRankOrder(_ buffer: UnsafeMutablePointer<Float>, count: Int, spin: () -> Bool) throws {}
    public var allowsCommunicationThread: Bool { true }
    public func allreduceMax(_ buffer: UnsafeMutablePointer<Double>, count: Int) throws {}
    public func broadcast(_ buffer: UnsafeMutablePointer<Float>, count: Int, root: Int) throws {}
    public func broadcast(_ buffer: UnsafeMutablePointer<Double>, count: Int, root: Int) throws {}
    public func barrier() throws {}
    public func gather(_ buffer: UnsafePointer<Float>, count: Int, counts: [Int], into out: UnsafeMutablePointer<Float>?, root: Int) throws {
        out?.update(from: buffer, count: count)
    }
    public func split(color: Int, key: Int) throws -> Communicator { SingleProcess() }
    public func barrier(pollingEvery interval: Double, _ poll: () throws -> Void) throws {}
    public func abort(code: Int32) -> Never { exit(code) }
}

#if canImport(Glibc)
import Glibc
#endif

/// SIGTERM / SIGUSR1 (SLURM's `--signal=USR1@120`) set a flag; nothing else happens in the
/// handler. The trainer polls it at step boundaries and agrees on it across ranks.
///
/// A search runs its trials on groups of ranks that share no collective for hours, so a signal
/// that reached one rank only (a `kill` of one process, a launcher that signals some) would stop
/// that group alone; where groups wait for each other (a PBT tournament) the job then hangs.
/// `share(through:)` makes it one job again: the first rank that sees its own signal creates a
/// marker file in the run directory, which every rank sees (a search's groups already meet
/// there), and `requested` looks for the marker at most once a second.
public enum Preemption {
    /// The handlers are installed when the binary loads (CShims); this installs them again
    /// (idempotent), for a command that reads the flag.
    public static func installHandlers() { lf_install_preemption_handlers() }

    /// For commands that never read the flag: SIGTERM and SIGUSR1 end them as usual (one that
    /// arrived since the binary loaded ends it now).
    public static func restoreDefaultAction() { lf_restore_default_termination() }

    /// True once this process got SIGTERM/SIGUSR1 or, after `share(through:)`, once any rank of
    /// the job did.
    public static var requested: Bool {
        if lf_preemption_requested() != 0 {
            if let marker = shared.marker, !shared.announced {
                shared.announced = true
                FileManager.default.createFile(atPath: marker, contents: Data("SIGTERM/SIGUSR1 received by pid \(getpid())\n".utf8))
            }
            return true
        }
        guard let marker = shared.marker else { return false }
        if shared.seen { return true }
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        let seconds = Double(now.tv_sec) + Double(now.tv_nsec) * 1e-9
        guard seconds - shared.lastLook >= 1 else { return false }
        shared.lastLook = seconds
        shared.seen = FileManager.default.fileExists(atPath: marker)
        return shared.seen
    }

    /// From now on a signal seen by any rank is seen by every rank (see the type's comment),
    /// through the file `marker` (`RunDirectory.preemptedMarker`). The caller removes a stale
    /// one (of a preempted session) on one rank before the ranks call this, with a collective
    /// between.
    public static func share(through marker: String) {
        shared.marker = marker
        shared.seen = false
        shared.announced = false
        shared.lastLook = -.infinity
    }

    /// Called from the main thread only (step boundaries and the searches' loops).
    private final class Shared: @unchecked Sendable {
        var marker: String?
        var seen = false, announced = false
        var lastLook = -Double.infinity
    }
    private static let shared = Shared()
}
