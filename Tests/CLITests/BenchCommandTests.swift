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

    @Test("bench --allreduce on 2 ranks times the gradient buffer of a size and a plain --floats buffer on the three paths, exactly summed (no timing is asserted)")
    func allreduce() throws {
        let dir = CLI.temporaryDirectory()
        let r = try CLI.run(["bench", "--allreduce", "--sizes", "smoke", "--floats", "1000", "--repeats", "3", "--json", "\(dir)/allreduce.json"], ranks: 2)
        #expect(r.status == 0, "\(r.output)")
        #expect(r.stdout.contains("allreduce of Float buffers on 2 ranks over 1 host"), "\(r.stdout)")
        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: "\(dir)/allreduce.json"))) as! [String: Any]
        #expect(json["ranks"] as? Int == 2 && json["hosts"] as? Int == 1 && json["repeats"] as? Int == 3)
        let results = try #require(json["results"] as? [[String: Any]])
        #expect(results.map { $0["name"] as! String } == ["smoke", "smoke", "smoke", "floats", "floats", "floats"])
        #expect(results.map { $0["path"] as! String } == ["trainer", "blocking", "ordered", "trainer", "blocking", "ordered"])
        #expect(results[3]["floats"] as? Int == 1000 && results[3]["bytes"] as? Int == 4000)
        // The smoke model's flat gradient buffer, as TrainingStep allreduces it: thousands of floats.
        #expect((results[0]["floats"] as! Int) > 1000)
        for result in results {
            let seconds = try #require(result["seconds"] as? [Double])
            let median = try #require(result["median"] as? Double), low = try #require(result["min"] as? Double)
            #expect(seconds.count == 3 && seconds.allSatisfy { $0 > 0 && $0.isFinite })
            #expect(low > 0 && low <= median && median <= (result["max"] as! Double))
            #expect((result["algorithmGBps"] as! Double) > 0 && result["checked"] as? Bool == true)
        }
    }
}
