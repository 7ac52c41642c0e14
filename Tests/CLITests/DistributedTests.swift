import Foundation
import Testing
import HDF5

/// Data-parallel training under mpirun against one rank on the same global batches.
@Suite("Data-parallel training", .serialized)
struct DistributedTests {
    func parameters(_ path: String) throws -> [String: [Float]] {
        let f = try H5File.open(path)
        var out: [String: [Float]] = [:]
        for name in try f.children(of: "model") { out[name] = try f.readFloats("model/\(name)").values }
        return out
    }

    /// ‖a - b‖ / ‖b‖ per tensor, the worst over tensors.
    func worstRelativeDifference(_ a: [String: [Float]], _ b: [String: [Float]]) -> Double {
        var worst = 0.0
        for (name, x) in b {
            let y = a[name]!
            var diff = 0.0, norm = 0.0
            for i in x.indices { diff += Double(y[i] - x[i]) * Double(y[i] - x[i]); norm += Double(x[i]) * Double(x[i]) }
            worst = max(worst, diff.squareRoot() / max(norm.squareRoot(), 1e-30))
        }
        return worst
    }

    @Test("mpirun -n 1 equals no mpirun bitwise; -n 2 and -n 3 (uneven shards) equal one rank to 1e-5; ranks agree bitwise")
    func worldSizes() throws {
        let dir = CLI.temporaryDirectory()
        let data = "\(dir)/d.h5"
        #expect(try CLI.run(["synth", "--out", data, "--conditions", "8", "--trials-per-condition", "6",
                             "--bins", "20", "--forward-bins", "5"]).status == 0)
        // 32 training trials in global batches of 10: 4 steps per epoch, the last of 2 trials
        // (so with 3 ranks one rank has nothing to do in that step).
        let args = ["train", "--config", "Configs/tiny.yaml", "--data", data, "--set", "epochs=2", "--set", "batchSize=10"]
        let plain = try CLI.run(args + ["--run-dir", "\(dir)/plain"])
        #expect(plain.status == 0, "\(plain.output)")
        let reference = try parameters("\(dir)/plain/last.h5")
        // The latent probe after epoch 1 (synth data has true latents), its paths shared out.
        func latentR2(_ run: String) throws -> Double? {
            let first = try String(contentsOfFile: "\(run)/metrics.jsonl", encoding: .utf8).split(separator: "\n")[0]
            return (try JSONSerialization.jsonObject(with: Data(first.utf8)) as? [String: Any])?["latentR2"] as? Double
        }
        let referenceR2 = try #require(try latentR2("\(dir)/plain"))
        for ranks in [1, 2, 3] {
            let r = try CLI.run(args + ["--run-dir", "\(dir)/n\(ranks)"], ranks: ranks)
            #expect(r.status == 0, "\(r.output)")
            #expect(r.stdout.contains("bit-identical on all \(ranks) rank"), "\(r.stdout)")
            #expect(r.stdout.components(separatedBy: "epoch    1/2").count == 2, "only rank 0 prints")
            // overlapAllreduce: auto keeps the sum on the main thread on one host.
            #expect(ranks == 1 ? !r.stdout.contains("gradient sum over ranks")
                        : r.stdout.contains("gradient sum over ranks: after the backward (overlapAllreduce: auto, the ranks on one host)"),
                    "\(r.stdout)")
            let p = try parameters("\(dir)/n\(ranks)/last.h5")
            let r2 = try #require(try latentR2("\(dir)/n\(ranks)"))
            #expect(ranks == 1 ? r2 == referenceR2 : abs(r2 - referenceR2) <= 1e-3, "-n \(ranks): latent R² \(r2) vs \(referenceR2)")
            if ranks == 1 {
                #expect(p == reference, "mpirun -n 1 differs from a plain run")
            } else {
                let worst = worstRelativeDifference(p, reference)
                #expect(worst <= 1e-5, "-n \(ranks): worst relative difference \(worst)")
            }
        }
    }

    /// Every dataset of a submission file's one group, by name.
    static func submission(_ path: String) throws -> [String: [Float]] {
        let f = try H5File.open(path)
        let group = try #require(try f.children(groups: true).first)
        var out: [String: [Float]] = [:]
        for key in try f.children(of: group) { out[key] = try f.readFloats("\(group)/\(key)").values }
        return out
    }

    @Test("mpirun -n 1, 2 and 3 predict write the same submission bitwise, and it equals the one train wrote at its end")
    func predictAtAnyWorldSize() throws {
        let dir = CLI.temporaryDirectory()
        let data = try ResumeTests.data(in: dir)
        // 38 training and 10 eval trials in chunks of 8 (tiny's batchSize): 5 + 2 chunks, shared unevenly.
        let train = try CLI.run(["train", "--config", "Configs/tiny.yaml", "--data", data, "--run-dir", "\(dir)/run", "--set", "epochs=2"])
        #expect(train.status == 0, "\(train.output)")
        let atEnd = try Self.submission("\(dir)/run/submission.h5")
        #expect(atEnd.count == 6)
        for ranks in [1, 2, 3] {
            let r = try CLI.run(["predict", "--checkpoint", "\(dir)/run/best.h5", "--data", data, "--out", "\(dir)/p\(ranks).h5"], ranks: ranks)
            #expect(r.status == 0, "\(r.output)")
            #expect(r.stdout.components(separatedBy: "wrote ").count == 2, "only rank 0 writes: \(r.stdout)")
            #expect(try Self.submission("\(dir)/p\(ranks).h5") == atEnd, "predict on \(ranks) ranks differs from train's submission")
        }
    }

    @Test("predict with two checkpoints (an ensemble) writes the mean of the two models' rates, at 1 and 2 ranks")
    func predictEnsemble() throws {
        let dir = CLI.temporaryDirectory()
        let data = try ResumeTests.data(in: dir)
        for seed in [0, 1] {
            let r = try CLI.run(["train", "--config", "Configs/tiny.yaml", "--data", data, "--run-dir", "\(dir)/run\(seed)",
                                 "--set", "epochs=2", "--set", "seed=\(seed)"])
            #expect(r.status == 0, "\(r.output)")
        }
        let a = try Self.submission("\(dir)/run0/submission.h5"), b = try Self.submission("\(dir)/run1/submission.h5")
        #expect(a.count == 6 && a.keys == b.keys && a != b)
        var mean: [String: [Float]] = [:]
        for (key, x) in a { mean[key] = zip(x, b[key]!).map { ($0 + $1) / 2 } }
        for ranks in [1, 2] {
            let out = "\(dir)/ensemble\(ranks).h5"
            let r = try CLI.run(["predict", "--checkpoint", "\(dir)/run0/best.h5", "--checkpoint", "\(dir)/run1/best.h5",
                                 "--data", data, "--out", out], ranks: ranks)
            #expect(r.status == 0, "\(r.output)")
            #expect(r.stdout.contains("the mean rates of 2 models"), "\(r.stdout)")
            #expect(try Self.submission(out) == mean, "the ensemble on \(ranks) rank(s) is not the mean of its models' rates")
        }
        // A second checkpoint that does not fit the data is named before the first predicts.
        try FileManager.default.createDirectory(atPath: dir + "/other", withIntermediateDirectories: true)
        let other = try CLI.smallData(in: dir + "/other")
        let fits = "\(dir)/other/init.h5"
        #expect(try CLI.run(["init", "--config", "Configs/tiny.yaml", "--data", other, "--out", fits]).status == 0)
        let bad = try CLI.run(["predict", "--checkpoint", fits, "--checkpoint", "\(dir)/run0/best.h5",
                               "--data", other, "--out", "\(dir)/bad.h5"])
        #expect(bad.status != 0 && !FileManager.default.fileExists(atPath: "\(dir)/bad.h5"), "\(bad.output)")
        #expect(bad.output.contains("\(dir)/run0/best.h5") && !bad.output.contains("predicting"), "\(bad.output)")
    }
}

