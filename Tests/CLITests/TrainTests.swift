import Foundation
import Testing
import HDF5

@Suite("train, predict, evaluate")
struct TrainTests {
    struct Record: Decodable {
        var epoch: Int
        var validHeldOutNLL: Double
        var validReconstruction: Double
        var trainReconstruction: Double
        var learningRate: Double
        var latentR2: Double?
        var latentMotion: Double?
    }

    @Test("The tiny config trains: validation loss falls; metrics log, best checkpoint, submission and report")
    func tiny() throws {
        let dir = CLI.temporaryDirectory()
        let data = "\(dir)/small.h5"
        #expect(try CLI.run(["synth", "--out", data, "--conditions", "8", "--trials-per-condition", "6",
                             "--bins", "20", "--forward-bins", "5"]).status == 0)
        let run = "\(dir)/run"
        let r = try CLI.run(["train", "--config", "Configs/tiny.yaml", "--data", data, "--run-dir", run,
                             "--set", "epochs=8", "--set", "learningRate=0.01"])
        #expect(r.status == 0, "\(r.output)")
        #expect(r.stdout.contains("epoch    8/8") && r.stdout.contains("ETA") && r.stdout.contains("trials/s"))
        #expect(r.stdout.contains("co-bps") && r.stdout.contains("submission: \(run)/submission.h5"))

        let lines = try String(contentsOfFile: "\(run)/metrics.jsonl", encoding: .utf8).split(separator: "\n")
        let records = try lines.map { try JSONDecoder().decode(Record.self, from: Data($0.utf8)) }
        #expect(records.count == 8 && records.map(\.epoch) == Array(0..<8))
        #expect(records.last!.validHeldOutNLL < records.first!.validHeldOutNLL, "held-out NLL \(records.map(\.validHeldOutNLL))")
        #expect(records.last!.validReconstruction < records.first!.validReconstruction)
        // synth data has true latents: the latent probe runs after the first epoch (and every
        // latentEvery = 10 epochs, so not again in 8).
        #expect(records.map { $0.latentR2 != nil } == [true] + Array(repeating: false, count: 7), "\(records.map(\.latentR2))")
        #expect(records[0].latentR2!.isFinite && (0...1).contains(records[0].latentMotion!), "\(records[0])")

        // The best checkpoint loads (inspect refuses anything it cannot load).
        let inspect = try CLI.run(["inspect", "--checkpoint", "\(run)/best.h5", "--data", data, "--trials", "2", "--out", "\(dir)/state.h5"])
        #expect(inspect.status == 0, "\(inspect.output)")
        let report = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: "\(run)/validation.json"))) as! [String: Any]
        for key in ["co-bps", "fp-bps", "vel R2", "psth R2", "rate R2", "smoothed-spikes co-bps"] {
            #expect(report[key] is Double, "validation.json lacks \(key)")
        }

        // predict: deterministic and sampled submissions in the NLB layout; evaluate scores them.
        for samples in ["0", "3"] {
            let sub = "\(dir)/sub\(samples).h5"
            let p = try CLI.run(["predict", "--checkpoint", "\(run)/best.h5", "--data", data, "--out", sub, "--samples", samples])
            #expect(p.status == 0, "\(p.output)")
            let f = try H5File.open(sub)
            #expect(try f.shape(of: "lorenz/train_rates_heldin") == [40, 20, 22])
            #expect(try f.shape(of: "lorenz/eval_rates_heldout") == [8, 20, 7])
            #expect(try f.shape(of: "lorenz/eval_rates_heldout_forward") == [8, 5, 7])
            let e = try CLI.run(["evaluate", "--submission", sub, "--targets", "\(dir)/small-targets.h5", "--json", "\(dir)/scores\(samples).json"])
            #expect(e.status == 0 && e.stdout.contains("co-bps") && e.stdout.contains("fp-bps") && e.stdout.contains("psth R2"), "\(e.output)")
        }
        let a = try H5File.open("\(dir)/sub0.h5").readFloats("lorenz/eval_rates_heldin").values
        let b = try H5File.open("\(dir)/sub3.h5").readFloats("lorenz/eval_rates_heldin").values
        #expect(a != b, "sampled and deterministic predictions should differ")
        let again = try CLI.run(["predict", "--checkpoint", "\(run)/best.h5", "--data", data, "--out", "\(dir)/sub3b.h5", "--samples", "3"])
        #expect(again.status == 0)
        #expect(try H5File.open("\(dir)/sub3b.h5").readFloats("lorenz/eval_rates_heldin").values == b, "predictions are seeded")
    }

    @Test("Two built-in runs started together in one fresh directory both generate the Lorenz data whole and train on it")
    func concurrentBuiltInData() throws {
        let dir = CLI.temporaryDirectory()
        // Before the data was written atomically, the second run truncated the file the first
        // was writing: one ended "cannot be created", the other trained on garbled data.
        let processes = (0..<2).map { i -> (Process, Pipe) in
            let process = Process(), out = Pipe()
            process.executableURL = URL(fileURLWithPath: CLI.binary)
            process.arguments = ["train", "--run-dir", "\(dir)/run\(i)", "--set", "epochs=1", "--set", "predictionSamples=1", "--set", "hidden=8", "--set", "groups=2", "--set", "feedForward=8", "--set", "latentEvery=0"]
            process.environment = CLI.environment()
            process.currentDirectoryURL = URL(fileURLWithPath: dir)
            process.standardOutput = out
            process.standardError = out
            return (process, out)
        }
        for (process, _) in processes { try process.run() }
        for (i, (process, out)) in processes.enumerated() {
            let output = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            process.waitUntilExit()
            #expect(process.terminationStatus == 0, "run \(i): \(output)")
            // The smoothed-spikes baseline needs no training: on whole data it is the same
            // co-bps above 0.1 (0.147 at seed 3; garbled data gave -0.002).
            let baseline = output.split(separator: "\n").first { $0.contains("smoothed-spikes co-bps") }
                .flatMap { $0.split(separator: " ").last }.flatMap { Double($0) }
            #expect((baseline ?? -1) > 0.1, "run \(i): \(output)")
        }
        let left = try FileManager.default.contentsOfDirectory(atPath: "\(dir)/Checkpoints").sorted()
        #expect(left == ["lorenz-targets.h5", "lorenz.h5"], "temporary files left: \(left)")
    }

    @Test("A NaN loss stops training with a clear message and a non-zero exit")
    func divergence() throws {
        let dir = CLI.temporaryDirectory()
        let data = try CLI.smallData(in: dir)
        let r = try CLI.run(["train", "--config", "Configs/tiny.yaml", "--data", data, "--run-dir", "\(dir)/run",
                             "--set", "learningRate=1e30", "--set", "gradClip=0", "--set", "epochs=5"])
        #expect(r.status != 0)
        #expect(["loss became", "metric (heldOut) became", "gradient became"].contains { r.stderr.contains($0) }, "\(r.output)")
        #expect(r.stderr.contains("\(dir)/run/last.h5") && r.stderr.contains("lower learningRate"), "\(r.stderr)")
        #expect(!FileManager.default.fileExists(atPath: "\(dir)/run/best.h5"), "no checkpoint from diverged weights")
        #expect(FileManager.default.fileExists(atPath: "\(dir)/run/last.h5"), "the finite weights before the step are kept")
        let files = (try? FileManager.default.contentsOfDirectory(atPath: "\(dir)/run")) ?? []
        for name in files where name.hasSuffix(".h5") {
            let values = try H5File.open("\(dir)/run/\(name)").readFloats("model/readout.weight").values
            let finite = values.allSatisfy { $0.isFinite }
            #expect(finite, "\(name) holds non-finite parameters")
        }
    }
}

