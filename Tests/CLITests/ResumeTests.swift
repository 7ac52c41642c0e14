import Foundation
import Testing
import HDF5

/// Kill, preempt and resume: the final parameters and Adam moments must equal an uninterrupted
/// run's bit for bit at the same world size.
@Suite("Checkpoints and exact resume", .serialized)
struct ResumeTests {
    /// 32 training trials, global batch 10: 4 steps per epoch, 16 steps in 4 epochs.
    static let trainArgs = ["train", "--config", "Configs/tiny.yaml", "--set", "epochs=4", "--set", "batchSize=10",
                            "--set", "keepCheckpoints=2"]

    static func data(in dir: String) throws -> String {
        let path = "\(dir)/d.h5"
        #expect(try CLI.run(["synth", "--out", path, "--conditions", "8", "--trials-per-condition", "6",
                             "--bins", "20", "--forward-bins", "5"]).status == 0)
        return path
    }

    /// model/, optimizer/exp_avg/ and optimizer/exp_avg_sq/ of the newest checkpoint of a run.
    static func finalState(_ run: String) throws -> [String: [Float]] {
        let names = try FileManager.default.contentsOfDirectory(atPath: run).filter { $0.hasPrefix("ckpt-") }.sorted()
        let f = try H5File.open("\(run)/\(names.last!)")
        var out: [String: [Float]] = [:]
        for group in ["model", "optimizer/exp_avg", "optimizer/exp_avg_sq"] {
            for name in try f.children(of: group) { out["\(group)/\(name)"] = try f.readFloats("\(group)/\(name)").values }
        }
        if let names = try? f.children(of: "weight_average") {       // with weightAverage only
            for name in names { out["weight_average/\(name)"] = try f.readFloats("weight_average/\(name)").values }
        }
        out["last"] = try H5File.open("\(run)/last.h5").readFloats("model/readout.weight").values
        return out
    }

    static func run(_ extra: [String], env: [String: String] = [:], ranks: Int? = nil) throws -> CLI.Result {
        try CLI.run(trainArgs + extra, ranks: ranks, environment: env)
    }

    /// Runs `args` uninterrupted into `dir`/clean, expects it to succeed, and returns its
    /// output and final state: the reference a killed and resumed run must equal.
    static func cleanRun(_ args: [String], in dir: String) throws -> (result: CLI.Result, reference: [String: [Float]]) {
        let clean = try CLI.run(args + ["--run-dir", "\(dir)/clean"])
        #expect(clean.status == 0, "\(clean.output)")
        return (clean, try finalState("\(dir)/clean"))
    }

    /// Runs `args` into `run`, SIGKILLs it once `afterEpochs` epochs are logged and a checkpoint
    /// exists, runs it again with --resume, and expects the final state to equal `reference`.
    static func killAndResume(_ args: [String], run: String, afterEpochs epochs: Int, reference: [String: [Float]]) throws {
        let killed = try CLI.killWhen(args + ["--run-dir", run], run: run, output: "\(run).log") {
            CLI.epochsLogged(run) >= epochs && ((try? FileManager.default.contentsOfDirectory(atPath: run)) ?? []).contains { $0.hasPrefix("ckpt-") }
        }
        #expect(killed, "the run ended before its kill after \(epochs) epochs")
        let resumed = try CLI.run(args + ["--run-dir", run, "--resume"])
        #expect(resumed.status == 0, "\(resumed.output)")
        #expect(resumed.stdout.contains("resuming from"))
        #expect(try Self.finalState(run) == reference, "kill after \(epochs) epochs: resumed run differs")
    }

    @Test("SIGKILL after 1, 4 and 9 of 12 epochs, then the same command again: bitwise equal to an uninterrupted run")
    func killAndResume() throws {
        let dir = CLI.temporaryDirectory()
        let data = try Self.data(in: dir)
        let args = Self.trainArgs + ["--data", data, "--set", "epochs=12"]
        let (_, reference) = try Self.cleanRun(args, in: dir)
        #expect(reference.count > 10)
        for epochs in [1, 4, 9] {
            let run = "\(dir)/killed\(epochs)"
            try Self.killAndResume(args, run: run, afterEpochs: epochs, reference: reference)
            let lines = try String(contentsOfFile: "\(run)/metrics.jsonl", encoding: .utf8).split(separator: "\n")
            #expect(lines.count == 12, "metrics.jsonl has one line per epoch after resuming")
        }
    }

    @Test("evalTrials: heldIn trains on the eval trials' held-in spikes too (5 steps an epoch, not 4), and resumes bitwise")
    func evalTrialsResume() throws {
        let dir = CLI.temporaryDirectory()
        let data = try Self.data(in: dir)
        // 32 training trials and 8 eval trials, global batch 8.
        let args = Self.trainArgs + ["--data", data, "--set", "epochs=6", "--set", "batchSize=8", "--set", "evalTrials=heldIn"]
        let (clean, reference) = try Self.cleanRun(args, in: dir)
        #expect(clean.stdout.contains("training on 32 trials and the held-in spikes of 8 eval trials"), "\(clean.stdout)")
        let first = try String(contentsOfFile: "\(dir)/clean/metrics.jsonl", encoding: .utf8).split(separator: "\n")[0]
        #expect(first.contains("\"step\":5,"), "\(first)")
        try Self.killAndResume(args, run: "\(dir)/killed", afterEpochs: 2, reference: reference)
        // Without the eval trials the same run trains on other data.
        let ignore = try CLI.run(Self.trainArgs + ["--data", data, "--set", "epochs=6", "--set", "batchSize=8", "--run-dir", "\(dir)/ignore"])
        #expect(ignore.status == 0, "\(ignore.output)")
        #expect(try Self.finalState("\(dir)/ignore")["model/readout.weight"] != reference["model/readout.weight"])
    }

    @Test("weightAverage: validation and best.h5 use the moving average of the weights, and it resumes bitwise")
    func weightAverageResume() throws {
        let dir = CLI.temporaryDirectory()
        let data = try Self.data(in: dir)
        let args = Self.trainArgs + ["--data", data, "--set", "epochs=6", "--set", "weightAverage=0.9"]
        let (_, reference) = try Self.cleanRun(args, in: dir)
        let average = try #require(reference["weight_average/readout.weight"])
        #expect(average != reference["model/readout.weight"], "the average is not the live weights")
        // best.h5 holds the average as it was at the best epoch.
        let best = try H5File.open("\(dir)/clean/best.h5")
        let bestEpoch = Int(try best.readAttributeInt("best_epoch"))
        let checkpoints = try FileManager.default.contentsOfDirectory(atPath: "\(dir)/clean").filter { $0.hasPrefix("ckpt-") }.sorted()
        // The averaged weights improve at every epoch of this short run, so the best is the last.
        #expect(bestEpoch == 5, "best epoch \(bestEpoch + 1)")
        #expect(try best.readFloats("model/readout.weight").values == average, "best.h5 is the average of the last epoch")
        #expect(checkpoints.count == 2)
        try Self.killAndResume(args, run: "\(dir)/killed", afterEpochs: 2, reference: reference)
    }

    @Test("precision: bf16 resumes bitwise at the same world size (float32 where the CPU lacks AVX512-BF16)")
    func bf16Resume() throws {
        let dir = CLI.temporaryDirectory()
        let data = try Self.data(in: dir)
        let args = Self.trainArgs + ["--data", data, "--set", "epochs=5", "--set", "precision=bf16"]
        let (clean, reference) = try Self.cleanRun(args, in: dir)
        try Self.killAndResume(args, run: "\(dir)/killed", afterEpochs: 2, reference: reference)
        // And it is not the float32 run (unless this CPU fell back to it, which it says).
        let f32 = try CLI.run(Self.trainArgs + ["--data", data, "--set", "epochs=5", "--run-dir", "\(dir)/f32"])
        #expect(f32.status == 0)
        if !clean.output.contains("AVX512-BF16") {
            #expect(try Self.finalState("\(dir)/f32")["model/readout.weight"] != reference["model/readout.weight"])
        }
    }

    @Test("precision: auto on 2 ranks: every rank trains in rank 0's choice, which precision.json keeps and the checkpoints record; a killed run resumes bitwise in it")
    func autoPrecision() throws {
        let dir = CLI.temporaryDirectory()
        let data = try Self.data(in: dir)
        let args = Self.trainArgs + ["--data", data, "--set", "epochs=5", "--set", "precision=auto"]
        let clean = try CLI.run(args + ["--run-dir", "\(dir)/clean"], ranks: 2)
        #expect(clean.status == 0, "\(clean.output)")
        let kept = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: "\(dir)/clean/precision.json"))) as? [String: Any]
        let choice = try #require(kept?["choice"] as? String)
        #expect(clean.stdout.contains("precision auto: \(choice), the faster here (float32 "), "\(clean.stdout)")
        #expect(clean.stdout.contains("bit-identical on all 2 ranks"), "\(clean.stdout)")
        #expect(try H5File.open("\(dir)/clean/best.h5").readAttributeString("config").contains("\"precision\": \"\(choice)\""))
        let reference = try Self.finalState("\(dir)/clean")
        let run = "\(dir)/killed"
        let killed = try CLI.killWhen(args + ["--run-dir", run], ranks: 2, run: run, output: "\(run).log") {
            CLI.epochsLogged(run) >= 2 && ((try? FileManager.default.contentsOfDirectory(atPath: run)) ?? []).contains { $0.hasPrefix("ckpt-") }
        }
        #expect(killed, "the run ended before its kill")
        let resumed = try CLI.run(args + ["--run-dir", run, "--resume"], ranks: 2)
        #expect(resumed.status == 0, "\(resumed.output)")
        #expect(resumed.stdout.contains("chosen when this run started"), "\(resumed.stdout)")
        // The killed run timed its own products; on a loaded machine (a sanitizer pass) its
        // choice can differ from the clean run's, and then so do its bits.
        let killedKept = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: "\(run)/precision.json"))) as? [String: Any]
        let killedChoice = try #require(killedKept?["choice"] as? String)
        #expect(resumed.stdout.contains("precision auto: \(killedChoice)"), "the resume kept the killed run's choice: \(resumed.stdout)")
        if killedChoice == choice {
            #expect(try Self.finalState(run) == reference, "the resumed auto run differs")
        }
    }

    @Test("A kill in the middle of a checkpoint write leaves the previous checkpoint loadable")
    func killDuringWrite() throws {
        let dir = CLI.temporaryDirectory()
        let data = try Self.data(in: dir)
        let clean = try Self.run(["--data", data, "--run-dir", "\(dir)/clean"])
        #expect(clean.status == 0)
        // The real process, killed from outside the moment its second checkpoint's temporary
        // file appears (inotify): the write is under way. A kill that came after the file was
        // renamed into place would prove nothing, so the test retries on the next write until
        // the temporary file is found left behind.
        var landed = false
        for attempt in 1...5 where !landed {
            let run = "\(dir)/run\(attempt)"
            try FileManager.default.createDirectory(atPath: run, withIntermediateDirectories: true)
            let watch = try DirectoryWatch(run)
            let job = try BackgroundJob(CLI.binary, Self.trainArgs + ["--data", data, "--run-dir", run], output: "\(run).log")
            let appeared = watch.waitForCreated(timeout: 120, count: 2) { $0.hasPrefix(".ckpt-") && $0.contains(".tmp-") }
            kill(job.pid, SIGKILL)
            #expect(job.wait(timeout: 30) == 128 + SIGKILL, "\(job.output)")
            guard appeared else { Issue.record("no second checkpoint write within 120 s: \(job.output)"); return }
            let files = try FileManager.default.contentsOfDirectory(atPath: run)
            landed = files.contains { $0.hasPrefix(".ckpt-") && $0.contains(".tmp-") }
            guard landed else { continue }
            #expect(files.filter { $0.hasPrefix("ckpt-") }.count == 1, "only the first checkpoint is complete: \(files)")
            let resumed = try Self.run(["--data", data, "--run-dir", run, "--resume"])
            #expect(resumed.status == 0, "\(resumed.output)")
            #expect(try Self.finalState(run) == Self.finalState("\(dir)/clean"))
            #expect(try !FileManager.default.contentsOfDirectory(atPath: run).contains { $0.contains(".tmp-") },
                    "the resumed run removes the half-written file")
        }
        #expect(landed, "no kill landed inside a checkpoint write in 5 attempts")
    }

    @Test("SIGTERM: one checkpoint, exit status 75; a corrupt newest checkpoint is skipped on resume")
    func preemption() throws {
        let dir = CLI.temporaryDirectory()
        let data = try Self.data(in: dir)
        let run = "\(dir)/run"
        // Long enough to be signalled mid-run: 400 epochs of the tiny model.
        let process = Process()
        process.executableURL = URL(fileURLWithPath: CLI.binary)
        process.arguments = ["train", "--config", "Configs/tiny.yaml", "--data", data, "--run-dir", run, "--set", "epochs=400",
                             "--set", "checkpointEvery=1000"]
        process.currentDirectoryURL = URL(fileURLWithPath: CLI.packageRoot)
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        // Signal once training is under way (the first epoch is logged), not during start-up.
        let deadline = Date().addingTimeInterval(60)
        while Date() < deadline {
            let logged = (try? String(contentsOfFile: "\(run)/metrics.jsonl", encoding: .utf8)) ?? ""
            if logged.contains("\n") { break }
            Thread.sleep(forTimeInterval: 0.1)
        }
        process.terminate()                                          // SIGTERM
        process.waitUntilExit()
        #expect(process.terminationReason == .exit && process.terminationStatus == 75)
        let checkpoints = try FileManager.default.contentsOfDirectory(atPath: run).filter { $0.hasPrefix("ckpt-") }
        #expect(checkpoints.count == 1, "\(checkpoints)")
        // Corrupt a copy placed as the newest checkpoint: resume must warn and use the real one.
        let good = "\(run)/\(checkpoints[0])"
        let bytes = try Data(contentsOf: URL(fileURLWithPath: good))
        try bytes.prefix(bytes.count / 3).write(to: URL(fileURLWithPath: "\(run)/ckpt-9999999999.h5"))
        let resumed = try CLI.run(["train", "--config", "Configs/tiny.yaml", "--data", data, "--run-dir", run,
                                   "--set", "epochs=1", "--resume"])
        #expect(resumed.stdout.contains("skipping a checkpoint") && resumed.stdout.contains("ckpt-9999999999.h5"), "\(resumed.output)")
        #expect(resumed.stdout.contains("resuming from \(good)"), "\(resumed.output)")
    }

    @Test("SIGUSR1 to the ranks of mpirun -n 2: both stop at the same step, one checkpoint, exit 75, then resume")
    func mpiPreemption() throws {
        let dir = CLI.temporaryDirectory()
        let data = try Self.data(in: dir)
        let run = "\(dir)/run"
        let (status, stdout) = try CLI.preempt(
            ["train", "--config", "Configs/tiny.yaml", "--data", data, "--run-dir", run, "--set", "epochs=400",
             "--set", "checkpointEvery=1000", "--set", "seed=0"],
            ranks: 2, pattern: "lflow-dist train .*--run-dir \(run) ", timeout: 60) {
            ((try? String(contentsOfFile: "\(run)/metrics.jsonl", encoding: .utf8)) ?? "").contains("\n")
        }
        #expect(status == 75, "\(stdout)")
        #expect(stdout.components(separatedBy: "preempted at").count == 2, "one preemption message: \(stdout)")
        let checkpoints = try FileManager.default.contentsOfDirectory(atPath: run).filter { $0.hasPrefix("ckpt-") }
        #expect(checkpoints.count == 1)
        let resumed = try CLI.run(["train", "--config", "Configs/tiny.yaml", "--data", data, "--run-dir", run,
                                   "--set", "epochs=1", "--resume"], ranks: 2)
        #expect(resumed.status == 0 && resumed.stdout.contains("resuming from"), "\(resumed.output)")
    }

    /// Every file of a run directory, opened as a user would: HDF5 files read through every
    /// dataset, JSON parsed, each metrics line parsed. Returns the problems.
    static func unreadableFiles(_ run: String) -> [String] {
        var problems: [String] = []
        let names = (try? FileManager.default.contentsOfDirectory(atPath: run)) ?? []
        for name in names where !name.hasPrefix(".") {
            let path = "\(run)/\(name)"
            do {
                if name.hasSuffix(".h5") {
                    let f = try H5File.open(path)
                    func readAll(_ group: String) throws {
                        for key in try f.children(of: group) { _ = try f.readFloats(group == "/" ? key : "\(group)/\(key)") }
                        for sub in try f.children(of: group, groups: true) { try readAll(group == "/" ? sub : "\(group)/\(sub)") }
                    }
                    try readAll("/")
                } else if name.hasSuffix(".json") {
                    _ = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path)))
                } else if name.hasSuffix(".jsonl") {
                    for line in try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n") {
                        _ = try JSONSerialization.jsonObject(with: Data(line.utf8))
                    }
                }
            } catch {
                problems.append("\(name): \(error)")
            }
        }
        return problems
    }

    @Test("Fault soak: a 2-rank job SIGKILLed whole at random moments and restarted each time ends bitwise equal to an uninterrupted run; every file left behind loads")
    func faultSoak() throws {
        let dir = CLI.temporaryDirectory()
        let data = try Self.data(in: dir)
        // 40 epochs of 4 steps; a checkpoint every epoch, so kills land in steps, in
        // validation and in checkpoint writes.
        let args = Self.trainArgs + ["--data", data, "--set", "epochs=40"]
        let clean = try CLI.run(args + ["--run-dir", "\(dir)/clean"], ranks: 2)
        #expect(clean.status == 0, "\(clean.output)")
        let run = "\(dir)/soak"
        // Seeded moments, so a failure can be replayed: after a random epoch (rising from kill to
        // kill), plus a random 0–60 ms, so kills land in steps, validation and checkpoint writes.
        var state: UInt64 = 20261125
        func uniform() -> Double {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return Double(state >> 11) / Double(1 << 53)
        }
        var moments: [String] = []
        var epoch = 0
        for attempt in 0..<5 {
            epoch += 2 + Int(uniform() * 6)
            let delay = 0.06 * uniform()
            let job = try BackgroundJob("/usr/bin/env", ["mpirun", "--oversubscribe", "-n", "2", CLI.binary] + args + ["--run-dir", run],
                                        output: "\(dir)/attempt\(attempt).log")
            let reached = waitUntil(timeout: 60) {
                ((try? String(contentsOfFile: "\(run)/metrics.jsonl", encoding: .utf8)) ?? "").split(separator: "\n").count >= epoch
            }
            #expect(reached, "attempt \(attempt) did not reach epoch \(epoch): \(job.output)")
            Thread.sleep(forTimeInterval: delay)
            // The whole job at once, as a node failure or `scancel -s KILL` would: mpirun and both ranks.
            Processes.signal(Processes.matching(run) + [job.pid], SIGKILL)
            _ = job.wait(timeout: 30)
            moments.append("epoch \(epoch) + \(Int(delay * 1000)) ms")
            #expect(waitUntil(timeout: 10) { Processes.matching(run).isEmpty })
            let problems = Self.unreadableFiles(run)
            #expect(problems.isEmpty, "after a kill at \(moments.last!) (attempt \(attempt)): \(problems)")
        }
        let finished = try CLI.run(args + ["--run-dir", run], ranks: 2)
        #expect(finished.status == 0, "\(finished.output)")
        #expect(try Self.finalState(run) == Self.finalState("\(dir)/clean"), "killed at \(moments) s: the result differs")
        let last = try H5File.open("\(run)/last.h5"), reference = try H5File.open("\(dir)/clean/last.h5")
        for name in try reference.children(of: "model") {
            #expect(try last.readFloats("model/\(name)").values == reference.readFloats("model/\(name)").values, "last.h5 \(name)")
        }
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: run).filter { $0.hasPrefix(".") }
        #expect(leftovers.isEmpty, "temporary files left: \(leftovers)")
        #expect(Self.unreadableFiles(run).isEmpty)
    }

    @Test("A run directory of another config is refused, naming the field")
    func otherConfig() throws {
        let dir = CLI.temporaryDirectory()
        let data = try Self.data(in: dir)
        #expect(try Self.run(["--data", data, "--run-dir", "\(dir)/run"]).status == 0)
        let r = try Self.run(["--data", data, "--run-dir", "\(dir)/run", "--set", "mass=2"])
        #expect(r.status != 0 && r.stderr.contains("another config") && r.stderr.contains("mass"), "\(r.output)")
        let none = try Self.run(["--data", data, "--run-dir", "\(dir)/empty", "--resume"])
        #expect(none.status != 0 && none.stderr.contains("no checkpoint"), "\(none.output)")
    }

    @Test("Resume under mpirun -n 2 after a kill is bitwise; a different world size continues")
    func mpiResume() throws {
        let dir = CLI.temporaryDirectory()
        let data = try Self.data(in: dir)
        let twelve = ["--set", "epochs=12"]
        let clean = try Self.run(["--data", data, "--run-dir", "\(dir)/clean"] + twelve, ranks: 2)
        #expect(clean.status == 0, "\(clean.output)")
        #expect(try CLI.killWhen(Self.trainArgs + twelve + ["--data", data, "--run-dir", "\(dir)/run"], ranks: 2, run: "\(dir)/run",
                                 output: "\(dir)/run.log") { CLI.epochsLogged("\(dir)/run") >= 2 })
        let resumed = try Self.run(["--data", data, "--run-dir", "\(dir)/run"] + twelve, ranks: 2)
        #expect(resumed.status == 0, "\(resumed.output)")
        #expect(try Self.finalState("\(dir)/run") == Self.finalState("\(dir)/clean"))
        // Killed under 2 ranks, resumed on 3: continues from the same cursor.
        #expect(try CLI.killWhen(Self.trainArgs + twelve + ["--data", data, "--run-dir", "\(dir)/other"], ranks: 2, run: "\(dir)/other",
                                 output: "\(dir)/other.log") { CLI.epochsLogged("\(dir)/other") >= 2 })
        let three = try Self.run(["--data", data, "--run-dir", "\(dir)/other"] + twelve, ranks: 3)
        #expect(three.status == 0 && three.stdout.contains("written by 2 ranks, continuing on 3"), "\(three.output)")
    }
}

