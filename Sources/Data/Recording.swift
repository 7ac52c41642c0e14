import Foundation
import HDF5
import Kernels
import Support

// Data: a lab's own recordings, in the spikes file (`spikes` [trials, bins, neurons], which
// `lflow-dist prepare` writes from NWB and anyone can write with h5py; docs/outputs.md, "The
// spikes file"). This file owns reading and checking it, the seeded held-out split of its
// neurons (the one place that split is drawn), and the windows of a continuous session: where
// they lie on the session's bins and how their values are merged back onto it.

/// What a spikes file says beyond its counts: how its neurons split into held-in and held-out,
/// the NWB units they are, and where its trials or windows lie in the session.
public struct Recording: Sendable, Equatable {
    public enum Kind: String, Sendable { case trials, session }
    public var kind: Kind
    /// Neurons of the file, and which of them (file indices, ascending) are held in and out.
    public var neurons: Int
    public var heldIn: [Int], heldOut: [Int]
    /// How the held-out neurons were chosen, for messages and outputs.
    public var heldOutSource: String
    /// The NWB units table's ids, in the file's neuron order (0..<neurons when absent).
    public var unitIDs: [Int64]
    public var binMs: Double?
    /// Session time (s) of the start of each trial's (window's) first bin, when known.
    public var trialStartTime: [Double]?
    /// A continuous session's windows (kind `session`).
    public var windows: SessionWindows?

    /// Rows of values in the model's neuron order (held-in first, then held-out) put back in
    /// the file's order: (rows, heldIn + heldOut) → (rows, neurons).
    public func fileOrder(_ values: [Float], rows: Int) -> [Float] {
        let order = heldIn + heldOut
        var out = [Float](repeating: 0, count: rows * neurons)
        for r in 0..<rows {
            for (k, n) in order.enumerated() { out[r * neurons + n] = values[r * neurons + k] }
        }
        return out
    }

    /// The seeded held-out split of `neurons` neurons: round(fraction · neurons) of them,
    /// at least one on each side, drawn by a keyed permutation of `seed`. The data's own seed,
    /// not a run's, so every run and search trial on the file validates on the same neurons.
    public static func heldOutNeurons(neurons: Int, fraction: Double, seed: Int) -> [Int] {
        let count = min(max(Int((Double(neurons) * fraction).rounded()), 1), neurons - 1)
        return seededPermutation(neurons, seed: seed, purpose: .heldOutSplit, key: 0).prefix(count).sorted()
    }

    public static let defaultHeldOutFraction = 0.25