extension TrainTests {
    @Test("An unstable integrator is refused before training, with a stable dt, coupling and mass")
    func unstablePhysics() throws {
        let dir = CLI.temporaryDirectory()
        // 50 steps a trial: long enough for dt 0.5 to grow some learnable potential's path past 10^12.
        let data = "\(dir)/long.h5"
        #expect(try CLI.run(["synth", "--out", data, "--conditions", "2", "--trials-per-condition", "3",
                             "--bins", "40", "--forward-bins", "10"]).status == 0)
        let r = try CLI.run(["train", "--config", "Configs/tiny.yaml", "--data", data, "--run-dir", "\(dir)/run",
                             "--set", "dt=0.5", "--set", "damping=0.05", "--set", "epochs=2"])
        #expect(r.status != 0)
        #expect(r.stderr.contains("refused before training") && r.stderr.contains("dt ≤ ") && r.stderr.contains("mass ≥ "), "\(r.stderr)")
        let files = (try? FileManager.default.contentsOfDirectory(atPath: "\(dir)/run")) ?? []
        #expect(!files.contains { $0.hasSuffix(".h5") }, "\(files)")
    }
}

@Suite("Early stopping")
struct EarlyStoppingTests {
    @Test("Training stops after earlyStoppingPatience epochs without a better validation metric")
    func stops() throws {
        let dir = CLI.temporaryDirectory()
        let data = try CLI.smallData(in: dir)
        // A learning rate this small cannot improve the metric beyond the 1st epoch's noise.
        let r = try CLI.run(["train", "--config", "Configs/tiny.yaml", "--data", data, "--run-dir", "\(dir)/run",
                             "--set", "epochs=40", "--set", "learningRate=1e-12", "--set", "earlyStoppingPatience=2"])
        #expect(r.status == 0, "\(r.output)")
        #expect(r.stdout.contains("early stopping"))
        let epochs = try String(contentsOfFile: "\(dir)/run/metrics.jsonl", encoding: .utf8).split(separator: "\n").count
        #expect(epochs < 40, "ran \(epochs) epochs")
    }
}