@Suite("Launch scripts")
struct LaunchTests {
    @Test("resume-until-done reruns a command while it exits 75, then passes its status through")
    func resumeLoop() throws {
        let dir = CLI.temporaryDirectory()
        let script = "\(dir)/job.sh"
        // Exits 75 twice (preempted), then 0.
        try """
            #!/usr/bin/env bash
            n=$(cat "\(dir)/count" 2>/dev/null || echo 0); n=$((n + 1)); echo $n > "\(dir)/count"
            [ $n -lt 3 ] && exit 75
            exit 0
            """.write(toFile: script, atomically: true, encoding: .utf8)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/bash")
        process.arguments = [CLI.packageRoot + "/Launch/resume-until-done.sh", "/bin/bash", script]
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        process.waitUntilExit()
        #expect(process.terminationStatus == 0)
        #expect(try String(contentsOfFile: "\(dir)/count", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines) == "3")
    }
}

/// A real full disk: a 96 KiB tmpfs (needs root, as CI has).
enum FullDisk {
    static func sh(_ command: String) -> Int32 {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/sh")
        p.arguments = ["-c", command]
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        guard (try? p.run()) != nil else { return -1 }
        p.waitUntilExit()
        return p.terminationStatus
    }

    static let canMount: Bool = {
        let probe = NSTemporaryDirectory() + "lflow-mount-probe-\(getpid())"
        try? FileManager.default.createDirectory(atPath: probe, withIntermediateDirectories: true)
        defer { _ = sh("umount '\(probe)'; rmdir '\(probe)'") }
        return sh("mount -t tmpfs -o size=96k tmpfs '\(probe)'") == 0
    }()
}

