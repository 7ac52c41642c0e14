import Data
import Kernels
import Model

extension DataDims {
    /// The model sizes an NLB tensor file implies.
    public init(_ tensors: NLBTensors) {
        self.init(bins: tensors.bins, forwardBins: tensors.forwardBins,
                  heldIn: tensors.heldIn, heldOut: tensors.heldOut)
    }
}

/// Which trials of an NLB file: the training trials or the eval trials.
public enum TrialSet: Sendable { case train, eval }

extension NLBTensors {
    /// (held-in, held-out, held-in forward, held-out forward) of a trial set; absent arrays are
    /// nil and become NaN (masked) targets.
    func arrays(_ set: TrialSet) -> (Tensor3, Tensor3?, Tensor3?, Tensor3?) {
        switch set {
        case .train: return (trainHeldIn, trainHeldOut, trainHeldInForward, trainHeldOutForward)
        case .eval: return (evalHeldIn!, evalHeldOut, nil, nil)
        }
    }
}

extension Batch {
    /// Fills the batch with `trials` of one trial set, as time-major targets.
    public func load(trials: [Int], split: TrialSet, from tensors: NLBTensors) {
        let arrays = tensors.arrays(split)
        load(trials.map { (arrays, $0) })
    }

    /// Fills the batch with training examples: keys below `tensors.trainCount` are training
    /// trials; key trainCount + i is eval trial i with its held-in spikes only (held-out neurons
    /// and forward bins NaN, i.e. masked, whatever the file holds). The keys are also the
    /// trials' noise keys (`Predictor.noiseKeys`).
    public func load(trainingKeys keys: [Int], from tensors: NLBTensors) {
        let train = tensors.arrays(.train)
        load(keys.map { key in
            key < tensors.trainCount ? (train, key) : ((tensors.evalHeldIn!, nil, nil, nil), key - tensors.trainCount)
        })
    }

    func load(_ rows: [((Tensor3, Tensor3?, Tensor3?, Tensor3?), Int)]) {
        precondition(rows.count <= capacity)
        count = rows.count
        let nIn = dims.heldIn, nOut = dims.outputs, nHo = dims.heldOut
        for t in 0..<dims.steps {
            let forward = t >= dims.bins
            let bin = forward ? t - dims.bins : t
            for (b, ((heldIn, heldOut, heldInForward, heldOutForward), trial)) in rows.enumerated() {
                let source: Tensor3? = forward ? heldInForward : heldIn, sourceOut = forward ? heldOutForward : heldOut
                let row = targets.ptr + (t * count + b) * nOut
                for n in 0..<nIn { row[n] = source.map { S($0[trial, bin, n]) } ?? .nan }
                for n in 0..<nHo { row[nIn + n] = sourceOut.map { S($0[trial, bin, n]) } ?? .nan }
            }
        }
    }
}

/// The seeded split of the training trials into the trials trained on and the validation trials.
public struct ValidationSplit: Equatable, Sendable {
    public let training: [Int]
    public let validation: [Int]
    /// What made it (the cache of the smoothed-spikes baseline is keyed by them).
    public let fraction: Double
    public let seed: Int

    public init(trials: Int, fraction: Double, seed: Int) {
        self.fraction = fraction
        self.seed = seed
        let order = seededPermutation(trials, seed: seed, purpose: .validationSplit, key: 0)
        var count = Int((Double(trials) * fraction).rounded())
        if fraction > 0 && trials >= 2 { count = min(max(count, 1), trials - 1) }
        validation = order.prefix(count).sorted()
        training = order.dropFirst(count).sorted()
    }
}
