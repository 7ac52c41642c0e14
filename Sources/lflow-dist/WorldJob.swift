import ArgumentParser
import Distributed
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// How a command that trains on MPI_COMM_WORLD starts and ends, the same for `train` and
/// `search`. One code path for 1 and N ranks: without mpirun the world has size 1.
///
/// - `preflight` runs on every rank before any collective, on the same arguments and files, so
///   it fails the same way everywhere: rank 0 prints the message, every rank exits 1.
/// - `body` may fail on one rank only (a write, a read): that rank prints and aborts the job,
///   so the others never wait in a collective forever. A failure agreed by every rank
///   (`AgreedFailure`) is printed once by rank 0, and every rank exits 1.
/// - Preemption (SIGTERM/SIGUSR1) ends every rank with status 75 after the checkpoint.
/// - A collective that outlives the watchdog's deadline (`CollectiveTimeout`: a lost rank, host
///   or link) ends this rank at once with status 69, without MPI_Finalize, which would wait
///   for the lost rank as well. Every rank that notices prints the message.
enum WorldJob {
    static func run<Plan>(preflight: (Communicator) throws -> Plan, body: (Communicator, Plan) throws -> Void) throws {
        // Before MPI_Init, which takes a good part of a second on a loaded node: a SIGTERM or
        // SIGUSR1 in that time would otherwise end the rank with the default action (no
        // checkpoint, no 75); now it is seen at the first step boundary.
        Preemption.installHandlers()
        let world = try MPICommunicator.world()
        let plan: Plan
        do { plan = try preflight(world) } catch {
            if world.isRoot { printFailure(error) }
            MPICommunicator.finalize()
            throw ExitCode.failure
        }
        do {
            try body(world, plan)
            MPICommunicator.finalize()
        } catch let timeout as CollectiveTimeout {
            FileHandle.standardError.write(Data("Error: \(timeout)\n".utf8))
            _exit(CollectiveTimeout.exitCode)
        } catch let preempted as Preempted {
            // Every rank stopped at the same step; rank 0 wrote the checkpoint. 75 = requeue.
            MPICommunicator.finalize()
            if world.isRoot { FileHandle.standardError.write(Data("\(preempted)\n".utf8)) }
            throw ExitCode(Preempted.exitCode)
        } catch let agreed as AgreedFailure {
            if let reason = agreed.reason, world.isRoot { printFailure(reason) }
            MPICommunicator.finalize()
            throw ExitCode.failure
        } catch {
            guard world.size > 1 else { MPICommunicator.finalize(); throw error }
            FileHandle.standardError.write(Data("Error (rank \(world.rank) of \(world.size)): \(error)\n".utf8))
            world.abort(code: 1)
        }
    }

    /// Rank 0 writes an agreed failure itself, in one write and before MPI_Finalize (whose
    /// fence every rank passes before any exits): mpirun reports the first non-zero exit with a
    /// banner of its own, and a message still being written after that exit came out cut in two
    /// by the banner, or not at all.
    private static func printFailure(_ error: Error) {
        FileHandle.standardError.write(Data("Error: \(LflowDist.message(for: error))\n".utf8))
    }
}
