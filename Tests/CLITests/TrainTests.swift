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

    @Test("A NaN loss stops training with a clear message and a non-zero exit")
    func divergence() throws {
        let dir = CLI.temporaryDirectory()
        let data = try CLI.smallData(in: dir)
        let r = try CLI.run(["train", "--config", "Configs/tiny.yaml", "--data", data, "--run-dir", "\(dir)/run",
                             "--set", "learningRate=1e30", "--set", "gradClip=0", "--set", "epochs=5"])
        #expect(r.status != 0)
        #expect(r.stderr.contains("loss became") || r.stderr.contains("metric became"), "\(r.output)")
        #expect(!FileManager.default.fileExists(atPath: "\(dir)/run/best.h5"), "no checkpoint from diverged weights")
        let files = (try? FileManager.default.contentsOfDirectory(atPath: "\(dir)/run")) ?? []
        for name in files where name.hasSuffix(".h5") {
            let values = try H5File.open("\(dir)/run/\(name)").readFloats("model/readout.weight").values
            let finite = values.allSatisfy { $0.isFinite }
            #expect(finite, "\(name) holds non-finite parameters")
        }
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
