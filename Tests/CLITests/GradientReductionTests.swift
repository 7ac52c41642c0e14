import Foundation
import Testing
import HDF5

/// The gradient reduction (Sources/Distributed/GradientReduction.swift): every element summed in
/// rank order, so bucketing it (the overlap with the backward) changes no bit.
@Suite("Gradient reduction: rank-ordered, bucketed, overlapped", .serialized)
struct GradientReductionTests {
    @Test("At 3 and 4 ranks the reduction cut into buckets several ways (by the communication thread) equals the whole-buffer one and the rank-ordered sum bitwise, with the watchdog and without", arguments: [3, 4])
    func bucketsAreBitwiseEqual(ranks: Int) throws {
        let r = try CLI.run(["bench", "--allreduce", "--check-buckets"], ranks: ranks)
        #expect(r.status == 0, "\(r.output)")
        #expect(r.stdout.contains("gradient reduction of 100003 floats on \(ranks) ranks"), "\(r.stdout)")
        #expect(r.stdout.contains("bitwise equal on every rank: yes"), "\(r.stdout)")
        #expect(!r.stdout.contains("communication thread, with the watchdog): 1"), "\(r.stdout)")
    }

    @Test("Training at 3 ranks gives the same parameters bitwise with overlapAllreduce on and off")
    func overlapOnOffSameBits() throws {
        let dir = CLI.temporaryDirectory()
        let data = "\(dir)/d.h5"
        #expect(try CLI.run(["synth", "--out", data, "--conditions", "8", "--trials-per-condition", "6",
                             "--bins", "20", "--forward-bins", "5"]).status == 0)
        var parameters: [[String: [Float]]] = []
        for overlap in ["on", "off"] {
            let run = "\(dir)/\(overlap)"
            let r = try CLI.run(["train", "--config", "Configs/tiny.yaml", "--data", data, "--set", "epochs=2", "--set", "batchSize=10",
                                 "--set", "overlapAllreduce=\(overlap)", "--run-dir", run], ranks: 3)
            #expect(r.status == 0, "\(r.output)")
            #expect(r.stdout.contains("bit-identical on all 3 ranks"), "\(r.stdout)")
            let f = try H5File.open("\(run)/last.h5")
            var p: [String: [Float]] = [:]
            for name in try f.children(of: "model") { p[name] = try f.readFloats("model/\(name)").values }
            parameters.append(p)
        }
        #expect(!parameters[0].isEmpty)
        #expect(parameters[0] == parameters[1], "overlapAllreduce on and off differ at 3 ranks")
    }
}
