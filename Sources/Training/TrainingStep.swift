import Distributed
import Inference
import Kernels
import Model

/// One optimiser step, as training takes it and `bench` times it: zero the gradients, forward
/// and backward on this rank's slice of the global batch, the sum of the flat gradient buffer
/// over ranks (GradientReduction: in rank order; when it overlaps (`overlaps`) bucket by bucket on
/// a communication thread while the backward goes on, the same bits), clip, Adam (and the weight
/// average). A non-finite gradient norm (the same
/// on every rank, since every rank sees the summed gradient) returns before the update, so the
/// caller can stop with the weights of before the step.
public final class TrainingStep {
    public let model: LangevinFlow<Float>
    public let adam: Adam<Float>
    public let average: WeightAverage<Float>?
    let comm: Communicator
    let gradClip: Double
    /// Runs between the local backward and the allreduce (bench: a barrier, so the wait for the
    /// slowest rank is timed apart from the allreduce; in training that wait is inside it). Not
    /// with the overlap: the reduction has begun by then, and no other collective may run beside it.
    public var beforeAllreduce: (() throws -> Void)?
    public let reduction: GradientReduction
    /// How the gradient sum runs and why, for the run's log (nil on one rank: nothing to sum).
    public let reductionNote: String?

    /// Collective (with `overlapAllreduce: auto` it counts the hosts).
    public init(model: LangevinFlow<Float>, config: Config, comm: Communicator) throws {
        self.model = model
        self.comm = comm
        gradClip = config.train.gradClip
        adam = Adam(count: model.params.layout.totalCount, beta1: config.train.adamBeta1, beta2: config.train.adamBeta2, eps: config.train.adamEps)
        average = config.train.weightAverage > 0 ? WeightAverage(of: model.params.values, decay: config.train.weightAverage) : nil
        let groups = model.gradientGroupStarts
        let setting = config.run.overlapAllreduce, overlap = try Self.overlaps(setting, comm: comm)
        reduction = GradientReduction(comm: comm, buffer: model.params.grads.ptr, count: model.params.grads.count,
                                      bucketStarts: [groups.readout, groups.decoder ?? 0, groups.dynamics], overlap: overlap)
        let why = setting != .auto ? "overlapAllreduce: \(setting.rawValue)"
            : "overlapAllreduce: auto, the ranks on \(overlap ? "more than one host" : "one host")"
        reductionNote = comm.size > 1
            ? "gradient sum over ranks: \(overlap ? "overlapped with the backward, on a communication thread" : "after the backward") (\(why))"
            : nil
    }

    /// Whether the gradient reduction runs on its communication thread under `overlapAllreduce`:
    /// auto overlaps when the ranks span more than one host. On one host the sum is a
    /// shared-memory copy (main job: 0.07 ms of a 25 ms step, `bench --allreduce`) with little to
    /// hide, and the thread's polling takes the cores the ranks compute on: the main job on
    /// 2 ranks and 2 cores ran 10-12% slower with it (docs/performance.md, "The overlap").
    /// Between hosts a link's transfer is worth hiding. Collective under auto (it counts hosts).
    public static func overlaps(_ setting: RunOptions.Overlap, comm: Communicator) throws -> Bool {
        switch setting {
        case .on: return true
        case .off: return false
        case .auto: return comm.size > 1 ? try comm.hostCount() > 1 : false
        }
    }

    /// Takes step number `step` on `batch` (nil when this rank's slice is empty). Returns the
    /// local loss (nil without a slice) and the global gradient norm before clipping; when that
    /// is not finite nothing was updated.
    public func take(_ batch: Batch<Float>?, noise: NoiseContext, klWeight: Double, normalisation: LossNormalisation,
                     learningRate: Double, weightDecay: Double, step: Int) throws -> (loss: LossValues?, gradNorm: Double) {
        let clock = model.clock
        model.params.grads.zero()
        try reduction.begin()
        clock?.mark(.optimiser)
        var loss: LossValues?
        if let batch {
            loss = model.forward(batch, noise: noise, klWeight: klWeight, normalisation: normalisation)
            model.backward(gradientsFinal: reduction.final(from:))
        }
        if let beforeAllreduce, !reduction.overlap {
            try beforeAllreduce()
            clock?.mark(.rankWait)
        }
        // With the overlap: the wait for the buckets still in flight (and for the slowest rank).
        try reduction.finish()
        clock?.mark(.allreduce)
        let gradNorm = Adam<Float>.clipGradNorm(model.params.grads, maxNorm: gradClip)
        guard gradNorm.isFinite else { return (loss, gradNorm) }
        adam.update(params: model.params.values, grads: model.params.grads, learningRate: learningRate, weightDecay: weightDecay)
        average?.update(from: model.params.values, step: step)
        clock?.mark(.optimiser)
        return (loss, gradNorm)
    }
}
