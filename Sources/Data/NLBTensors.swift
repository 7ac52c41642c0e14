import Foundation
import HDF5
import Kernels
import Support

// Data: NLB tensor files (reading and validating every layout nlb_tools writes) and the built-in
// Lorenz generator. No model or training logic.

/// A problem with an input data file: names the file and the key, and says what to fix.
public enum DataFailure {}
public typealias DataError = Failure<DataFailure>

/// The NLB tensor file of `nlb_tools.make_train_input_tensors` + `make_eval_input_tensors` +
/// `save_to_h5` (spec `data.md`): flat top-level datasets, any integer or float dtype.
/// NaN marks a missing bin and is kept; negative or infinite counts are refused.
public struct NLBTensors: Sendable {
    public var path: String
    public var trainHeldIn: Tensor3                 // (n_train, T, Nin)
    public var trainHeldOut: Tensor3                // (n_train, T, Nho)
    public var trainHeldInForward: Tensor3?         // (n_train, F, Nin)
    public var trainHeldOutForward: Tensor3?        // (n_train, F, Nho)
    public var trainBehavior: Tensor3?              // (n_train, T, B)
    public var evalHeldIn: Tensor3?                 // (n_eval, T, Nin)
    public var evalHeldOut: Tensor3?                // (n_eval, T, Nho), 'val' phase only
    /// A spikes file's neurons, units and session windows (`Recording`); nil for NLB files.
    public var recording: Recording?

    public var trainCount: Int { trainHeldIn.count }
    public var evalCount: Int { evalHeldIn?.count ?? 0 }
    public var bins: Int { trainHeldIn.bins }
    public var forwardBins: Int { trainHeldInForward?.bins ?? 0 }
    public var heldIn: Int { trainHeldIn.channels }
    public var heldOut: Int { trainHeldOut.channels }

    /// The keys `load` reads; other keys in the file are ignored.
    public static let spikeKeys = [
        "train_spikes_heldin", "train_spikes_heldout", "train_spikes_heldin_forward",
        "train_spikes_heldout_forward", "eval_spikes_heldin", "eval_spikes_heldout",
    ]

    public static func load(path: String) throws -> NLBTensors {
        let file = try open(path)
        // A lab's spikes file (`spikes` [trials, bins, neurons]) rather than NLB's tensors.
        if !file.has("train_spikes_heldin") && file.has("spikes") { return try Recording.load(path: path, file: file) }
        func tensor(_ key: String, required: Bool, counts: Bool) throws -> Tensor3? {
            guard file.has(key) else {
                guard !required else {
                    let found = (try? file.children()) ?? []
                    throw DataError("'\(path)' has no '\(key)', which an NLB tensor file must have (found: \(found.isEmpty ? "nothing" : found.joined(separator: ", "))). Make it with nlb_tools' make_train_input_tensors and save_to_h5, or use `lflow-dist synth`; or give a spikes file ('spikes' [trials, bins, neurons]; `lflow-dist prepare` makes one from NWB; docs/outputs.md).")
                }
                return nil
            }
            let (shape, values) = try file.readFloats(key)
            guard shape.count == 3 else {
                throw DataError("'\(path)', '\(key)': expected 3 dimensions (trials, bins, channels), got shape \(shape)")
            }
            guard shape[0] > 0 && shape[1] > 0 && shape[2] > 0 else {
                throw DataError("'\(path)', '\(key)': empty (shape \(shape)); it needs at least one trial, bin and channel")
            }
            let t = Tensor3(count: shape[0], bins: shape[1], channels: shape[2], values: values)
            if counts { try validateCounts(t, key: key, path: path) }
            return t
        }
        let heldIn = try tensor("train_spikes_heldin", required: true, counts: true)!
        let heldOut = try tensor("train_spikes_heldout", required: true, counts: true)!
        for (key, t) in [("train_spikes_heldin", heldIn), ("train_spikes_heldout", heldOut)] where t.values.allSatisfy(\.isNaN) {
            throw DataError("'\(path)', '\(key)': every entry is NaN (nothing observed), so there is nothing to \(key.hasSuffix("heldin") ? "encode" : "learn the held-out rates from"). Check how the file was made: NaN marks missing bins, and NLB tensor files hold NaN only where trials are padded.")
        }
        let inForward = try tensor("train_spikes_heldin_forward", required: false, counts: true)
        let outForward = try tensor("train_spikes_heldout_forward", required: false, counts: true)
        let behavior = try tensor("train_behavior", required: false, counts: false)
        let evalIn = try tensor("eval_spikes_heldin", required: false, counts: true)
        let evalOut = try tensor("eval_spikes_heldout", required: false, counts: true)

        func agree(_ a: String, _ ta: Tensor3, _ b: String, _ tb: Tensor3?, trials: Bool = true, bins: Bool = false, channels: Bool = false) throws {
            guard let tb else { return }
            var problems: [String] = []
            if trials && ta.count != tb.count { problems.append("\(a) has \(ta.count) trials but \(b) has \(tb.count)") }
            if bins && ta.bins != tb.bins { problems.append("\(a) has \(ta.bins) bins but \(b) has \(tb.bins)") }
            if channels && ta.channels != tb.channels { problems.append("\(a) has \(ta.channels) neurons but \(b) has \(tb.channels)") }
            if !problems.isEmpty {
                throw DataError("'\(path)': shapes disagree: \(problems.joined(separator: "; ")) (\(a) \(ta.shape), \(b) \(tb.shape)). The keys must come from the same make_*_tensors call.")
            }
        }
        try agree("train_spikes_heldin", heldIn, "train_spikes_heldout", heldOut, bins: true)
        try agree("train_spikes_heldin", heldIn, "train_spikes_heldin_forward", inForward, channels: true)
        try agree("train_spikes_heldout", heldOut, "train_spikes_heldout_forward", outForward, channels: true)
        if let inForward { try agree("train_spikes_heldin_forward", inForward, "train_spikes_heldout_forward", outForward, bins: true) }
        if (inForward == nil) != (outForward == nil) {
            throw DataError("'\(path)': has \(inForward == nil ? "train_spikes_heldout_forward" : "train_spikes_heldin_forward") but not \(inForward == nil ? "train_spikes_heldin_forward" : "train_spikes_heldout_forward"); forward bins need both")
        }
        try agree("train_spikes_heldin", heldIn, "train_behavior", behavior, bins: true)
        try agree("train_spikes_heldin", heldIn, "eval_spikes_heldin", evalIn, trials: false, bins: true, channels: true)
        if let evalIn { try agree("eval_spikes_heldin", evalIn, "eval_spikes_heldout", evalOut, bins: true) }
        try agree("train_spikes_heldout", heldOut, "eval_spikes_heldout", evalOut, trials: false, channels: true)

        return NLBTensors(path: path, trainHeldIn: heldIn, trainHeldOut: heldOut, trainHeldInForward: inForward,
                          trainHeldOutForward: outForward, trainBehavior: behavior, evalHeldIn: evalIn, evalHeldOut: evalOut)
    }