@Suite("latents")
struct LatentsTests {
    @Test("latents writes z, v, h and the force of every trial; the mean path equals inspect's deterministic latents; -n 2 equals -n 1")
    func latents() throws {
        let dir = CLI.temporaryDirectory()
        let data = try CLI.smallData(in: dir)
        #expect(try CLI.run(["train", "--config", "Configs/tiny.yaml", "--data", data, "--run-dir", "\(dir)/run", "--set", "epochs=2"]).status == 0)
        let one = try CLI.run(["latents", "--checkpoint", "\(dir)/run/best.h5", "--data", data, "--out", "\(dir)/l1.h5"])
        #expect(one.status == 0, "\(one.output)")
        let two = try CLI.run(["latents", "--checkpoint", "\(dir)/run/best.h5", "--data", data, "--out", "\(dir)/l2.h5"], ranks: 2)
        #expect(two.status == 0, "\(two.output)")
        // It says how much z moves, per set, as the share of z's variance within trials.
        #expect(one.stdout.contains("train: ") && one.stdout.contains("of z's variance lies within trials"), "\(one.output)")
        let l1 = try H5File.open("\(dir)/l1.h5"), l2 = try H5File.open("\(dir)/l2.h5")
        // tiny: H = 8; the small data: 8 train + 4 eval trials, 8 + 3 bins.
        for part in ["z", "v", "h", "force"] {
            #expect(try l1.shape(of: "train/\(part)") == [8, 11, 8], "\(part)")
            #expect(try l1.shape(of: "eval/\(part)") == [4, 11, 8], "\(part)")
            #expect(try l1.readFloats("train/\(part)").values == l2.readFloats("train/\(part)").values, "2 ranks differ: \(part)")
        }
        #expect(try l1.readAttributeString("checkpoint") == "\(dir)/run/best.h5")
        // inspect: S_t = [z, v, h] of the first trials, deterministic, in Double.
        #expect(try CLI.run(["inspect", "--checkpoint", "\(dir)/run/best.h5", "--data", data, "--trials", "3", "--out", "\(dir)/s.h5"]).status == 0)
        let s = try H5File.open("\(dir)/s.h5").readDoubles("latents").values                      // (3, 11, 24)
        for (p, part) in ["z", "v", "h"].enumerated() {
            let mine = try l1.readFloats("train/\(part)").values
            var worst = 0.0
            for trial in 0..<3 {
                for t in 0..<11 {
                    for k in 0..<8 { worst = max(worst, abs(Double(mine[(trial * 11 + t) * 8 + k]) - s[(trial * 11 + t) * 24 + p * 8 + k])) }
                }
            }
            #expect(worst < 1e-4, "\(part): float32 latents differ from inspect's by \(worst)")
        }
    }
}
