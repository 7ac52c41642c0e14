import Foundation
import Testing
import Data
import HDF5
import Kernels

/// A spikes file (`Recording`): `spikes` and whatever `edit` adds (datasets as Double values
/// with their shapes; attributes after).
func writeSpikes(_ path: String, trials: Int = 6, bins: Int = 5, neurons: Int = 8,
                 datasets: [String: ([Int], [Double])] = [:], attributes: [String: Any] = [:]) throws {
    let file = try H5File.create(path)
    try file.write("spikes", shape: [trials, bins, neurons], floats: (0..<(trials * bins * neurons)).map { Float(($0 * 5 + 1) % 4) })
    for (key, (shape, values)) in datasets { try file.write(key, shape: shape, doubles: values) }
    for (key, value) in attributes {
        switch value {
        case let s as String: try file.writeAttribute(key, string: s)
        case let d as Double: try file.writeAttribute(key, double: d)
        case let i as Int: try file.writeAttribute(key, int: Int64(i))
        default: Issue.record("attribute \(key): unsupported type")
        }
    }
    try file.flush()
}

@Suite("Recordings: spikes files, held-out splits, session windows")
struct RecordingTests {
    /// 103 bins cut into windows of 20 with 5 shared, the last moved to end at the session's end.
    func windows() throws -> SessionWindows {
        var starts = Array(stride(from: 0, through: 103 - 20, by: 15))
        if starts.last! + 20 < 103 { starts.append(103 - 20) }
        return try SessionWindows(starts: starts, length: 20, sessionBins: 103, startTime: 2.5, binMs: 20)
    }

    @Test("A signal cut into windows and merged comes back bitwise, and the weights ramp across every overlap")
    func chopMergeExact() throws {
        let w = try windows()
        #expect(w.starts == [0, 15, 30, 45, 60, 75, 83])
        var generator = SystemRandomNumberGenerator()
        let signal = (0..<(103 * 3)).map { _ in Float.random(in: -5...5, using: &generator) * Float.random(in: 0...1e4, using: &generator) }
        let merged = w.merge(w.chop(signal, channels: 3), channels: 3)
        #expect(merged.elementsEqual(signal) { $0.bitPattern == $1.bitPattern })
        // Weights: 1 inside, (i + ½)/overlap into the shared bins; the last window shares 12 with the one before.
        #expect(w.weights(0)[0] == 1 && w.weights(0)[19] == 0.5 / 5 && w.weights(0)[14] == 1)
        #expect(w.weights(1)[0] == 0.5 / 5 && w.weights(1)[4] == 4.5 / 5)
        #expect(w.weights(6)[0] == 0.5 / 12 && w.weights(6)[19] == 1)
        #expect(w.binTimes[0] == 2.5 && abs(w.binTimes[102] - (2.5 + 102 * 0.02)) < 1e-12)
    }

    @Test("Two windows that disagree merge into a path with no step: the change per bin across the overlap is the difference spread over it")
    func mergeHasNoSeam() throws {
        let w = try SessionWindows(starts: [0, 10], length: 20, sessionBins: 30)
        // Window 0 says 0 everywhere, window 1 says 1: the merged path rises by 1/10 per shared bin.
        let merged = w.merge([Float](repeating: 0, count: 20) + [Float](repeating: 1, count: 20), channels: 1)
        let steps = zip(merged, merged.dropFirst()).map { $1 - $0 }
        #expect(steps.max()! <= 0.1 + 1e-6, "largest step \(steps.max()!)")
        #expect(merged[0..<10].allSatisfy { $0 == 0 } && merged[20..<30].allSatisfy { $0 == 1 })
    }

    @Test("Windows that leave a bin uncovered, or do not end at the session's end, are refused")
    func badWindows() {
        expectError(DataError.self, containing: ["bins 20..<25 lie in no window"]) { _ = try SessionWindows(starts: [0, 25], length: 20, sessionBins: 45) }
        expectError(DataError.self, containing: ["last window ends at bin 30", "40 bins"]) { _ = try SessionWindows(starts: [0, 10], length: 20, sessionBins: 40) }
        expectError(DataError.self, containing: ["must start at 0"]) { _ = try SessionWindows(starts: [3, 10], length: 20, sessionBins: 30) }
    }

    @Test("The seeded held-out split: its size, sorted, the same for the same seed, another for another")
    func heldOutSplit() {
        let a = Recording.heldOutNeurons(neurons: 182, fraction: 0.25, seed: 0)
        #expect(a.count == 46 && a == a.sorted() && Set(a).count == 46 && a.allSatisfy { (0..<182).contains($0) })
        #expect(a == Recording.heldOutNeurons(neurons: 182, fraction: 0.25, seed: 0))
        #expect(a != Recording.heldOutNeurons(neurons: 182, fraction: 0.25, seed: 1))
        #expect(Recording.heldOutNeurons(neurons: 2, fraction: 0.01, seed: 0).count == 1)
        #expect(Recording.heldOutNeurons(neurons: 2, fraction: 0.99, seed: 0).count == 1)
    }

