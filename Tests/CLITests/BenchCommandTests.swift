import Foundation
import Testing

@Suite("Benchmark")
struct BenchTests {
    @Test("bench --smoke runs every configuration under mpirun and reports every phase (no timing is asserted)")
    func smoke() throws {
        let dir = CLI.temporaryDirectory()
        let r = try CLI.run(["bench", "--smoke", "--json", "\(dir)/bench.json", "--scratch", dir])
        #expect(r.status == 0, "\(r.output)")
        for text in ["smoke 1×1", "smoke 1×2", "smoke 2×1", "float32, no wdog", "collective watchdog costs", "allreduce",
                     "backward: decoder", "checkpoint write", "bf16 is", "matrix products: float32", "precision auto chooses"] {
            #expect(r.stdout.contains(text), "missing '\(text)' in\n\(r.stdout)")
        }
        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: "\(dir)/bench.json"))) as! [String: Any]
        let results = json["results"] as! [[String: Any]]
        #expect(results.count == 7)
        #expect(results.map { $0["watchdog"] as! Bool } == [true, true, true, true, true, true, false])
        #expect(results.map { $0["precision"] as! String } == ["float32", "bf16", "float32", "bf16", "float32", "bf16", "float32"])
        #expect(results.allSatisfy { ($0["stepSeconds"] as! [Double]).count == 2 && ($0["median"] as! Double) > 0 })
        // precision: auto's measurement per size: both timings, the faster being the choice printed.
        let auto = try #require((json["precisionAuto"] as? [String: [String: Any]])?["smoke"])
        let f32 = try #require(auto["float32"] as? Double), bf16 = try #require(auto["bf16"] as? Double)
        #expect(f32 > 0 && bf16 > 0 && r.stdout.contains("precision auto chooses \(bf16 < f32 ? "bf16" : "float32") at this size"))
    }
}