@Suite("A wall-clock budget (maxMinutes)", .serialized)
struct BudgetTests {
    struct Checkpoint: Decodable { var epoch: Int; var trainingSeconds: Double?; var plannedEpochs: Int? }

    /// The trainer state of the newest checkpoint of a run.
    static func state(_ run: String) throws -> Checkpoint {
        let names = try FileManager.default.contentsOfDirectory(atPath: run).filter { $0.hasPrefix("ckpt-") }.sorted()
        let json = try H5File.open("\(run)/\(names.last!)").readAttributeString("trainer_state")
        return try JSONDecoder().decode(Checkpoint.self, from: Data(json.utf8))
    }

    static func seconds(_ run: String) throws -> [Double] {
        try String(contentsOfFile: "\(run)/metrics.jsonl", encoding: .utf8).split(separator: "\n").map {
            (try JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any])["seconds"] as! Double
        }
    }

    @Test("An 8-second budget on 2 ranks ends the run by itself at the same epoch on every rank, with the report and submission")
    func stopsAtBudget() throws {
        let dir = CLI.temporaryDirectory()
        let data = try ResumeTests.data(in: dir)
        let run = "\(dir)/run"
        let r = try CLI.run(["train", "--config", "Configs/tiny.yaml", "--data", data, "--run-dir", run,
                             "--set", "epochs=100000", "--set", "maxMinutes=0.1333"], ranks: 2)
        #expect(r.status == 0, "\(r.output)")
        #expect(r.stdout.contains("the budget of 8s is spent"), "\(r.stdout)")
        #expect(r.stdout.contains("bit-identical on all 2 ranks"), "every rank stopped at the same step")
        #expect(r.stdout.contains("epochs fit"), "the plan after 3 epochs: \(r.stdout)")
        // At least the 5 epochs that plan the budget ("epochs fit" above). 8 s, not 4: under ASan
        // on a loaded 2-core machine a 4 s budget ran out right at the plan (5 epochs).
        let epochs = try Self.seconds(run).count
        #expect(epochs < 100000 && epochs >= 5, "\(epochs) epochs")
        let final = try Self.state(run)
        #expect(final.epoch == epochs)
        let total = try #require(final.trainingSeconds)
        let longest = try Self.seconds(run).max() ?? 0
        #expect(total >= 7.99 && total <= 8 + longest + 0.5, "\(total) s of training for an 8 s budget (longest epoch \(longest) s)")
        #expect(FileManager.default.fileExists(atPath: "\(run)/submission.h5") && FileManager.default.fileExists(atPath: "\(run)/validation.json"))
        // Progress lines never count past their total nor show a negative ETA, even when the
        // epochs run faster than planned.
        for line in r.stdout.split(separator: "\n") where line.hasPrefix("epoch ") {
            let counts = line.dropFirst(6).split(separator: " ", omittingEmptySubsequences: true)[0].split(separator: "/").compactMap { Int($0) }
            #expect(counts.count == 2 && counts[0] <= counts[1], "\(line)")
            #expect(!line.contains("ETA -"), "\(line)")
        }
    }

    @Test("A preempted budgeted run, resumed, counts the time already spent")
    func countsAcrossResumes() throws {
        let dir = CLI.temporaryDirectory()
        let data = try ResumeTests.data(in: dir)
        let run = "\(dir)/run"
        let args = ["train", "--config", "Configs/tiny.yaml", "--data", data, "--run-dir", run,
                    "--set", "epochs=100000", "--set", "maxMinutes=0.1"]
        // Preempted after 2 s of training and after the plan (made once 5 epochs are timed; a
        // sanitizer's slower first epochs can take longer than 2 s to get there).
        let (status, stdout) = try CLI.preempt(args, ranks: 2, pattern: "lflow-dist train .*--run-dir \(run) ", timeout: 60) {
            let seconds = (try? Self.seconds(run)) ?? []
            return seconds.count > 5 && seconds.reduce(0, +) > 2
        }
        #expect(status == 75, "\(stdout)")
        let before = try Self.state(run)
        #expect((before.trainingSeconds ?? 0) > 1.5 && (before.trainingSeconds ?? 0) < 6)
        #expect(before.plannedEpochs != nil, "the plan is kept in the checkpoint")
        let resumed = try CLI.run(args, ranks: 2)
        #expect(resumed.status == 0, "\(resumed.output)")
        #expect(resumed.stdout.contains("spent before this session"), "\(resumed.stdout)")
        let total = try #require(try Self.state(run).trainingSeconds)
        // The run stops at the first epoch's end past the budget: at most one epoch over (under
        // ASan on a loaded machine an epoch can take more than 1.5 s).
        let longest = try Self.seconds(run).max() ?? 0
        #expect(total >= 6 && total <= 6 + longest + 0.5, "\(total) s of training over both sessions for a 6 s budget (longest epoch \(longest) s)")
    }
}

