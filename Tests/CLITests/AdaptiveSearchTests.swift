import Foundation
import Testing
import HDF5

/// ASHA and PBT: decisions from results alone, so a search killed at any moment and started
/// again with the same command ends bitwise where the uninterrupted one does.
@Suite("Adaptive search: ASHA and PBT", .serialized)
struct AdaptiveSearchTests {
    static let pbt = ["search", "--config", "Configs/tiny.yaml", "--strategy", "pbt", "--population", "4", "--generation-epochs", "3",
                      "--patience-generations", "0", "--set", "epochs=30", "--explore", "learningRate=0.001:0.05", "--explore", "dropout=0.01:0.4"]

    /// Every tensor of the best member's (or trial's) final weights.
    static func weights(_ file: String) throws -> [String: [Float]] {
        let f = try H5File.open(file)
        var out: [String: [Float]] = [:]
        for name in try f.children(of: "model") { out[name] = try f.readFloats("model/\(name)").values }
        return out
    }

    /// The path of the best member's best.h5, from best.yaml's header.
    static func bestWeights(_ run: String) throws -> String {
        let text = try String(contentsOfFile: "\(run)/best.yaml", encoding: .utf8)
        let line = try #require(text.split(separator: "\n").first { $0.contains("its weights: ") || $0.contains("predict --checkpoint ") })
        return String(line.split(separator: " ").last!)
    }

    @Test("ASHA promotes the top third of each rung, trains a fraction of the grid's epochs, and a killed search ends with the uninterrupted table")
    func asha() throws {
        let dir = CLI.temporaryDirectory()
        let data = try CLI.smallData(in: dir)
        let args = ["search", "--config", "Configs/tiny.yaml", "--data", data, "--strategy", "asha", "--grace-epochs", "2", "--reduction-factor", "3",
                    "--set", "epochs=18", "--grid", "learningRate=0.001,0.003,0.01,0.03", "--grid", "damping=0.3,0.55,0.8"]
        let clean = try CLI.run(args + ["--run-dir", "\(dir)/clean"], ranks: 2)
        #expect(clean.status == 0, "\(clean.output)")
        #expect(clean.stdout.contains("rungs at 2, 6, 18 epochs"), "\(clean.stdout)")
        // Every trial starts at the first rung; fewer go on to each next one; the search trains
        // less than the full grid would.
        let rows = try SearchTests.table("\(dir)/clean").dropFirst().map { $0.split(separator: ",", omittingEmptySubsequences: false) }
        let perRung = (0..<3).map { rung in rows.filter { $0[2] == "\(rung)" }.count }
        #expect(perRung[0] == 12 && perRung[1] < 12 && perRung[2] < perRung[1] && perRung[2] >= 1, "\(perRung)")
        let epochs = rows.reduce(0) { $0 + Int($1[4])! - Int($1[3])! }
        #expect(epochs < 12 * 18 && clean.stdout.contains("ASHA trained \(epochs) ("), "\(clean.stdout)")
        let killed = try CLI.killWhen(args + ["--run-dir", "\(dir)/killed"], ranks: 2, run: "\(dir)/killed", output: "\(dir)/killed.log") {
            ((try? FileManager.default.contentsOfDirectory(atPath: "\(dir)/killed/jobs")) ?? []).count >= 7
        }
        #expect(killed, "the search ended before its kill")
        let resumed = try CLI.run(args + ["--run-dir", "\(dir)/killed"], ranks: 2)
        #expect(resumed.status == 0, "\(resumed.output)")
        #expect(try SearchTests.table("\(dir)/killed") == SearchTests.table("\(dir)/clean"))
        #expect(try Self.weights(Self.bestWeights("\(dir)/killed")) == Self.weights(Self.bestWeights("\(dir)/clean")))
    }