@Suite("Full disk", .serialized, .enabled(if: FullDisk.canMount, "needs root to mount a tiny tmpfs"))
struct FullDiskTests {
    @Test("A full disk ends training with a clear message and leaves no partial checkpoint")
    func fullDisk() throws {
        let dir = CLI.temporaryDirectory()
        let data = try ResumeTests.data(in: dir)
        let mountPoint = "\(dir)/full"
        try FileManager.default.createDirectory(atPath: mountPoint, withIntermediateDirectories: true)
        #expect(FullDisk.sh("mount -t tmpfs -o size=96k tmpfs '\(mountPoint)'") == 0)
        defer { _ = FullDisk.sh("umount '\(mountPoint)'") }
        // 62k parameters: a checkpoint (~1 MB with the optimiser state) cannot fit in 96 KiB.
        let r = try CLI.run(["train", "--config", "Configs/tiny.yaml", "--data", data, "--run-dir", "\(mountPoint)/run",
                             "--set", "epochs=3", "--set", "hidden=32", "--set", "feedForward=64"])
        #expect(r.status != 0)
        #expect(r.stderr.contains("cannot write checkpoint") && r.stderr.contains("free space"), "\(r.stderr)")
        let files = try FileManager.default.contentsOfDirectory(atPath: "\(mountPoint)/run")
        #expect(!files.contains { $0.hasSuffix(".h5") || $0.contains(".tmp-") }, "left behind: \(files)")
    }
}
