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
        for ranks in [1, 2, 3] {
            let r = try CLI.run(args + ["--run-dir", "\(dir)/n\(ranks)"], ranks: ranks)
            #expect(r.status == 0, "\(r.output)")
            #expect(r.stdout.contains("bit-identical on all \(ranks) rank"), "\(r.stdout)")
            #expect(r.stdout.components(separatedBy: "epoch    1/2").count == 2, "only rank 0 prints")
            let p = try parameters("\(dir)/n\(ranks)/last.h5")
            if ranks == 1 {
                #expect(p == reference, "mpirun -n 1 differs from a plain run")
            } else {
                let worst = worstRelativeDifference(p, reference)
                #expect(worst <= 1e-5, "-n \(ranks): worst relative difference \(worst)")
            }
        }
    }
}
