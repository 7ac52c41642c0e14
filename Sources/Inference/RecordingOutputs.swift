import Data
import Foundation
import HDF5
import Model
import Support

/// What a model infers for a lab's recording (a spikes file, `Recording`), put back in the
/// recording's own terms: rates in the file's neuron order, and for a continuous session every
/// quantity merged from its windows onto the session's bins (`SessionWindows.merge`). `predict`,
/// `latents` and `export` write these; the layouts are in docs/outputs.md.
public enum RecordingOutputs {
    /// The observed bins of trial-major values (trials, steps, width) → (trials, bins, width).
    public static func observed(_ values: [Float], trials: Int, steps: Int, bins: Int, width: Int) -> [Float] {
        guard steps != bins else { return values }
        return (0..<trials).flatMap { j in values[(j * steps * width)..<((j * steps + bins) * width)] }
    }

    /// Rates (trials, steps, held-in + held-out) → the observed bins in the file's neuron
    /// order (trials, bins, neurons).
    public static func rates(_ rates: [Float], dims: DataDims, recording: Recording, trials: Int) -> [Float] {
        recording.fileOrder(observed(rates, trials: trials, steps: dims.steps, bins: dims.bins, width: dims.outputs), rows: trials * dims.bins)
    }

    /// Writes the rates of every trial in the file's neuron order as `rates`, the units as
    /// `unit_ids`, and for a session the merged rates `session/rates` (session bins, neurons)
    /// with `session/time` (s, each bin's start).
    public static func writeRates(_ trainRates: [Float], dims: DataDims, recording: Recording, trials: Int, into file: H5File) throws {
        let rates = rates(trainRates, dims: dims, recording: recording, trials: trials)
        try file.write("rates", shape: [trials, dims.bins, recording.neurons], floats: rates)
        try file.write("unit_ids", shape: [recording.neurons], int64s: recording.unitIDs)
        if let windows = recording.windows {
            try writeMerged([("rates", rates, recording.neurons)], windows: windows, under: "session/", into: file)
        }
    }

    /// Writes the latent paths of every trial merged onto a session's bins: `session/z`,
    /// `session/v`, `session/h`, `session/factors` (session bins, width) and `session/time`.
    /// Nothing for a recording of trials.
    public static func writeSessionPaths(_ paths: LatentPaths.Paths, bins: Int, recording: Recording, into file: H5File) throws {
        guard let windows = recording.windows else { return }
        try writeMerged(observedParts(paths, ["z", "v", "h", "factors"], bins: bins), windows: windows, under: "session/", into: file)
    }

    /// The named parts of `paths` (z, v, h, factors), each its observed bins (trials, bins, width);
    /// empty parts (v in first order) left out.
    static func observedParts(_ paths: LatentPaths.Paths, _ names: [String], bins: Int) -> [(String, [Float], Int)] {
        let all: [String: ([Float], Int)] = ["z": (paths.z, paths.hidden), "v": (paths.v, paths.hidden), "h": (paths.h, paths.hidden),
                                             "factors": (paths.factors, paths.factorCount)]
        return names.compactMap { name in
            guard let (values, width) = all[name], !values.isEmpty else { return nil }
            return (name, observed(values, trials: paths.trials, steps: paths.steps, bins: bins, width: width), width)
        }
    }

    /// Writes each part (windows, length, width) merged onto the session's bins as `<prefix><name>`
    /// (session bins, width), and `<prefix>time`.
    static func writeMerged(_ parts: [(String, [Float], Int)], windows: SessionWindows, under prefix: String, into file: H5File) throws {
        for (name, values, width) in parts {
            try file.write(prefix + name, shape: [windows.sessionBins, width], floats: windows.merge(values, channels: width))
        }
        try file.write(prefix + "time", shape: [windows.sessionBins], doubles: windows.binTimes)
    }

    /// The file `lflow_dist.export` turns into NWB (`lflow-dist export`): top-level `rates`
    /// (file neuron order), `z`, `v`, `factors`, and `unit_ids`; a session's merged onto its bins
    /// with `time` (T), a recording of trials' per trial with `trial_start_time`; attributes
    /// `kind`, `bin_ms` and the caller's (config, checkpoint, data, run_dir).
    public static func writeExport(path: String, rates trainRates: [Float], paths: LatentPaths.Paths, dims: DataDims,
                                   recording: Recording, attributes: [String: String]) throws {
        let trials = paths.trials, bins = dims.bins, neurons = recording.neurons
        let rates = rates(trainRates, dims: dims, recording: recording, trials: trials)
        try AtomicFile.write(path) { temporary in
            let file = try H5File.create(temporary)
            let parts = [("rates", rates, neurons)] + observedParts(paths, ["z", "v", "factors"], bins: bins)
            if let windows = recording.windows {
                try writeMerged(parts, windows: windows, under: "", into: file)
            } else {
                for (name, values, width) in parts { try file.write(name, shape: [trials, bins, width], floats: values) }
                if let starts = recording.trialStartTime { try file.write("trial_start_time", shape: [trials], doubles: starts) }
            }
            try file.write("unit_ids", shape: [neurons], int64s: recording.unitIDs)
            try file.writeAttribute("kind", string: recording.kind.rawValue)
            if let binMs = recording.binMs { try file.writeAttribute("bin_ms", double: binMs) }
            for (key, value) in attributes.sorted(by: { $0.key < $1.key }) { try file.writeAttribute(key, string: value) }
            try file.flush()
        }
    }
}
