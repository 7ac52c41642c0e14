import Foundation
import Testing
import HDF5

/// `search`: a grid over sub-communicators, each trial the same computation as `train`.
@Suite("Grid search over MPI groups", .serialized)
struct SearchTests {
    static let tiny = ["--config", "Configs/tiny.yaml"]

    /// The results table without its last column (wall time, the one field that differs
    /// between two runs of the same search).
    static func table(_ run: String) throws -> [String] {
        try String(contentsOfFile: "\(run)/results.csv", encoding: .utf8).split(separator: "\n")
            .map { $0.split(separator: ",", omittingEmptySubsequences: false).dropLast().joined(separator: ",") }
    }

    /// Every tensor of best.h5 and last.h5, and validation.json without its timing.
    static func result(_ run: String) throws -> [String: [Float]] {
        var out: [String: [Float]] = [:]
        for file in ["best.h5", "last.h5"] {
            let f = try H5File.open("\(run)/\(file)")
            for name in try f.children(of: "model") { out["\(file)/\(name)"] = try f.readFloats("model/\(name)").values }
        }
        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: "\(run)/validation.json"))) as! [String: Any]
        for (key, value) in json where key != "minutes" && key != "end-of-run seconds" { out["validation/\(key)"] = [Float((value as! NSNumber).doubleValue)] }
        return out
    }

    /// Each trial's status in results.csv (complete, failed, or pending while it has no result).
    static func statuses(_ run: String) -> [String: String] {
        let lines = ((try? String(contentsOfFile: "\(run)/results.csv", encoding: .utf8)) ?? "").split(separator: "\n")
            .map { $0.split(separator: ",", omittingEmptySubsequences: false).map(String.init) }
        guard let header = lines.first, let column = header.firstIndex(of: "status") else { return [:] }
        return Dictionary(lines.dropFirst().map { ($0[0], $0[column]) }, uniquingKeysWith: { a, _ in a })
    }

    @Test("mpirun -n 4 search --ranks-per-trial 2 over a 4-point grid: 4 complete rows, each bitwise equal to train on 2 ranks")
    func searchEqualsTrain() throws {
        let dir = CLI.temporaryDirectory()
        let data = try ResumeTests.data(in: dir)
        let r = try CLI.run(["search"] + Self.tiny + ["--data", data, "--ranks-per-trial", "2", "--grid", "mass=0.5,1",
                                                     "--grid", "damping=0.3,0.8", "--run-dir", "\(dir)/search"], ranks: 4)
        #expect(r.status == 0, "\(r.output)")
        let rows = try Self.table("\(dir)/search").dropFirst()
        #expect(rows.count == 4)
        #expect(rows.allSatisfy { $0.contains(",complete,") }, "\(rows)")
        #expect(r.stdout.contains("[4/4]"), "\(r.stdout)")
        for name in ["best.yaml", "results.md", "heatmap.svg"] {
            #expect(FileManager.default.fileExists(atPath: "\(dir)/search/\(name)"), "\(name) missing")
        }
        let trials = try FileManager.default.contentsOfDirectory(atPath: "\(dir)/search/trials").sorted()
        #expect(trials.count == 4)
        for (trial, (mass, damping)) in zip(trials, [("0.5", "0.3"), ("0.5", "0.8"), ("1.0", "0.3"), ("1.0", "0.8")]) {
            #expect(trial.hasSuffix("mass=\(mass)_damping=\(damping)"))
            let alone = "\(dir)/train-\(trial)"
            let t = try CLI.run(["train"] + Self.tiny + ["--data", data, "--set", "mass=\(mass)", "--set", "damping=\(damping)",
                                                        "--run-dir", alone], ranks: 2)
            #expect(t.status == 0, "\(t.output)")
            let fromSearch = try Self.result("\(dir)/search/trials/\(trial)"), fromTrain = try Self.result(alone)
            #expect(fromSearch.keys.count > 20)
            #expect(fromSearch == fromTrain, "trial \(trial) differs from train alone")
        }

        // The same finished search, ranked by the validation metric: nothing retrains, and the
        // ★ and best.yaml move to the lowest best_valid_metric. synth data has true latents, so
        // every row has a latent R².
        let csv = try String(contentsOfFile: "\(dir)/search/results.csv", encoding: .utf8).split(separator: "\n").map { $0.split(separator: ",", omittingEmptySubsequences: false).map(String.init) }
        let header = csv[0], body = csv.dropFirst()
        let loss = header.firstIndex(of: "best_valid_metric")!, latent = header.firstIndex(of: "valid_latent_r2")!
        #expect(body.allSatisfy { Double($0[latent]) != nil }, "\(body)")
        let lowest = body.min { Double($0[loss])! < Double($1[loss])! }![0]
        let ranked = try CLI.run(["search"] + Self.tiny + ["--data", data, "--ranks-per-trial", "2", "--grid", "mass=0.5,1",
                                                          "--grid", "damping=0.3,0.8", "--run-dir", "\(dir)/search",
                                                          "--metric", "validation"], ranks: 4)
        #expect(ranked.status == 0 && ranked.stdout.contains("4 job(s) already finished"), "\(ranked.output)")
        let best = try String(contentsOfFile: "\(dir)/search/best.yaml", encoding: .utf8)
        #expect(best.contains("by best validation metric: trial \(lowest)"), "\(best.prefix(300))")
        let markdown = try String(contentsOfFile: "\(dir)/search/results.md", encoding: .utf8)
        #expect(markdown.contains("| \(lowest) ★ |"), "\(markdown)")
    }

    @Test("A search killed midway, or preempted by SIGUSR1, and started again skips complete trials, resumes running ones, and ends with the uninterrupted table")
    func killAndRestart() throws {
        let dir = CLI.temporaryDirectory()
        let data = try ResumeTests.data(in: dir)
        // Group 0 (ranks 0, 1) takes the short trials, group 1 the long one first. The whole job
        // is killed (SIGKILL) once two trials are complete and a running one has a checkpoint.
        let args = ["search"] + Self.tiny + ["--data", data, "--ranks-per-trial", "2", "--grid", "mass=0.5,1",
                                              "--grid", "epochs=2,60"]
        let reference = try CLI.run(args + ["--run-dir", "\(dir)/reference"], ranks: 4)
        #expect(reference.status == 0, "\(reference.output)")

        let run = "\(dir)/killed"
        let killedMidway = try CLI.killWhen(args + ["--run-dir", run], ranks: 4, run: run, output: "\(dir)/killed.log") {
            let statuses = Self.statuses(run)
            return statuses.values.filter { $0 == "complete" }.count >= 2 && statuses.contains { trial, status in
                status == "pending"
                    && ((try? FileManager.default.contentsOfDirectory(atPath: "\(run)/trials/\(trial)")) ?? []).contains { $0.hasPrefix("ckpt-") }
            }
        }
        #expect(killedMidway, "the search finished before it could be killed midway")
        let trials = try FileManager.default.contentsOfDirectory(atPath: "\(run)/trials").sorted()
        let statuses = Self.statuses(run)
        let before = trials.map { statuses[$0] ?? "pending" }
        let complete = trials.indices.filter { before[$0] == "complete" }
        #expect(complete.count >= 2 && complete.count < 4, "\(before)")
        let stamps = try complete.map { try FileManager.default.attributesOfItem(atPath: "\(run)/trials/\(trials[$0])/best.h5")[.modificationDate] as! Date }

        let restarted = try CLI.run(args + ["--run-dir", run], ranks: 4)
        #expect(restarted.status == 0, "\(restarted.output)")
        #expect(restarted.stdout.contains("already finished, kept"), "\(restarted.stdout)")
        for (i, index) in complete.enumerated() {
            let trial = "\(run)/trials/\(trials[index])"
            #expect(try FileManager.default.attributesOfItem(atPath: "\(trial)/best.h5")[.modificationDate] as! Date == stamps[i],
                    "\(trials[index]) was trained again")
        }
        let resumed = try trials.filter {
            try String(contentsOfFile: "\(run)/trials/\($0)/train.log", encoding: .utf8).contains("resuming from")
        }
        #expect(!resumed.isEmpty, "no trial resumed from a checkpoint: \(before)")
        #expect(try Self.table(run) == Self.table("\(dir)/reference"))

        // Preemption, as SLURM's --signal=USR1 delivers it: every group checkpoints, exit 75.
        let preempted = "\(dir)/preempted"
        let (status, stdout) = try CLI.preempt(args + ["--run-dir", preempted], ranks: 4,
                                               pattern: "lflow-dist search .*--run-dir \(preempted)$") {
            ((try? FileManager.default.contentsOfDirectory(atPath: "\(preempted)/trials")) ?? []).contains { trial in
                ((try? FileManager.default.contentsOfDirectory(atPath: "\(preempted)/trials/\(trial)")) ?? []).contains { $0.hasPrefix("ckpt-") }
            }
        }
        #expect(status == 75, "\(stdout)")
        #expect(stdout.contains("search preempted"), "\(stdout)")
        let left = Array(Self.statuses(preempted).values)
        #expect(left.contains("pending") && !left.allSatisfy { $0 == "complete" }, "\(left)")
        let continued = try CLI.run(args + ["--run-dir", preempted], ranks: 4)
        #expect(continued.status == 0, "\(continued.output)")
        #expect(try Self.table(preempted) == Self.table("\(dir)/reference"))
    }

    @Test("Unknown fields, empty grids, impossible values and uneven groups are refused before anything trains")
    func refusals() throws {
        let dir = CLI.temporaryDirectory()
        let data = try CLI.smallData(in: dir)
        let cases: [([String], Int, String)] = [
            (["--grid", "dampng=0.3,0.5"], 2, "unknown config key 'dampng'. Did you mean damping?"),
            (["--grid", "mass="], 2, "--grid mass=: no values"),
            (["--grid", "mass=0.5,,1"], 1, "an empty value"),
            (["--grid", "mass=0,1"], 2, "grid point mass=0.0 is impossible: mass must be > 0"),
            (["--grid", "mass=1", "--grid", "damping=0.5,1"], 1, "grid point mass=1.0, damping=1.0 is impossible: damping must be in [0, 1)"),
            (["--grid", "potential=diagonal"], 1, "'potential' is not numeric"),
            (["--grid", "mass=1", "--ranks-per-trial", "2"], 3, "3 ranks do not split into groups of --ranks-per-trial 2"),
        ]
        for (extra, ranks, message) in cases {
            let run = "\(dir)/run-\(UUID().uuidString)"
            let r = try CLI.run(["search"] + Self.tiny + ["--data", data, "--run-dir", run] + extra, ranks: ranks)
            #expect(r.status != 0, "\(extra)")
            #expect(r.output.contains(message), "\(extra): \(r.output)")
            #expect(!r.output.contains("Usage:"), "\(extra): \(r.output)")
            #expect(!FileManager.default.fileExists(atPath: run), "\(extra) created the run directory")
        }
    }

    @Test("Mass and coupling act only through their ratio: the search says so, and equal ratios train identically")
    func massCouplingRatio() throws {
        let dir = CLI.temporaryDirectory()
        let data = try CLI.smallData(in: dir)
        let r = try CLI.run(["search"] + Self.tiny + ["--data", data, "--grid", "mass=0.5,1", "--grid", "coupling=0.5,1", "--run-dir", "\(dir)/s"])
        #expect(r.status == 0, "\(r.output)")
        #expect(r.stdout.contains("3 distinct models among its 4 points"), "\(r.stdout)")
        let rows = try Self.table("\(dir)/s").dropFirst().map { $0.split(separator: ",", omittingEmptySubsequences: false).dropFirst(3).joined(separator: ",") }
        #expect(rows[0] == rows[3], "mass=0.5 coupling=0.5 vs mass=1 coupling=1: \(rows)")
        #expect(rows[0] != rows[1])
    }

    @Test("A NaN trial is marked failed with its reason; the others complete")
    func failedTrial() throws {
        let dir = CLI.temporaryDirectory()
        let data = try CLI.smallData(in: dir)
        let r = try CLI.run(["search"] + Self.tiny + ["--data", data, "--grid", "learningRate=0.005,1e30", "--run-dir", "\(dir)/s"], ranks: 2)
        #expect(r.status == 0, "\(r.output)")
        let rows = try Self.table("\(dir)/s")
        #expect(rows[1].contains(",complete,"), "\(rows)")
        #expect(rows[2].contains(",failed,") && rows[2].contains("the validation metric (heldOut) became"), "\(rows)")
        #expect(r.stdout.contains("FAILED"))
        let best = try String(contentsOfFile: "\(dir)/s/best.yaml", encoding: .utf8)
        #expect(best.contains("learningRate: 0.005"))
    }
}
