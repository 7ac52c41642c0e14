// Support: the small rules every module shares, written once. It owns the error type, the
// duration format, the JSON settings and the atomic file write; it holds no model, data or
// MPI logic and imports nothing of the project.

/// An error for the person who has to act on it: `message` says what happened, names the file,
/// field or rank, and says what to do. Every module's errors are this one type, told apart by
/// a domain tag (`ConfigError` is `Failure<ConfigFailure>`), so a `catch` can still pick one
/// kind and the CLI prints them all the same way.
public struct Failure<Domain>: Error, CustomStringConvertible, Equatable {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}
