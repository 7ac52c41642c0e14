import Data
import Distributed
import RunFiles

/// Everything a run needs besides its config: the data, its run directory, the ranks it runs on
/// and where its lines go. `train` makes one; an ensemble member, a search trial and a PBT
/// generation are the same run in another directory (`in(_:)`), on a group's communicator.
public struct RunContext {
    public let tensors: NLBTensors
    /// The data file (the submission's group name and the report read it).
    public let dataPath: String
    public let run: RunDirectory
    public let comm: Communicator
    /// Rank 0 prints or writes what it is given; the other ranks pass a no-op.
    public let log: (String) -> Void
    /// The NLB dataset name for the submission's group (nil: from the data file's name).
    public var datasetName: String?
    /// A file with the ground truth (`truth/`) of synthetic data, for rate, PSTH and latent R²
    /// (nil: the data file, which has it when `synth` made it).
    public var truthPath: String?
    /// Where the smoothed-spikes baseline's cache goes (nil: the run directory; a search gives
    /// its own, so its trials share one).
    public var cacheDirectory: String?

    public init(tensors: NLBTensors, dataPath: String, run: RunDirectory, comm: Communicator, log: @escaping (String) -> Void,
                datasetName: String? = nil, truthPath: String? = nil, cacheDirectory: String? = nil) {
        self.tensors = tensors
        self.dataPath = dataPath
        self.run = run
        self.comm = comm
        self.log = log
        self.datasetName = datasetName
        self.truthPath = truthPath
        self.cacheDirectory = cacheDirectory
    }

    /// The same context for a run in `directory`, on `comm` (default: this one's), logging to
    /// `log` (default: this one's).
    public func `in`(_ directory: RunDirectory, comm: Communicator? = nil, log: ((String) -> Void)? = nil) -> RunContext {
        RunContext(tensors: tensors, dataPath: dataPath, run: directory, comm: comm ?? self.comm, log: log ?? self.log,
                   datasetName: datasetName, truthPath: truthPath, cacheDirectory: cacheDirectory)
    }

    /// The ground truth's file.
    public var truth: String { truthPath ?? dataPath }
}