    @Test("PBT kill soak: 8 whole-job SIGKILLs at random moments, each restarted, end bitwise equal to the uninterrupted search; disk stays bounded")
    func pbtKillSoak() throws {
        let dir = CLI.temporaryDirectory()
        let data = try CLI.smallData(in: dir)
        let args = Self.pbt + ["--data", data]
        let clean = try CLI.run(args + ["--run-dir", "\(dir)/clean"], ranks: 2)
        #expect(clean.status == 0, "\(clean.output)")
        #expect(clean.stdout.contains("best member:") && clean.stdout.contains("validation co-bps"), "\(clean.stdout)")
        let lines = try SearchTests.table("\(dir)/clean")
        #expect(lines.count == 1 + 4 * 10, "4 members × 10 generations: \(lines)")
        #expect(lines.dropFirst().contains { row in
            let cells = row.split(separator: ",", omittingEmptySubsequences: false)
            return cells.count > 5 && !cells[5].isEmpty && cells[5] != cells[1]
        }, "some member copied another: \(lines)")
        var generator = SystemRandomNumberGenerator()
        let run = "\(dir)/killed"
        var kills = 0
        for _ in 0..<8 {
            let delay = Double.random(in: 0.3...1.5, using: &generator)
            let started = Date()
            let ran = try CLI.killWhen(args + ["--run-dir", run], ranks: 2, run: run, output: "\(dir)/kill\(kills).log") {
                Date().timeIntervalSince(started) > delay
            }
            if ran { kills += 1 } else { break }          // it finished before the kill: nothing left to interrupt
        }
        let resumed = try CLI.run(args + ["--run-dir", run], ranks: 2)
        #expect(resumed.status == 0, "\(resumed.output)")
        #expect(kills == 8, "only \(kills) kills landed before the search ended")
        #expect(try SearchTests.table(run) == lines)
        #expect(try Self.weights(Self.bestWeights(run)) == Self.weights(Self.bestWeights("\(dir)/clean")))
        // Disk: every finished generation but the last has given up its checkpoints and weights.
        let members = try FileManager.default.contentsOfDirectory(atPath: "\(run)/members")
        var checkpoints = 0
        for m in members {
            for g in try FileManager.default.contentsOfDirectory(atPath: "\(run)/members/\(m)") {
                checkpoints += try FileManager.default.contentsOfDirectory(atPath: "\(run)/members/\(m)/\(g)").filter { $0.hasPrefix("ckpt-") }.count
            }
        }
        #expect(checkpoints <= members.count, "\(checkpoints) checkpoints for \(members.count) members")
    }

    @Test("SIGUSR1 during a PBT search, to every rank or to one (whose group tells the other through the run directory): every group checkpoints, exit 75; the same command finishes with the uninterrupted table",
          arguments: [false, true])
    func pbtPreempted(oneRank: Bool) throws {
        let dir = CLI.temporaryDirectory()
        let data = try CLI.smallData(in: dir)
        let args = Self.pbt.dropFirst().map { $0 } + ["--data", data]
        let clean = try CLI.run(["search"] + args + ["--run-dir", "\(dir)/clean"], ranks: 2)
        #expect(clean.status == 0, "\(clean.output)")
        let run = "\(dir)/preempted"
        let (status, stdout) = try CLI.preempt(["search"] + args + ["--run-dir", run], ranks: 2, pattern: run, oneRank: oneRank) {
            ((try? FileManager.default.contentsOfDirectory(atPath: "\(run)/jobs")) ?? []).count >= 6
        }
        #expect(status == 75, "\(stdout)")
        let resumed = try CLI.run(["search"] + args + ["--run-dir", run], ranks: 2)
        #expect(resumed.status == 0, "\(resumed.output)")
        #expect(resumed.stdout.contains("already finished, kept"), "\(resumed.stdout)")
        #expect(try SearchTests.table(run) == SearchTests.table("\(dir)/clean"))
    }

    @Test("A PBT member that turns NaN is replaced by a copy of a winner at the next tournament, and the search completes")
    func nanMember() throws {
        let dir = CLI.temporaryDirectory()
        let data = try CLI.smallData(in: dir)
        let r = try CLI.run(["search", "--config", "Configs/tiny.yaml", "--data", data, "--strategy", "pbt", "--population", "4",
                             "--generation-epochs", "3", "--set", "epochs=9", "--explore", "learningRate=0.001:1e20", "--run-dir", "\(dir)/s"], ranks: 2)
        #expect(r.status == 0, "\(r.output)")
        let rows = try SearchTests.table("\(dir)/s").dropFirst().map { $0.split(separator: ",", omittingEmptySubsequences: false).map(String.init) }
        // job, member, generation, from, to, parent, learningRate, status, …
        let failed = rows.filter { $0[7] == "failed" }
        #expect(!failed.isEmpty, "no member failed: \(rows)")
        for f in failed where Int(f[2])! < 2 {
            let next = rows.first { $0[1] == f[1] && Int($0[2]) == Int(f[2])! + 1 }
            #expect(next != nil && next![5] != f[1], "member \(f[1]) failed in generation \(f[2]) and was not replaced: \(rows)")
        }
        #expect(r.stdout.contains("search finished") && r.stdout.contains("best member:"), "\(r.stdout)")
    }

    @Test("Impossible adaptive settings are refused before anything trains")
    func refusals() throws {
        let dir = CLI.temporaryDirectory()
        let data = try CLI.smallData(in: dir)
        let cases: [([String], String)] = [
            (["--strategy", "asha", "--set", "maxMinutes=1"], "drop maxMinutes"),
            (["--strategy", "asha", "--grace-epochs", "5", "--set", "epochs=5"], "--grace-epochs"),
            // 4 points, η 3: 4 → 1 → 0 reach the rungs at 2, 6, 18; the message names the grace that fits.
            (["--strategy", "asha", "--grace-epochs", "2", "--set", "epochs=18", "--grid", "learningRate=0.001,0.003,0.01,0.03"], "Use --grace-epochs 6 (2 rungs)"),
            (["--strategy", "pbt", "--population", "1"], "--population must be at least 2"),
            (["--strategy", "pbt", "--grid", "mass=1,2"], "--strategy pbt does not use --grid (asha and grid only)"),
            (["--strategy", "asha", "--population", "4", "--retry-failed"], "does not use --retry-failed (grid only), --population (pbt only)"),
            (["--strategy", "grid", "--grace-epochs", "3"], "does not use --grace-epochs (asha only)"),
            (["--strategy", "pbt", "--metric", "coBps"], "does not use --metric (asha and grid only)"),
            (["--strategy", "pbt", "--explore", "hidden=8:16"], "cannot explore 'hidden'"),
            (["--strategy", "pbt", "--set", "epochs=30", "--generation-epochs", "3", "--explore", "damping=0.5:1.5"], "damping"),
        ]
        for (extra, expected) in cases {
            let r = try CLI.run(["search", "--config", "Configs/tiny.yaml", "--data", data, "--run-dir", "\(dir)/r"] + extra)
            #expect(r.status != 0 && r.output.contains(expected), "\(extra): \(r.output)")
            #expect(!FileManager.default.fileExists(atPath: "\(dir)/r/jobs"), "\(extra) wrote something")
        }
        // Without --grace-epochs ASHA picks the longest first rung that still lets a trial reach
        // the config's epochs (4 points, η 3: rungs 2, 6), and says so.
        let picked = try CLI.run(["search", "--config", "Configs/tiny.yaml", "--data", data, "--run-dir", "\(dir)/picked", "--strategy", "asha",
                                  "--set", "epochs=6", "--grid", "learningRate=0.001,0.003,0.01,0.03"])
        #expect(picked.status == 0 && picked.stdout.contains("ASHA: --grace-epochs 2") && picked.stdout.contains("rungs at 2, 6 epochs"),
                "\(picked.output)")
    }
}
