import Foundation
import Testing

/// A command running in the background, its output in a file (no pipe to fill up), for tests
/// that act on a job while it runs: signal it, cut its network, kill it.
///
/// Started with posix_spawn and reaped with waitpid, not Foundation's Process: Process on Linux
/// treats a child as running until every descendant has closed a descriptor it inherited, and a
/// launcher's daemon on a cut-off pretend host keeps that open long after the launcher is gone.
final class BackgroundJob {
    let pid: pid_t
    let outputPath: String
    let started = Date()
    private var status: Int32?

    /// Starts `executable arguments` in the package root with the test environment.
    init(_ executable: String, _ arguments: [String], environment extra: [String: String] = [:], output: String) throws {
        outputPath = output
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 1, output, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        // Only stdin/out/err: a file another test has open (an HDF5 checkpoint being written,
        // with its flock) must not stay open, and locked, in a job that outlives the test.
        closeInheritedDescriptors(&actions)
        // env -C: start in the package root (posix_spawn has no portable chdir).
        let argv = (["/usr/bin/env", "-C", CLI.packageRoot, executable] + arguments).map { strdup($0) } + [nil]
        let envp = CLI.environment(extra).map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer { (argv + envp).forEach { free($0) } }
        // A clean signal state, as a shell or a scheduler would give: the test process blocks
        // signals in its threads, and a child would inherit that mask.
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var none = sigset_t(), all = sigset_t()
        sigemptyset(&none)
        sigfillset(&all)
        posix_spawnattr_setsigmask(&attributes, &none)
        posix_spawnattr_setsigdefault(&attributes, &all)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        var child: pid_t = 0
        let error = posix_spawn(&child, "/usr/bin/env", &actions, &attributes, argv, envp)
        guard error == 0 else { throw CLIError("cannot start \(executable): \(String(cString: strerror(error)))") }
        pid = child
    }

    var output: String { (try? String(contentsOfFile: outputPath, encoding: .utf8)) ?? "" }

    /// Reaps the child if it has ended; true while it runs.
    var isRunning: Bool {
        guard status == nil else { return false }
        var raw: Int32 = 0
        guard waitpid(pid, &raw, WNOHANG) == pid else { return true }
        // Exit status, or 128 + the signal, as a shell reports it.
        status = (raw & 0x7f) == 0 ? (raw >> 8) & 0xff : 128 + (raw & 0x7f)
        return false
    }

    /// Waits at most `timeout` seconds; the exit status, or nil if it is still running then.
    func wait(timeout: TimeInterval) -> Int32? {
        waitUntil(timeout: timeout) { !isRunning }
        return status
    }

    /// SIGKILL (if it still runs) and reap.
    func kill() {
        guard isRunning else { return }
        Glibc.kill(pid, SIGKILL)
        _ = wait(timeout: 10)
    }
}

extension CLI {
    /// Starts `lflow-dist arguments` (under `mpirun -n ranks` when given) and, once `condition`
    /// holds, SIGKILLs the whole job at once, as a node failure or `scancel -s KILL` would:
    /// the launcher and every process whose command line names `run`. Returns whether the
    /// condition held before the job ended by itself.
    @discardableResult
    static func killWhen(_ arguments: [String], ranks: Int? = nil, run: String, output: String,
                         timeout: TimeInterval = 120, _ condition: () -> Bool) throws -> Bool {
        let job = ranks.map { n in try? BackgroundJob("/usr/bin/env", ["mpirun", "--oversubscribe", "-n", "\(n)", binary] + arguments, output: output) }
            ?? (try? BackgroundJob(binary, arguments, output: output))
        guard let job else { throw CLIError("cannot start \(arguments)") }
        let held = waitUntil(timeout: timeout) { condition() || !job.isRunning } && job.isRunning
        Processes.signal([job.pid] + Processes.matching(run), SIGKILL)
        _ = job.wait(timeout: 30)
        #expect(waitUntil(timeout: 10) { Processes.matching(run).isEmpty }, "processes of \(run) survived SIGKILL")
        return held
    }

    /// Lines of a run's metrics.jsonl: the epochs it has logged.
    static func epochsLogged(_ run: String) -> Int {
        ((try? String(contentsOfFile: "\(run)/metrics.jsonl", encoding: .utf8)) ?? "").split(separator: "\n").count
    }
}