    /// The number of train trials in the file at `path`, from the shape of `train_spikes_heldin`
    /// alone (no data read): what the recipe's small-data rule looks at before loading.
    public static func trainTrialCount(path: String) throws -> Int {
        let file = try open(path)
        if !file.has("train_spikes_heldin") && file.has("spikes") {
            let shape = try file.shape(of: "spikes")
            guard shape.count == 3 else { throw DataError("'\(path)', 'spikes': expected 3 dimensions (trials, bins, neurons), got shape \(shape)") }
            return shape[0]
        }
        guard file.has("train_spikes_heldin") else {
            throw DataError("'\(path)' has no 'train_spikes_heldin', which an NLB tensor file must have. Make it with nlb_tools' make_train_input_tensors and save_to_h5, or use `lflow-dist synth`.")
        }
        let shape = try file.shape(of: "train_spikes_heldin")
        guard shape.count == 3 else {
            throw DataError("'\(path)', 'train_spikes_heldin': expected 3 dimensions (trials, bins, channels), got shape \(shape)")
        }
        return shape[0]
    }

    /// Opens an NLB tensor file; an HDF5 failure becomes a DataError naming the file.
    static func open(_ path: String) throws -> H5File {
        do { return try H5File.open(path) } catch let error as HDF5Error {
            throw DataError("cannot read NLB data file \(error)")
        }
    }

    /// Spike counts must be finite and non-negative; NaN (a missing bin) is allowed.
    static func validateCounts(_ t: Tensor3, key: String, path: String) throws {
        for (i, v) in t.values.enumerated() where !v.isNaN && (v < 0 || v.isInfinite) {
            let trial = i / (t.bins * t.channels), bin = (i / t.channels) % t.bins, neuron = i % t.channels
            throw DataError("'\(path)', '\(key)': invalid spike count \(v) at (trial \(trial), bin \(bin), neuron \(neuron)). Counts must be finite and >= 0; use NaN to mark a missing bin.")
        }
    }
}

/// A cheap, deterministic fingerprint of a data file: its size and the 64-bit `Digest64` of
/// its bytes. Checkpoints record it so that a resume on other data is refused.
public func dataFingerprint(path: String) throws -> String {
    guard let handle = FileHandle(forReadingAtPath: path) else {
        throw DataError("cannot read '\(path)' to fingerprint it")
    }
    defer { try? handle.close() }
    var hash = Digest64()
    var size = 0
    while let chunk = try handle.read(upToCount: 1 << 20), !chunk.isEmpty {
        size += chunk.count
        chunk.withUnsafeBytes { hash.combine($0) }
    }
    return "\(size)-\(hash.hex)"
}