    @Test("A spikes file loads as training trials: held-out neurons by the file's mask, or by the seeded split of its attributes")
    func load() throws {
        let dir = temporaryDirectory()
        let masked = dir + "/masked.h5"
        try writeSpikes(masked, datasets: ["heldout": ([8], [0, 1, 0, 0, 1, 0, 0, 0]), "unit_ids": ([8], (10..<18).map(Double.init)),
                                           "behavior": ([6, 5, 2], (0..<60).map(Double.init))], attributes: ["bin_ms": 20.0])
        let t = try NLBTensors.load(path: masked)
        let r = try #require(t.recording)
        #expect(r.heldOut == [1, 4])
        #expect(r.heldIn == [0, 2, 3, 5, 6, 7])
        #expect(r.kind == .trials && r.binMs == 20)
        #expect(r.unitIDs == (10..<18).map(Int64.init))
        #expect(t.trainCount == 6 && t.heldIn == 6 && t.heldOut == 2 && t.evalCount == 0)
        #expect(t.trainBehavior?.channels == 2)
        // Neuron 4 of trial 2, bin 3 is held-out column 1 there; file order comes back from model order.
        let spikes = try H5File.open(masked).readFloats("spikes").values
        #expect(t.trainHeldOut[2, 3, 1] == spikes[(2 * 5 + 3) * 8 + 4])
        let order = r.heldIn + r.heldOut
        let modelOrder: [Float] = (0..<30).flatMap { (row: Int) -> [Float] in order.map { spikes[row * 8 + $0] } }
        #expect(r.fileOrder(modelOrder, rows: 30) == spikes)

        let seeded = dir + "/seeded.h5"
        try writeSpikes(seeded, neurons: 20, attributes: ["held_out_fraction": 0.2, "held_out_seed": 7])
        let s = try #require(try NLBTensors.load(path: seeded).recording)
        #expect(s.heldOut == Recording.heldOutNeurons(neurons: 20, fraction: 0.2, seed: 7) && s.heldOut.count == 4)
        #expect(s.heldOutSource.contains("held_out_seed 7"))
        #expect(try NLBTensors.trainTrialCount(path: seeded) == 6)
    }

    @Test("A session's spikes file carries its windows; bad files name the file and the field")
    func sessionAndErrors() throws {
        let dir = temporaryDirectory()
        let session = dir + "/session.h5"
        try writeSpikes(session, trials: 3, bins: 10, datasets: ["window_start_bin": ([3], [0, 8, 14])],
                        attributes: ["kind": "session", "session_bins": 24, "session_start_time": 100.0, "bin_ms": 20.0])
        let w = try #require(try NLBTensors.load(path: session).recording?.windows)
        #expect(w.starts == [0, 8, 14] && w.sessionBins == 24 && w.binTimes[1] == 100.02)

        func refused(_ name: String, _ parts: [String], datasets: [String: ([Int], [Double])] = [:], attributes: [String: Any] = [:], neurons: Int = 8) throws {
            let path = dir + "/\(name).h5"
            try writeSpikes(path, trials: 3, bins: 10, neurons: neurons, datasets: datasets, attributes: attributes)
            expectError(DataError.self, containing: [path] + parts) { _ = try NLBTensors.load(path: path) }
        }
        try refused("mask-shape", ["'heldout'", "expected [8]"], datasets: ["heldout": ([7], [0, 1, 0, 0, 0, 0, 0])])
        try refused("mask-all", ["'heldout'", "8 of 8 neurons are held out"], datasets: ["heldout": ([8], [Double](repeating: 1, count: 8))])
        try refused("mask-values", ["'heldout'", "0 (held in) or 1"], datasets: ["heldout": ([8], [0, 2, 0, 0, 0, 0, 0, 0])])
        try refused("fraction", ["held_out_fraction is 1.5"], attributes: ["held_out_fraction": 1.5])
        try refused("one-neuron", ["'spikes'", "at least 2"], neurons: 1)
        try refused("no-windows", ["'window_start_bin'", "missing"], attributes: ["kind": "session", "session_bins": 24])
        try refused("gap", ["'window_start_bin'", "lie in no window"], datasets: ["window_start_bin": ([3], [0, 12, 14])],
                    attributes: ["kind": "session", "session_bins": 24])
        try refused("kind", ["kind is 'continuous'"], attributes: ["kind": "continuous"])
        try refused("behavior", ["'behavior'", "expected [3, 10, channels]"], datasets: ["behavior": ([3, 9, 2], [Double](repeating: 0, count: 54))])
    }
}
