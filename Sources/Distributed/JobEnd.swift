// How a job on many ranks ends together, besides success: every rank has agreed, through a
// collective, that it stops (CollectiveTimeout, the watchdog's end, is in Communicator.swift).

/// The job stopped at an agreed step boundary because of SIGTERM or SIGUSR1; a checkpoint was
/// written, and running the same command again continues.
public struct Preempted: Error, CustomStringConvertible {
    public let checkpoint: String
    /// The exit status that tells a wrapper to requeue the job (EX_TEMPFAIL).
    public static let exitCode: Int32 = 75
    public init(checkpoint: String) { self.checkpoint = checkpoint }
    public var description: String { "preempted; resume from \(checkpoint) by running the same command again" }
}

/// A failure every rank knows of (agreed through a collective), so no rank needs to abort the
/// others. Rank 0's carries the reason; the other ranks' carry none and stay quiet.
public struct AgreedFailure: Error {
    public let reason: Error?
    public init(reason: Error?) { self.reason = reason }
}