    /// Reads a spikes file (the caller has seen its `spikes`): the counts become an
    /// `NLBTensors` of training trials only, the held-out neurons split off.
    static func load(path: String, file: H5File) throws -> NLBTensors {
        func fail(_ key: String, _ problem: String) -> DataError {
            DataError("'\(path)', '\(key)': \(problem)")
        }
        let (shape, values) = try file.readFloats("spikes")
        guard shape.count == 3 else {
            throw fail("spikes", "expected 3 dimensions (trials, bins, neurons), got shape \(shape)")
        }
        let (trials, bins, neurons) = (shape[0], shape[1], shape[2])
        guard trials > 0 && bins > 0 else { throw fail("spikes", "empty (shape \(shape)); it needs at least one trial and one bin") }
        guard neurons >= 2 else {
            throw fail("spikes", "\(neurons) neuron\(neurons == 1 ? "" : "s"); co-smoothing needs at least 2 (one held in, one held out)")
        }
        let spikes = Tensor3(count: trials, bins: bins, channels: neurons, values: values)
        try NLBTensors.validateCounts(spikes, key: "spikes", path: path)
        if values.allSatisfy(\.isNaN) { throw fail("spikes", "every entry is NaN (nothing observed)") }

        // The held-out neurons: the file's mask, else the seeded split.
        let heldOut: [Int], source: String
        if file.has("heldout") {
            let (maskShape, mask) = try file.readDoubles("heldout")
            guard maskShape == [neurons] else { throw fail("heldout", "shape \(maskShape), expected [\(neurons)] (one flag per neuron of 'spikes')") }
            guard mask.allSatisfy({ $0 == 0 || $0 == 1 }) else { throw fail("heldout", "flags must be 0 (held in) or 1 (held out)") }
            heldOut = mask.indices.filter { mask[$0] == 1 }
            guard !heldOut.isEmpty && heldOut.count < neurons else {
                throw fail("heldout", "\(heldOut.count) of \(neurons) neurons are held out; co-smoothing needs at least one on each side. Delete the dataset to have a seeded split drawn.")
            }
            source = "the file's heldout mask"
        } else {
            let fraction = file.hasAttribute("held_out_fraction") ? try file.readAttributeDouble("held_out_fraction") : defaultHeldOutFraction
            guard fraction > 0 && fraction < 1 && fraction.isFinite else {
                throw DataError("'\(path)': attribute held_out_fraction is \(fraction); it must lie in (0, 1)")
            }
            let seed = file.hasAttribute("held_out_seed") ? Int(try file.readAttributeInt("held_out_seed")) : 0
            heldOut = heldOutNeurons(neurons: neurons, fraction: fraction, seed: seed)
            source = String(format: "a seeded split (held_out_fraction %g, held_out_seed %d)", fraction, seed)
        }
        let outSet = Set(heldOut)
        let heldIn = (0..<neurons).filter { !outSet.contains($0) }
        func pick(_ columns: [Int]) -> Tensor3 {
            var t = Tensor3(count: trials, bins: bins, channels: columns.count)
            for row in 0..<(trials * bins) {
                for (k, n) in columns.enumerated() { t.values[row * columns.count + k] = values[row * neurons + n] }
            }
            return t
        }

        var behavior: Tensor3?
        if file.has("behavior") {
            let (s, v) = try file.readFloats("behavior")
            guard s.count == 3, s[0] == trials, s[1] == bins, s[2] > 0 else {
                throw fail("behavior", "shape \(s), expected [\(trials), \(bins), channels] (the trials and bins of 'spikes')")
            }
            behavior = Tensor3(count: trials, bins: bins, channels: s[2], values: v)
        }
        var unitIDs = (0..<neurons).map(Int64.init)
        if file.has("unit_ids") {
            let (s, v) = try file.readDoubles("unit_ids")
            guard s == [neurons] else { throw fail("unit_ids", "shape \(s), expected [\(neurons)]") }
            unitIDs = v.map { Int64($0) }
        }
        var starts: [Double]?
        if file.has("trial_start_time") {
            let (s, v) = try file.readDoubles("trial_start_time")
            guard s == [trials] else { throw fail("trial_start_time", "shape \(s), expected [\(trials)] (one per trial of 'spikes')") }
            starts = v
        }
        let binMs = file.hasAttribute("bin_ms") ? try file.readAttributeDouble("bin_ms") : nil
        if let binMs, !(binMs > 0 && binMs.isFinite) { throw DataError("'\(path)': attribute bin_ms is \(binMs); it must be > 0") }
        let kindName = file.hasAttribute("kind") ? try file.readAttributeString("kind") : "trials"
        guard let kind = Kind(rawValue: kindName) else {
            throw DataError("'\(path)': attribute kind is '\(kindName)'; it must be 'trials' or 'session'")
        }
        var windows: SessionWindows?
        if kind == .session {
            guard file.has("window_start_bin") else { throw fail("window_start_bin", "missing; a file of kind 'session' must say where each window starts on the session's bins") }
            let (s, v) = try file.readDoubles("window_start_bin")
            guard s == [trials] else { throw fail("window_start_bin", "shape \(s), expected [\(trials)] (one per window of 'spikes')") }
            guard file.hasAttribute("session_bins") else {
                throw DataError("'\(path)': a file of kind 'session' needs the attribute session_bins")
            }
            let sessionBins = Int(try file.readAttributeInt("session_bins"))
            let start = file.hasAttribute("session_start_time") ? try file.readAttributeDouble("session_start_time") : 0
            do {
                windows = try SessionWindows(starts: v.map { Int($0) }, length: bins, sessionBins: sessionBins, startTime: start, binMs: binMs ?? 1)
            } catch let error as DataError {
                throw fail("window_start_bin", error.message)
            }
        }
        let recording = Recording(kind: kind, neurons: neurons, heldIn: heldIn, heldOut: heldOut, heldOutSource: source,
                                  unitIDs: unitIDs, binMs: binMs, trialStartTime: starts, windows: windows)
        var tensors = NLBTensors(path: path, trainHeldIn: pick(heldIn), trainHeldOut: pick(heldOut), trainHeldInForward: nil,
                                 trainHeldOutForward: nil, trainBehavior: behavior, evalHeldIn: nil, evalHeldOut: nil)
        tensors.recording = recording
        return tensors
    }
}