@Suite("An ensemble (ensemble > 1)", .serialized)
struct EnsembleTests {
    /// Every dataset of an HDF5 file, by name.
    static func datasets(_ path: String) throws -> [String: [Float]] {
        let file = try H5File.open(path)
        var out: [String: [Float]] = [:]
        for group in try file.children(of: "/", groups: true) {
            for key in try file.children(of: group) { out["\(group)/\(key)"] = try file.readFloats("\(group)/\(key)").values }
        }
        return out
    }

    @Test("Members train in turn with their own seeds; the submission is predict's ensemble of their best.h5, bitwise; killed in member 2, the same command keeps member 1 and ends with the same submission")
    func ensemble() throws {
        let dir = CLI.temporaryDirectory()
        let data = try CLI.smallData(in: dir)
        let args = ["train", "--config", "Configs/tiny.yaml", "--data", data, "--set", "epochs=6", "--set", "ensemble=3"]
        let clean = try CLI.run(args + ["--run-dir", "\(dir)/clean"], ranks: 2)
        #expect(clean.status == 0, "\(clean.output)")
        #expect(clean.stdout.contains("ensemble member 3 of 3: seed 2") && clean.stdout.contains("ensemble of 3: the mean rates of"), "\(clean.stdout)")
        let members = (1...3).map { "\(dir)/clean/member-\($0)" }
        for m in members { #expect(FileManager.default.fileExists(atPath: "\(m)/best.h5") && FileManager.default.fileExists(atPath: "\(m)/validation.json")) }
        // Each member's record is a search's job record: jobs/j<k>.json, complete, with its seed.
        for k in 1...3 {
            let path = "\(dir)/clean/jobs/" + String(format: "j%05d.json", k)
            let record = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as? [String: Any]
            let job = record?["job"] as? [String: Any], values = job?["values"] as? [[String: Any]]
            #expect(record?["status"] as? String == "complete" && job?["trial"] as? Int == k, "\(path): \(String(describing: record))")
            #expect(values?.first?["field"] as? String == "seed" && values?.first?["value"] as? String == "\(k - 1)")
        }
        // One rule for the mean: predict with the three checkpoints writes the same file.
        let predicted = try CLI.run(["predict", "--data", data, "--out", "\(dir)/predicted.h5"] + members.flatMap { ["--checkpoint", "\($0)/best.h5"] }, ranks: 2)
        #expect(predicted.status == 0, "\(predicted.output)")
        let submission = try Self.datasets("\(dir)/clean/submission.h5")
        let ensemblePredicted = try Self.datasets("\(dir)/predicted.h5"), first = try Self.datasets("\(members[0])/submission.h5")
        #expect(!submission.isEmpty && submission == ensemblePredicted)
        #expect(submission != first)

        let killed = try CLI.killWhen(args + ["--run-dir", "\(dir)/killed"], ranks: 2, run: "\(dir)/killed", output: "\(dir)/killed.log") {
            CLI.epochsLogged("\(dir)/killed/member-2") >= 2
        }
        #expect(killed, "the ensemble ended before its kill")
        let resumed = try CLI.run(args + ["--run-dir", "\(dir)/killed"], ranks: 2)
        #expect(resumed.status == 0, "\(resumed.output)")
        #expect(resumed.stdout.contains("ensemble member 1 of 3 (seed 0): done, kept"), "\(resumed.stdout)")
        let resumedSubmission = try Self.datasets("\(dir)/killed/submission.h5")
        #expect(resumedSubmission == submission)
    }
}
