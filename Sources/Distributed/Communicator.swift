import CMPI
import CShims
#if canImport(Glibc)
import Glibc
#endif

/// An MPI failure, with MPI's own error text.
public struct CommunicatorError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// The collective operations training needs. Every rank must call them in the same order.
public protocol Communicator: AnyObject {
    var rank: Int { get }
    var size: Int { get }
    /// In place: every rank ends with the element-wise sum over ranks.
    func allreduceSum(_ buffer: UnsafeMutablePointer<Float>, count: Int) throws
    func allreduceSum(_ buffer: UnsafeMutablePointer<Double>, count: Int) throws
    /// In place: every rank ends with the element-wise maximum over ranks.
    func allreduceMax(_ buffer: UnsafeMutablePointer<Double>, count: Int) throws
    /// In place: every rank ends with `root`'s values.
    func broadcast(_ buffer: UnsafeMutablePointer<Float>, count: Int, root: Int) throws
    func broadcast(_ buffer: UnsafeMutablePointer<Double>, count: Int, root: Int) throws
    func barrier() throws
    /// Collective: ranks passing the same `color` form one new communicator, ranked by `key`
    /// (MPI_Comm_split). Used by `search` to give each group of ranks its own trainer.
    func split(color: Int, key: Int) throws -> Communicator
    /// A barrier that sleeps instead of spinning: it calls `poll` every `interval` seconds
    /// until every rank has arrived. Ranks that finished their share wait here without taking
    /// the CPU from ranks that still compute (a blocking MPI_Barrier busy-polls).
    func barrier(pollingEvery interval: Double, _ poll: () throws -> Void) throws
    /// Ends every rank of the job (a failure on one rank must not leave the others hanging).
    func abort(code: Int32) -> Never
}

extension Communicator {
    public var isRoot: Bool { rank == 0 }

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

    /// Initialises MPI (once per process) and wraps MPI_COMM_WORLD. Errors return codes
    /// instead of aborting inside MPI, so they become Swift errors with MPI's message.
    public static func world() throws -> MPICommunicator {
        var initialised: Int32 = 0
        MPI_Initialized(&initialised)
        if initialised == 0 {
            guard MPI_Init(nil, nil) == lf_mpi_success() else { throw CommunicatorError("MPI_Init failed") }
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

    public func allreduceSum(_ buffer: UnsafeMutablePointer<Float>, count: Int) throws {
        try check(MPI_Allreduce(lf_mpi_in_place(), buffer, Int32(count), lf_mpi_float(), lf_mpi_sum(), comm), "MPI_Allreduce(sum)")
    }

    public func allreduceSum(_ buffer: UnsafeMutablePointer<Double>, count: Int) throws {
        try check(MPI_Allreduce(lf_mpi_in_place(), buffer, Int32(count), lf_mpi_double(), lf_mpi_sum(), comm), "MPI_Allreduce(sum)")
    }

    public func allreduceMax(_ buffer: UnsafeMutablePointer<Double>, count: Int) throws {
        try check(MPI_Allreduce(lf_mpi_in_place(), buffer, Int32(count), lf_mpi_double(), lf_mpi_max(), comm), "MPI_Allreduce(max)")
    }

    public func broadcast(_ buffer: UnsafeMutablePointer<Float>, count: Int, root: Int) throws {
        try check(MPI_Bcast(buffer, Int32(count), lf_mpi_float(), Int32(root), comm), "MPI_Bcast")
    }

    public func broadcast(_ buffer: UnsafeMutablePointer<Double>, count: Int, root: Int) throws {
        try check(MPI_Bcast(buffer, Int32(count), lf_mpi_double(), Int32(root), comm), "MPI_Bcast")
    }

    public func barrier(pollingEvery interval: Double, _ poll: () throws -> Void) throws {
        var request: MPI_Request?
        try check(MPI_Ibarrier(comm, &request), "MPI_Ibarrier")
        while true {
            var done: Int32 = 0
            try check(MPI_Test(&request, &done, lf_mpi_status_ignore()), "MPI_Test")
            if done != 0 { return }
            try poll()
            usleep(useconds_t(interval * 1e6))
        }
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
        try check(MPI_Barrier(comm), "MPI_Barrier")
    }

    public func abort(code: Int32) -> Never {
        MPI_Abort(comm, code)
        fatalError("MPI_Abort returned")
    }
}

/// One process, no MPI: for in-process tests and tools. Every collective is the identity.
public final class SingleProcess: Communicator {
    public init() {}
    public var rank: Int { 0 }
    public var size: Int { 1 }
    public func allreduceSum(_ buffer: UnsafeMutablePointer<Float>, count: Int) throws {}
    public func allreduceSum(_ buffer: UnsafeMutablePointer<Double>, count: Int) throws {}
    public func allreduceMax(_ buffer: UnsafeMutablePointer<Double>, count: Int) throws {}
    public func broadcast(_ buffer: UnsafeMutablePointer<Float>, count: Int, root: Int) throws {}
    public func broadcast(_ buffer: UnsafeMutablePointer<Double>, count: Int, root: Int) throws {}
    public func barrier() throws {}
    public func split(color: Int, key: Int) throws -> Communicator { SingleProcess() }
    public func barrier(pollingEvery interval: Double, _ poll: () throws -> Void) throws {}
    public func abort(code: Int32) -> Never { exit(code) }
}

#if canImport(Glibc)
import Glibc
#endif

/// SIGTERM / SIGUSR1 (SLURM's `--signal=USR1@120`) set a flag; nothing else happens in the
/// handler. The trainer polls it at step boundaries and agrees on it across ranks.
public enum Preemption {
    public static func installHandlers() { lf_install_preemption_handlers() }
    public static var requested: Bool { lf_preemption_requested() != 0 }
}