/// The windows a continuous session was cut into: window k covers the session's bins
/// starts[k] ..< starts[k] + length. Every bin is covered; windows may overlap.
public struct SessionWindows: Sendable, Equatable {
    public var starts: [Int]
    public var length: Int
    public var sessionBins: Int
    /// Session time (s) of bin 0, and the bin width.
    public var startTime: Double
    public var binMs: Double

    public init(starts: [Int], length: Int, sessionBins: Int, startTime: Double = 0, binMs: Double = 1) throws {
        guard !starts.isEmpty else { throw DataError("no windows") }
        guard zip(starts, starts.dropFirst()).allSatisfy({ $0 < $1 }) else { throw DataError("window starts must increase") }
        guard starts[0] == 0 else { throw DataError("the first window starts at bin \(starts[0]); it must start at 0 so every bin of the session is covered") }
        guard starts.last! + length == sessionBins else {
            throw DataError("the last window ends at bin \(starts.last! + length), the session has \(sessionBins) bins; the last window must end at the session's end")
        }
        for (a, b) in zip(starts, starts.dropFirst()) where b > a + length {
            throw DataError("bins \(a + length)..<\(b) lie in no window (windows at \(a) and \(b), each \(length) bins)")
        }
        self.starts = starts; self.length = length; self.sessionBins = sessionBins; self.startTime = startTime; self.binMs = binMs
    }

    /// Session time (s) of the start of every bin.
    public var binTimes: [Double] { (0..<sessionBins).map { startTime + Double($0) * binMs / 1000 } }

    /// Window k's weight at each of its bins: 1, falling linearly to 0 across the bins it
    /// shares with the window before it and the one after it ((i + ½)/overlap from its start,
    /// (length − i − ½)/overlap towards its end), so that where two windows overlap the later
    /// one takes over smoothly and no seam shows.
    public func weights(_ k: Int) -> [Double] {
        let before = k > 0 ? starts[k - 1] + length - starts[k] : 0
        let after = k + 1 < starts.count ? starts[k] + length - starts[k + 1] : 0
        return (0..<length).map { i in
            var w = 1.0
            if before > 0 { w = min(w, (Double(i) + 0.5) / Double(before)) }
            if after > 0 { w = min(w, (Double(length - i) - 0.5) / Double(after)) }
            return w
        }
    }

    /// The windows' values (windows, length, channels) merged onto the session's bins
    /// (sessionBins, channels): at each bin the weighted mean of the windows that cover it,
    /// in Double. A float signal cut into windows and merged comes back bitwise.
    public func merge(_ values: [Float], channels: Int) -> [Float] {
        precondition(values.count == starts.count * length * channels, "merge: values are not (windows, length, channels)")
        var sum = [Double](repeating: 0, count: sessionBins * channels), total = [Double](repeating: 0, count: sessionBins)
        for (k, start) in starts.enumerated() {
            let w = weights(k)
            for i in 0..<length {
                total[start + i] += w[i]
                let row = (k * length + i) * channels, out = (start + i) * channels
                for c in 0..<channels { sum[out + c] += w[i] * Double(values[row + c]) }
            }
        }
        return (0..<(sessionBins * channels)).map { Float(sum[$0] / total[$0 / channels]) }
    }

    /// The session's values (sessionBins, channels) cut into the windows (windows, length, channels).
    public func chop(_ session: [Float], channels: Int) -> [Float] {
        starts.flatMap { session[($0 * channels)..<(($0 + length) * channels)] }
    }
}
