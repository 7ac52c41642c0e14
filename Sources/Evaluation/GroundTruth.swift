import Data
import Foundation
import HDF5
import Kernels
import Metrics
import Model

/// Ground truth of synthetic data, for the report: true rates, latents and conditions of the
/// training trials, from a file with a `truth/` group (the built-in Lorenz data itself, or the
/// hidden target file of `nlbsynth`).
public struct GroundTruth {
    /// (n_train, T+F, N), held-in then held-out neurons.
    public var trainRates: [Double]?
    /// (n_train, T+F, K).
    public var trainLatents: [Double]?
    public var latentDimensions = 0
    /// The condition of each training trial.
    public var trainConditions: [Int]?

    /// Reads what `path` has; nil when it has no ground truth that fits this data's shapes.
    public static func load(path: String?, trainCount: Int, steps: Int, neurons: Int, heldIn: Int) -> GroundTruth? {
        guard let path, let file = try? H5File.open(path), file.has("truth") else { return nil }
        var truth = GroundTruth()
        if let (shape, values) = try? file.readDoubles("truth/train_rates"), shape == [trainCount, steps, neurons] {
            truth.trainRates = values
        } else if let pieces = try? ["heldin", "heldout", "heldin_forward", "heldout_forward"].map({ try file.readDoubles("truth/train_rates_\($0)") }),
                  pieces[0].shape.count == 3, pieces[0].shape[0] == trainCount, pieces[0].shape[2] == heldIn,
                  pieces[0].shape[1] + pieces[2].shape[1] == steps, pieces[0].shape[2] + pieces[1].shape[2] == neurons {
            // nlbsynth: rates split like the spikes; join them into (n, T+F, N).
            let T = pieces[0].shape[1], F = pieces[2].shape[1], nHo = neurons - heldIn
            var rates = [Double](repeating: 0, count: trainCount * steps * neurons)
            for i in 0..<trainCount {
                for t in 0..<steps {
                    let (a, b, bins) = t < T ? (pieces[0].values, pieces[1].values, T) : (pieces[2].values, pieces[3].values, F)
                    let tt = t < T ? t : t - T
                    for c in 0..<heldIn { rates[(i * steps + t) * neurons + c] = a[(i * bins + tt) * heldIn + c] }
                    for c in 0..<nHo { rates[(i * steps + t) * neurons + heldIn + c] = b[(i * bins + tt) * nHo + c] }
                }
            }
            truth.trainRates = rates
        }
        if let (shape, values) = try? file.readDoubles("truth/train_latents"), shape.count == 3, shape[0] == trainCount, shape[1] == steps {
            truth.trainLatents = values
            truth.latentDimensions = shape[2]
        }
        if let (shape, values) = try? file.readDoubles("truth/train_conditions"), shape.first == trainCount {
            truth.trainConditions = values.map { Int($0) }
        } else if let (shape, values) = try? file.readDoubles("train_cond_idx"), shape.first == trainCount {
            truth.trainConditions = values.map { Int($0) }          // the Lorenz file: one condition per trial
        }
        return truth.trainRates == nil && truth.trainLatents == nil ? nil : truth
    }
}
