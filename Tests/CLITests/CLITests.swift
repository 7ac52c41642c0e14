import Foundation
import Testing
import HDF5

/// End-to-end runs of the built `lflow-dist` binary.
struct CLI {
    /// The binary sits beside the test bundle in the build products directory.
    static let binary: String = {
        let exe = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        return exe.deletingLastPathComponent().appendingPathComponent("lflow-dist").path
    }()
    static let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent().path

    struct Result {
        var status: Int32
        var stdout: String
        var stderr: String
        var reason: Process.TerminationReason = .exit
        var output: String { stdout + stderr }
    }

    /// Runs the binary, or `mpirun -n ranks` of it (as root, oversubscribed, one BLAS thread).
    @discardableResult
    static func run(_ arguments: [String], ranks: Int? = nil, environment extra: [String: String] = [:]) throws -> Result {
        let r: Result
        if let ranks {
            r = try runProcess("/usr/bin/env", ["mpirun", "--oversubscribe"] + extra.keys.sorted().flatMap { ["-x", $0] }
                               + ["-n", "\(ranks)", binary] + arguments, environment: extra)
        } else {
            r = try runProcess(binary, arguments, environment: extra)
        }
        // A Swift trap or a segfault ends in a signal, never in an exit status (the kill tests
        // signal on purpose).
        if extra.isEmpty { #expect(r.reason == .exit, "\(arguments) was killed by a signal") }
        return r
    }

    /// Runs `executable arguments` in the package root with the test environment, to the end.
    static func runProcess(_ executable: String, _ arguments: [String], environment extra: [String: String] = [:]) throws -> Result {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.environment = environment(extra)
        process.currentDirectoryURL = URL(fileURLWithPath: packageRoot)
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        // Read standard error on another thread, so neither pipe can fill up and block the child.
        nonisolated(unsafe) var stderr = Data()
        let group = DispatchGroup()
        group.enter()
        DispatchQueue.global().async { stderr = err.fileHandleForReading.readDataToEndOfFile(); group.leave() }
        let stdout = out.fileHandleForReading.readDataToEndOfFile()
        group.wait()
        process.waitUntilExit()
        return Result(status: process.terminationStatus, stdout: String(decoding: stdout, as: UTF8.self),
                      stderr: String(decoding: stderr, as: UTF8.self), reason: process.terminationReason)
    }

    /// This process's environment plus what mpirun needs as root, one BLAS thread, and `extra`.
    static func environment(_ extra: [String: String] = [:]) -> [String: String] {
        var environment = ProcessInfo.processInfo.environment
        environment["OMPI_ALLOW_RUN_AS_ROOT"] = "1"
        environment["OMPI_ALLOW_RUN_AS_ROOT_CONFIRM"] = "1"
        environment["OPENBLAS_NUM_THREADS"] = "1"
        environment.merge(extra) { $1 }
        return environment
    }

    /// Starts `mpirun -n ranks lflow-dist arguments`, waits until `ready()` holds (at most
    /// `timeout` seconds), then sends SIGUSR1 to the ranks whose command line matches `pattern`,
    /// as SLURM's --signal does, or with `oneRank` to the newest rank only. (mpirun forwards
    /// SIGUSR1 from a shell, but a Process-spawned mpirun inherits a mask that blocks it; the
    /// ranks unblock it themselves.) A job still running 120 s later is killed: status -1.
    static func preempt(_ arguments: [String], ranks: Int, pattern: String, timeout: TimeInterval = 90, oneRank: Bool = false,
                        when ready: () -> Bool) throws -> (status: Int32, stdout: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["mpirun", "--oversubscribe", "-n", "\(ranks)", binary] + arguments
        process.environment = environment()
        process.currentDirectoryURL = URL(fileURLWithPath: packageRoot)
        let out = Pipe()
        process.standardOutput = out
        process.standardError = FileHandle.nullDevice
        try process.run()
        // Drained on a thread of its own, so a long output cannot block the job while we wait.
        final class Output: @unchecked Sendable { var data = Data(); let done = DispatchSemaphore(value: 0) }
        let output = Output()
        Thread.detachNewThread { output.data = out.fileHandleForReading.readDataToEndOfFile(); output.done.signal() }
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline && !ready() { Thread.sleep(forTimeInterval: 0.05) }
        let pkill = Process()
        pkill.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        pkill.arguments = oneRank ? ["pkill", "-n", "-USR1", "-f", "^\(binary) .*\(pattern)"] : ["pkill", "-USR1", "-f", pattern]
        try pkill.run()
        pkill.waitUntilExit()
        // A preempted job ends within seconds; one that hangs is ended here and reported as -1.
        let stopBy = Date().addingTimeInterval(120)
        while process.isRunning && Date() < stopBy { Thread.sleep(forTimeInterval: 0.1) }
        let hung = process.isRunning
        if hung { Processes.signal(Processes.matching(pattern) + [process.processIdentifier], SIGKILL) }
        process.waitUntilExit()
        output.done.wait()
        let stdout = String(decoding: output.data, as: UTF8.self)
        return hung ? (-1, "still running 120 s after SIGUSR1, killed:\n" + stdout) : (process.terminationStatus, stdout)
    }

    static func temporaryDirectory() -> String {
        let path = NSTemporaryDirectory() + "lflow-cli-\(UUID().uuidString)"
        try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    /// A small Lorenz file: 4 conditions × 3 trials, 8 + 3 bins.
    static func smallData(in dir: String) throws -> String {
        let path = "\(dir)/data.h5"
        let r = try run(["synth", "--out", path, "--conditions", "4", "--trials-per-condition", "3",
                         "--bins", "8", "--forward-bins", "3", "--neurons", "9", "--held-out", "3"])
        #expect(r.status == 0, "\(r.output)")
        return path
    }
}

@Suite("lflow-dist end to end")
struct CLITests {
    @Test("synth → init → inspect writes the debug state with the spec's shapes")
    func initAndInspect() throws {
        let dir = CLI.temporaryDirectory()
        let data = try CLI.smallData(in: dir)
        let initRun = try CLI.run(["init", "--config", "Configs/tiny.yaml", "--data", data, "--out", "\(dir)/init.h5",
                                   "--seed", "4", "--set", "potential=diagonal", "--set", "hidden=12"])
        #expect(initRun.status == 0, "\(initRun.output)")
        let inspect = try CLI.run(["inspect", "--checkpoint", "\(dir)/init.h5", "--data", data, "--trials", "3", "--out", "\(dir)/state.h5"])
        #expect(inspect.status == 0, "\(inspect.output)")

        let ckpt = try H5File.open("\(dir)/init.h5")
        #expect(try ckpt.shape(of: "model/encoder.weight_ih") == [36, 6])
        #expect(try ckpt.shape(of: "model/decoder.self_attn.in_proj_weight") == [108, 36])
        #expect(try ckpt.readAttributeString("config").contains("\"potential\": \"diagonal\""))

        let state = try H5File.open("\(dir)/state.h5")
        #expect(try state.shape(of: "log_rates") == [3, 11, 9])
        #expect(try state.shape(of: "latents") == [3, 11, 36])
        let recon = try state.readDoubles("loss/reconstruction").values[0]
        let kl = try state.readDoubles("loss/kl").values[0]
        let total = try state.readDoubles("loss/total").values[0]
        #expect(abs(total - (recon + 0.1 * kl)) < 1e-9 * abs(total))
        for name in try ckpt.children(of: "model") {
            #expect(try state.shape(of: "grad/\(name)") == ckpt.shape(of: "model/\(name)"), "grad/\(name)")
        }
        // The readout-bias gradient is the mean of exp(ℓ) - y per neuron over the observed entries.
        let grad = try state.readDoubles("grad/readout.bias").values
        #expect(grad.contains { $0 != 0 })
    }

    @Test("init is reproducible from the seed")
    func seeded() throws {
        let dir = CLI.temporaryDirectory()
        let data = try CLI.smallData(in: dir)
        for (name, seed) in [("a", "1"), ("b", "1"), ("c", "2")] {
            let r = try CLI.run(["init", "--config", "Configs/tiny.yaml", "--data", data, "--out", "\(dir)/\(name).h5", "--seed", seed])
            #expect(r.status == 0, "\(r.output)")
        }
        let a = try H5File.open("\(dir)/a.h5").readFloats("model/encoder.weight_hh").values
        let b = try H5File.open("\(dir)/b.h5").readFloats("model/encoder.weight_hh").values
        let c = try H5File.open("\(dir)/c.h5").readFloats("model/encoder.weight_hh").values
        #expect(a == b && a != c)
    }

    @Test("Bad input ends in a clear message and a non-zero exit",
          arguments: [
            (["--set", "hiden=3"], "unknown config key 'hiden'"),
            (["--set", "mass=0"], "mass must be > 0"),
            (["--set", "damping=1.5"], "damping must be in [0, 1)"),
            (["--set", "hidden=10"], "divisible by groups"),
            (["--set", "heads=7", "--set", "hidden=12"], "divisible by heads"),
            (["--config", "Configs/none.yaml"], "does not exist"),
          ])
    func badConfig(extra: [String], message: String) throws {
        let dir = CLI.temporaryDirectory()
        let data = try CLI.smallData(in: dir)
        let r = try CLI.run(["init", "--data", data, "--out", "\(dir)/x.h5"] + extra)
        #expect(r.status != 0)
        #expect(r.stderr.contains(message), "stderr: \(r.stderr)")
        #expect(!FileManager.default.fileExists(atPath: "\(dir)/x.h5"))
    }

    @Test("Bad data files name the file and the key")
    func badData() throws {
        let dir = CLI.temporaryDirectory()
        do {
            let f = try H5File.create("\(dir)/nokeys.h5")
            try f.write("something_else", shape: [1], floats: [0])
            let g = try H5File.create("\(dir)/negative.h5")
            try g.write("train_spikes_heldin", shape: [1, 2, 2], floats: [0, 1, -3, 0])
            try g.write("train_spikes_heldout", shape: [1, 2, 1], floats: [0, 1])
        }
        let missing = try CLI.run(["init", "--config", "Configs/tiny.yaml", "--data", "\(dir)/nokeys.h5", "--out", "\(dir)/x.h5"])
        #expect(missing.status != 0 && missing.stderr.contains("nokeys.h5") && missing.stderr.contains("train_spikes_heldin"))
        let negative = try CLI.run(["init", "--config", "Configs/tiny.yaml", "--data", "\(dir)/negative.h5", "--out", "\(dir)/x.h5"])
        #expect(negative.status != 0 && negative.stderr.contains("train_spikes_heldin") && negative.stderr.contains("-3.0"))
        let absent = try CLI.run(["init", "--config", "Configs/tiny.yaml", "--data", "\(dir)/absent.h5", "--out", "\(dir)/x.h5"])
        #expect(absent.status != 0 && absent.stderr.contains("absent.h5"))
    }

    @Test("A checkpoint for other data sizes is refused, naming the parameter")
    func mismatchedCheckpoint() throws {
        let dir = CLI.temporaryDirectory()
        let data = try CLI.smallData(in: dir)
        let other = "\(dir)/other.h5"
        #expect(try CLI.run(["synth", "--out", other, "--conditions", "2", "--trials-per-condition", "2", "--bins", "8",
                             "--forward-bins", "3", "--neurons", "12", "--held-out", "3"]).status == 0)
        #expect(try CLI.run(["init", "--config", "Configs/tiny.yaml", "--data", data, "--out", "\(dir)/c.h5"]).status == 0)
        let r = try CLI.run(["inspect", "--checkpoint", "\(dir)/c.h5", "--data", other, "--trials", "2", "--out", "\(dir)/s.h5"])
        #expect(r.status != 0)
        #expect(r.stderr.contains("encoder.weight_ih") && r.stderr.contains("other sizes"), "\(r.stderr)")
        let missing = try CLI.run(["inspect", "--checkpoint", "\(dir)/none.h5", "--data", data, "--trials", "2", "--out", "\(dir)/s.h5"])
        #expect(missing.status != 0 && missing.stderr.contains("none.h5"))
        let tooMany = try CLI.run(["inspect", "--checkpoint", "\(dir)/c.h5", "--data", data, "--trials", "500", "--out", "\(dir)/s.h5"])
        #expect(tooMany.status != 0 && tooMany.stderr.contains("training trials"))
    }

    @Test("--help documents every subcommand and the config table covers every field")
    func help() throws {
        let help = try CLI.run(["--help"])
        #expect(help.status == 0)
        for sub in ["synth", "init", "inspect", "config"] { #expect(help.stdout.contains(sub)) }
        let inspectHelp = try CLI.run(["help", "inspect"])
        #expect(inspectHelp.stdout.contains("--trials") && inspectHelp.stdout.contains("grad/<name>"))
        let table = try CLI.run(["config", "--fields"])
        let readme = try String(contentsOfFile: CLI.packageRoot + "/Configs/README.md", encoding: .utf8)
        #expect(readme.contains(table.stdout), "Configs/README.md is out of date: regenerate its table with `lflow-dist config --fields`")
    }
}
