import Checkpoint
import Data
import Foundation
import HDF5
import Kernels
import Model
import Support

/// `lflow-dist init`: a freshly initialised model, sized from the data, as a checkpoint.
public enum Initialiser {
    public static func run(config: ModelConfig, dataPath: String, out: String) throws -> ParameterLayout {
        let tensors = try NLBTensors.load(path: dataPath)
        let params = ParameterSet<Float>(layout: ParameterLayout(config: config, dims: DataDims(tensors)))
        params.initialise(seed: config.seed)
        try CheckpointIO.write(path: out, layout: params.layout, values: params.values, config: config)
        return params.layout
    }
}
