import Data
import Foundation
import HDF5
import Inference
import Kernels
import Metrics
import Model
import Support

/// The NLB submission file: one group named as the dataset, float32 rates in expected spikes
/// per bin, which `nlb_tools.evaluation.evaluate` scores unchanged.
public enum Submission {
    /// Writes the submission from the rates of every training and eval trial (trial-major
    /// (n, T+F, Nout), as `Predictor.all` returns them), atomically: a kill leaves no half file.
    /// A spikes file's rates also go in the file's own terms (`RecordingOutputs.writeRates`).
    public static func write(path: String, group: String, trainRates: [Float], evalRates: [Float], dims: DataDims,
                             tensors: NLBTensors) throws {
        let steps = dims.steps, nIn = dims.heldIn, n = dims.outputs, T = dims.bins
        try AtomicFile.write(path) { temporary in
            let file = try H5File.create(temporary)
            func write(_ key: String, _ rates: [Float], trials: Int, bins: Range<Int>, neurons: Range<Int>) throws {
                try file.write("\(group)/\(key)", shape: [trials, bins.count, neurons.count],
                               floats: Predictor.slice(rates, trials: trials, steps: steps, width: n, bins: bins, neurons: neurons))
            }
            try write("train_rates_heldin", trainRates, trials: tensors.trainCount, bins: 0..<T, neurons: 0..<nIn)
            try write("train_rates_heldout", trainRates, trials: tensors.trainCount, bins: 0..<T, neurons: nIn..<n)
            if tensors.evalCount > 0 {
                try write("eval_rates_heldin", evalRates, trials: tensors.evalCount, bins: 0..<T, neurons: 0..<nIn)
                try write("eval_rates_heldout", evalRates, trials: tensors.evalCount, bins: 0..<T, neurons: nIn..<n)
                if steps > T {
                    try write("eval_rates_heldin_forward", evalRates, trials: tensors.evalCount, bins: T..<steps, neurons: 0..<nIn)
                    try write("eval_rates_heldout_forward", evalRates, trials: tensors.evalCount, bins: T..<steps, neurons: nIn..<n)
                }
            }
            if let recording = tensors.recording {
                try RecordingOutputs.writeRates(trainRates, dims: dims, recording: recording, trials: tensors.trainCount, into: file)
            }
            try file.flush()
        }
    }

    /// Writes the ensemble of several submissions of the same data (`train` with `ensemble`):
    /// every rate dataset is the mean of theirs (`RateSum`, as `Predictor.ensemble`), atomically.
    public static func average(_ paths: [String], into path: String) throws {
        let files = try paths.map { try H5File.open($0) }
        let groups = try files[0].children(of: "/", groups: true)
        try AtomicFile.write(path) { temporary in
            let out = try H5File.create(temporary)
            for group in groups {
                for key in try files[0].children(of: group) {
                    var sum = RateSum()
                    var shape: [Int] = []
                    for (p, file) in zip(paths, files) {
                        let part = try file.readFloats("\(group)/\(key)")
                        if shape.isEmpty { shape = part.shape }
                        guard part.shape == shape else {
                            throw EvaluationError("'\(p)': \(group)/\(key) has shape \(part.shape), '\(paths[0])' has \(shape); an ensemble averages submissions of the same data")
                        }
                        sum.add(part.values)
                    }
                    try out.write("\(group)/\(key)", shape: shape, floats: sum.mean!)
                }
            }
            try out.flush()
        }
    }

    /// The submission's group: `explicit` (--dataset-name), else the data file's `dataset_name`
    /// attribute, else the NLB dataset whose neuron counts and bins the data has (with a note),
    /// else the file's stem (with a warning: nlb_tools' evaluate scores only NLB names).
    public static func group(dataPath: String, tensors: NLBTensors, explicit: String?) -> (name: String, note: String?) {
        if let explicit { return (explicit, nil) }
        if let file = try? H5File.open(dataPath), let name = try? file.readAttributeString("dataset_name") { return (name, nil) }
        if let match = nlbDataset(heldIn: tensors.heldIn, heldOut: tensors.heldOut, bins: tensors.bins) {
            return (match, "note: '\(dataPath)' has no dataset_name attribute; its \(tensors.heldIn) held-in and \(tensors.heldOut) held-out neurons and \(tensors.bins) bins are those of NLB's \(match), so the submission group is \(match) (--dataset-name sets another).")
        }
        let stem = URL(fileURLWithPath: dataPath).deletingPathExtension().lastPathComponent
        return (stem, "warning: '\(dataPath)' has no dataset_name attribute and its shapes match no NLB dataset, so the submission group is '\(stem)', which nlb_tools.evaluation.evaluate will not score (it knows mc_maze, mc_rtt, area2_bump, dmfc_rsg and mc_maze_large/medium/small, with _20 for 20 ms bins). Pass --dataset-name to name it.")
    }

    /// NLB'21's datasets: held-in and held-out neurons, and bins of the observed window at 5 ms.
    static let nlbDatasets: [(name: String, heldIn: Int, heldOut: Int, bins5ms: Int)] = [
        ("mc_maze", 137, 45, 140), ("mc_rtt", 98, 32, 120), ("area2_bump", 49, 16, 120), ("dmfc_rsg", 40, 14, 300),
        ("mc_maze_large", 122, 40, 140), ("mc_maze_medium", 114, 38, 140), ("mc_maze_small", 107, 35, 140),
    ]

    /// The NLB group name (`mc_maze` at 5 ms, `mc_maze_20` at 20 ms) of data with these shapes.
    public static func nlbDataset(heldIn: Int, heldOut: Int, bins: Int) -> String? {
        for d in nlbDatasets where d.heldIn == heldIn && d.heldOut == heldOut {
            if bins == d.bins5ms { return d.name }
            if bins * 4 == d.bins5ms { return d.name + "_20" }
        }
        return nil
    }
}