/// Waits until `condition` holds, at most `timeout` seconds. Returns whether it held.
@discardableResult
func waitUntil(timeout: TimeInterval, _ condition: () -> Bool) -> Bool {
    let deadline = Date().addingTimeInterval(timeout)
    while Date() < deadline {
        if condition() { return true }
        Thread.sleep(forTimeInterval: 0.05)
    }
    return condition()
}

/// Processes found through /proc, by a fragment of their command line (the run directory of a
/// test is unique, so it names exactly that test's ranks).
enum Processes {
    static func commandLine(_ pid: Int32) -> String? {
        guard let data = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline"), !data.isEmpty else { return nil }
        return String(decoding: data.map { $0 == 0 ? 32 : $0 }, as: UTF8.self)
    }

    /// Live (not zombie) processes whose command line contains `fragment`.
    static func matching(_ fragment: String) -> [Int32] {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return entries.compactMap(Int32.init).filter { pid in
            guard pid != getpid(), let line = commandLine(pid), line.contains(fragment) else { return false }
            let stat = (try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8)) ?? ""
            return !stat.contains(") Z ")
        }
    }

    static func signal(_ pids: [Int32], _ signal: Int32) {
        for pid in pids { kill(pid, signal) }
    }
}

/// Runs a shell command (bash -c) in the package root; returns its status and output. Spawned
/// as a `BackgroundJob`, not a Foundation Process, because the commands may start daemons
/// (munged, slurmctld), which a Process would wait for.
@discardableResult
func shell(_ command: String) -> (status: Int32, output: String) {
    let output = NSTemporaryDirectory() + "lflow-shell-\(UUID().uuidString).log"
    defer { try? FileManager.default.removeItem(atPath: output) }
    guard let job = try? BackgroundJob("/bin/bash", ["-c", command], output: output) else { return (-1, "cannot run bash") }
    let status = job.wait(timeout: 3600) ?? -1
    return (status, job.output)
}

/// Adds "close every descriptor from 3 up" to `actions` (glibc ≥ 2.34 has the action, but declares
/// it only under _GNU_SOURCE, which Swift's Glibc module does not set).
private func closeInheritedDescriptors(_ actions: inout posix_spawn_file_actions_t) {
    typealias CloseFrom = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32
    guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "posix_spawn_file_actions_addclosefrom_np") else { return }
    _ = unsafeBitCast(symbol, to: CloseFrom.self)(&actions, 3)
}

/// Names created in a directory, as inotify reports them: a test reacts to a file the moment
/// it appears (a checkpoint's temporary file, say), not at its next poll.
final class DirectoryWatch {
    private let fd: Int32

    init(_ directory: String) throws {
        fd = inotify_init1(Int32(IN_NONBLOCK))
        guard fd >= 0, inotify_add_watch(fd, directory, UInt32(IN_CREATE)) >= 0 else {
            throw CLIError("cannot watch '\(directory)': \(String(cString: strerror(errno)))")
        }
    }

    deinit { close(fd) }

    /// Waits until `count` files whose names satisfy `matching` have been created (at most
    /// `timeout` seconds); true when they were.
    func waitForCreated(timeout: TimeInterval, count: Int = 1, _ matching: (String) -> Bool) -> Bool {
        var seen = 0
        let deadline = Date().addingTimeInterval(timeout)
        var buffer = [UInt8](repeating: 0, count: 64 * 1024)
        while Date() < deadline {
            var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&poller, 1, 100) > 0 else { continue }
            let length = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            guard length > 0 else { continue }
            var offset = 0
            while offset < length {
                let (nameLength, name): (Int, String) = buffer.withUnsafeBytes { raw in
                    let event = raw.load(fromByteOffset: offset, as: inotify_event.self)
                    let start = raw.baseAddress! + offset + MemoryLayout<inotify_event>.size
                    let text = event.len > 0 ? String(cString: start.assumingMemoryBound(to: CChar.self)) : ""
                    return (Int(event.len), text)
                }
                offset += MemoryLayout<inotify_event>.size + nameLength
                if matching(name) {
                    seen += 1
                    if seen >= count { return true }
                }
            }
        }
        return false
    }
}
