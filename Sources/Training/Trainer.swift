import Checkpoint
import Data
import Distributed
import Foundation
import Inference
import Kernels
import Model
import RunFiles
import Support
import TensorBoard

// Training: the epoch loop (Trainer), the optimiser step (TrainingStep), schedules and the time
// budget, checkpoint cadence and resume, and one complete run (TrainingRun: train, then predict
// and evaluate). It may not know about searches, reports or the command line.

public enum TrainingFailure {}
public typealias TrainingError = Failure<TrainingFailure>

/// Training that continues another run's resumable checkpoint: its weights, Adam moments,
/// best weights, weight average and schedule state, with a config that may differ from the
/// checkpoint's in `adjustable` fields (and in the run-management ones). PBT starts each member's
/// next generation from its parent's this way; so can fine-tuning, or a search that widens a
/// schedule.
public struct WarmStart: Sendable {
    public let checkpoint: String
    public let adjustable: Set<String>
    public init(checkpoint: String, adjustable: Set<String>) {
        self.checkpoint = checkpoint
        self.adjustable = adjustable
    }
}

/// The epoch loop: seeded shuffles, KL and weight-decay warm-up, clipping, Adam,
/// ReduceLROnPlateau and early stopping on the validation loss, best weights kept.
///
/// Data-parallel over a communicator: every rank takes its slice of each global batch, the loss
/// is normalised by the global counts, the flat gradient buffer is summed in one in-place
/// allreduce, and every rank applies the same Adam step. Only rank 0 logs and writes.
///
/// Order of one step: zero the gradients, forward and backward on the local slice, allreduce,
/// clip, Adam.
public final class Trainer {
    public let config: Config
    public let tensors: NLBTensors
    public let dims: DataDims
    public let split: ValidationSplit
    /// What an epoch trains on: the training trials of the split and, with `evalTrials:
    /// heldIn`, the eval trials as keys trainCount + i (see `Batch.load(trainingKeys:)`).
    public let trainingKeys: [Int]
    public let model: LangevinFlow<Float>
    /// The step every batch takes (its Adam state and weight average are the run's).
    public let optimiserStep: TrainingStep
    var adam: Adam<Float> { optimiserStep.adam }
    let batch: Batch<Float>
    /// The run directory's files.
    public let run: RunDirectory
    public let comm: Communicator
    let say: (String) -> Void

    public internal(set) var scheduler: PlateauScheduler
    /// The best value of the validation metric (the held-out NLL) so far.
    public internal(set) var bestValidMetric = Double.infinity
    public internal(set) var bestEpoch = -1
    /// Parameters at the best validation loss so far (the weight average's, when it is on).
    public let bestParameters: Buffer<Float>
    /// The moving average of the weights (`weightAverage` > 0): what validation, the best
    /// weights and prediction use.
    public var average: WeightAverage<Float>? { optimiserStep.average }
    /// The live weights while the average sits in the model for validation.
    let liveParameters: Buffer<Float>?
    public internal(set) var step = 0
    public internal(set) var history: [EpochRecord] = []
    /// The slowest training step of this process so far, seconds (for the watchdog).
    var slowestStep = 0.0
    /// The data file's fingerprint when it was loaded (checkpoints record it; hashed once per run,
    /// not at every checkpoint).
    public let fingerprint: String
    /// Called on every rank after each epoch's record is logged (search uses it on world rank 0
    /// to report other groups' trials while its own trains).
    public var afterEpoch: ((EpochRecord) -> Void)?
    /// Set by `TrainingRun` on data with true latents: the latent R² and motion of the weights
    /// validation uses (every rank calls it; the values on rank 0).
    public var latentProbe: (() throws -> (r2: Double, motion: Double)?)?
    /// Where training starts when the run directory has no checkpoint of its own (nil: afresh).
    public var warmStart: WarmStart?
    /// Rank 0's TensorBoard event file of this session (nil elsewhere, and before `train`).
    public internal(set) var events: EventWriter?

    public init(config: Config, context: RunContext) throws {
        let tensors = context.tensors
        self.config = config
        self.tensors = tensors
        dims = DataDims(tensors)
        if let problem = LangevinStability.problem(config.model, steps: dims.steps) {
            throw TrainingError("refused before training: " + problem)
        }
        split = ValidationSplit(trials: tensors.trainCount, fraction: config.train.validationFraction, seed: config.validationSplitSeed)
        guard !split.training.isEmpty else {
            throw TrainingError("'\(tensors.path)' has \(tensors.trainCount) training trials, too few to train with validationFraction \(config.train.validationFraction)")
        }
        trainingKeys = split.training + (config.train.evalTrials == .heldIn ? (0..<tensors.evalCount).map { tensors.trainCount + $0 } : [])
        model = LangevinFlow(config: config.model, dims: dims, maxBatch: config.train.batchSize)
        model.params.initialise(seed: config.model.seed)
        run = context.run
        comm = context.comm
        optimiserStep = try TrainingStep(model: model, config: config, comm: comm)
        batch = Batch(dims: dims, capacity: config.train.batchSize)
        bestParameters = Buffer(count: model.params.layout.totalCount)
        liveParameters = config.train.weightAverage > 0 ? Buffer(count: model.params.layout.totalCount) : nil
        scheduler = PlateauScheduler(learningRate: config.train.learningRate, factor: config.train.lrFactor,
                                     patience: config.train.lrPatience, minLearningRate: config.train.minLearningRate)
        say = context.log
        fingerprint = try dataFingerprint(path: tensors.path)
        armWatchdog()
        // Every replica starts from rank 0's parameters.
        try comm.broadcast(model.params.values.ptr, count: model.params.values.count, root: 0)
        bestParameters.copy(from: model.params.values)
        average?.values.copy(from: model.params.values)
    }

    /// Rank 0 speaks; the others are silent.
    func log(_ line: @autoclosure () -> String) { if comm.isRoot { say(line()) } }

    /// Observed (non-NaN) target entries of `trials`: the global reconstruction denominator,
    /// computed on every rank from the data, without communication.
    /// `trials` are training keys: eval trials (keys from trainCount on) count their held-in
    /// entries only.
    func observedEntries(_ trials: [Int]) -> Int {
        var count = 0
        func add(_ array: Tensor3?, _ trial: Int) {
            guard let array else { return }
            let stride = array.bins * array.channels
            for i in (trial * stride)..<((trial + 1) * stride) where !array.values[i].isNaN { count += 1 }
        }
        for trial in trials {
            if trial >= tensors.trainCount {
                add(tensors.evalHeldIn, trial - tensors.trainCount)
                continue
            }
            for array in [tensors.trainHeldIn, tensors.trainHeldOut, tensors.trainHeldInForward, tensors.trainHeldOutForward] {
                add(array, trial)
            }
        }
        return count
    }


    /// Throws unless every rank holds bit-identical parameters (a 64-bit `Digest64`,
    /// compared by max and min over ranks).
    func verifyReplicasAgree() throws {
        var digest = Digest64()
        digest.combine(UnsafeRawBufferPointer(start: model.params.values.ptr, count: model.params.values.count * MemoryLayout<Float>.size))
        let hash = digest.value
        var halves = [Double(hash >> 32), Double(hash & 0xFFFF_FFFF)]
        var negated = halves.map { -$0 }
        try halves.withUnsafeMutableBufferPointer { try comm.allreduceMax($0.baseAddress!, count: 2) }
        try negated.withUnsafeMutableBufferPointer { try comm.allreduceMax($0.baseAddress!, count: 2) }
        guard halves[0] == -negated[0] && halves[1] == -negated[1] else {
            throw TrainingError("the \(comm.size) ranks hold different parameters after \(step) steps; this is a bug, please report it with the command line")
        }
        log("parameters are bit-identical on all \(comm.size) rank\(comm.size == 1 ? "" : "s") after \(step) steps (digest \(String(hash, radix: 16)) on \(kernelSet))")
    }

    // MARK: - Collective watchdog

    /// Gives every collective of this trainer's communicator a deadline (`collectiveTimeoutSeconds`;
    /// 0 leaves them blocking). On expiry the message says where training stood and which
    /// checkpoint a restart resumes from.
    func armWatchdog() {
        guard config.run.collectiveTimeoutSeconds > 0 else { comm.deadline = nil; return }
        comm.deadline = CollectiveDeadline(seconds: config.run.collectiveTimeoutSeconds) { [unowned self] in
            let newest = self.checkpointPaths().first.map { "the newest checkpoint is \($0)" } ?? "no checkpoint was written yet, a restart trains afresh"
            return "training was at step \(self.step) (after \(self.history.count) complete epochs); \(newest)"
        }
    }

    /// A slow step is not a lost rank: the deadline is at least ten times the slowest step.
    func noteStepSeconds(_ seconds: Double) {
        guard seconds > slowestStep else { return }
        slowestStep = seconds
        if config.run.collectiveTimeoutSeconds > 0 {
            comm.deadline?.seconds = max(config.run.collectiveTimeoutSeconds, 10 * seconds)
        }
    }

    /// What one session of `train` carries from epoch to epoch.
    struct Session {
        var state: TrainerState
        /// Epochs complete when the session began (resumed from a checkpoint).
        let firstEpoch: Int
        let started = Date()
        /// The end of the previous epoch: each epoch's wall time, checkpoint writes included,
        /// counts towards the budget, across sessions.
        var lastMark = Date()
        var firstEpochEnd: Date?
        var metricsLog: FileHandle?
    }

    /// The validation of one epoch (`evaluate`).
    struct Evaluation {
        let loss: LossValues
        let heldOutNLL: Double
        /// The value model selection, the plateau schedule and early stopping use: the held-out NLL.
        let metric: Double
    }

    /// Trains for `config.train.epochs` epochs (or until early stopping or the budget). Leaves the
    /// best weights in the model and in `best.h5`.
    public func train() throws {
        var session = try beginSession()
        defer { try? session.metricsLog?.close() }
        while session.state.epoch < config.train.epochs {
            if try runEpochAndDecide(&session) { break }
        }
        try finish(session)
    }

    /// Resumes from the run's newest checkpoint (else from `warmStart`, else afresh), opens
    /// the metrics log and the TensorBoard events on rank 0, and says what will train.
    func beginSession() throws -> Session {
        // The run's own newest checkpoint first; else, when given, the checkpoint to continue from.
        let resumed = try resumeFromNewestCheckpoint() ?? warmStart.map { try load(checkpoint: $0.checkpoint, adjustable: $0.adjustable) }
        var session = Session(state: resumed ?? TrainerState(epoch: 0, batchCursor: 0, partial: EpochSums()), firstEpoch: resumed?.epoch ?? 0)
        if comm.isRoot {
            try FileManager.default.createDirectory(atPath: run.path, withIntermediateDirectories: true)
            checkpoints.removeStaleTemporaries()
            try keepMetricsLines(session.state.epoch)
            session.metricsLog = try FileHandle(forWritingTo: URL(fileURLWithPath: run.metrics))
            try session.metricsLog?.seekToEnd()
            // TensorBoard: the same values as metrics.jsonl, x = the epoch; a resumed session
            // tells TensorBoard to drop what an earlier session logged from here on.
            events = try EventWriter(directory: run.path)
            events?.sessionStart(step: session.state.epoch + 1)
        }
        let evalInputs = trainingKeys.count - split.training.count
        let spent = session.state.trainingSeconds.map { $0 > 0 ? " (\(formatDuration($0)) spent before this session)" : "" } ?? ""
        log("training on \(split.training.count) trials" + (evalInputs > 0 ? " and the held-in spikes of \(evalInputs) eval trials" : "")
            + ", validating on \(split.validation.count); \(model.params.layout.totalCount) parameters, global batch \(config.train.batchSize) over \(comm.size) rank\(comm.size == 1 ? "" : "s"), \(config.train.epochs) epochs"
            + (config.run.maxMinutes > 0 ? " or \(formatDuration(config.run.maxMinutes * 60)) of training, whichever comes first" : "") + spent)
        if let note = optimiserStep.reductionNote { log(note) }
        if let note = SmallData.note(trainTrials: tensors.trainCount, trainingTrials: split.training.count,
                                     parameters: model.params.layout.totalCount, config: config) {
            log(note)
        }
        return session
    }

    /// One epoch and what follows it: train, evaluate, keep the best weights, step the
    /// scheduler, record and log, account the time, checkpoint. True when training stops here.
    func runEpochAndDecide(_ session: inout Session) throws -> Bool {
        let epoch = session.state.epoch, epochStart = Date()
        let train = try runEpoch(epoch, from: &session.state)
        guard train.loss.total.isFinite else { throw nonFinite(epoch: epoch, what: "the training loss became \(train.loss.total)") }
        let evaluation = try evaluate(epoch: epoch)
        let improved = try keepIfBest(evaluation.metric, epoch: epoch)
        let reduced = scheduler.step(evaluation.metric)
        let record = try epochRecord(epoch, train: train, evaluation: evaluation, improved: improved,
                                     seconds: Date().timeIntervalSince(epochStart), state: session.state)
        history.append(record)
        session.metricsLog?.write(try JSON.encoder().encode(record) + Data("\n".utf8))
        events?.scalars(step: epoch + 1, record.scalars)
        let budgetReached = try accountTime(&session)
        logEpoch(record, session: session, reduced: reduced, budgetReached: budgetReached)
        afterEpoch?(record)
        return try checkpointAndDecide(&session, budgetReached: budgetReached)
    }

    /// The validation of `epoch` with the weights validation uses (the average's when on);
    /// a non-finite metric ends training.
    func evaluate(epoch: Int) throws -> Evaluation {
        let (loss, heldOutNLL) = try withAveragedWeights { try validate() }
        let metric = heldOutNLL
        guard metric.isFinite else {
            throw nonFinite(epoch: epoch, what: "the validation metric (\("heldOut")) became \(metric)")
        }
        return Evaluation(loss: loss, heldOutNLL: heldOutNLL, metric: metric)
    }

    /// Keeps the weights (the average's when on) and writes best.h5 when `metric` is the best
    /// so far; whether it was.
    func keepIfBest(_ metric: Double, epoch: Int) throws -> Bool {
        guard metric < bestValidMetric else { return false }
        bestValidMetric = metric
        bestEpoch = epoch
        bestParameters.copy(from: average?.values ?? model.params.values)
        try writeBest()
        return true
    }

    /// The metrics.jsonl line of `epoch` (with the latent R² every `latentEvery` epochs, on
    /// data with true latents). `state` is the epoch's own (its schedules).
    func epochRecord(_ epoch: Int, train: (loss: LossValues, gradNorm: Double), evaluation: Evaluation, improved: Bool,
                     seconds: Double, state: TrainerState) throws -> EpochRecord {
        var record = EpochRecord(
            epoch: epoch, step: step, trainLoss: train.loss.total, trainReconstruction: train.loss.reconstruction,
            trainKL: train.loss.kl, validLoss: evaluation.loss.total, validReconstruction: evaluation.loss.reconstruction,
            validKL: evaluation.loss.kl, validHeldOutNLL: evaluation.heldOutNLL, validMetric: evaluation.metric,
            learningRate: learningRate(atEpoch: epoch, state), klWeight: klWeight(atEpoch: epoch, state),
            weightDecay: weightDecay(atEpoch: epoch, state), gradNorm: train.gradNorm,
            trialsPerSecond: Double(trainingKeys.count) / seconds, seconds: seconds, best: improved)
        if let probe = latentProbe, config.train.latentEvery > 0, epoch == 0 || (epoch + 1) % config.train.latentEvery == 0 {
            let latent = try withAveragedWeights { try probe() }
            record.latentR2 = latent?.r2
            record.latentMotion = latent?.motion
        }
        return record
    }

    /// Moves the session to the next epoch, adds this epoch's wall time to the training time,
    /// and plans the epochs of the budget (`planBudget`); whether the budget is spent.
    func accountTime(_ session: inout Session) throws -> Bool {
        let now = Date(), state = session.state
        session.state = TrainerState(epoch: state.epoch + 1, batchCursor: 0, partial: EpochSums(),
                                     trainingSeconds: (state.trainingSeconds ?? 0) + now.timeIntervalSince(session.lastMark),
                                     plannedEpochs: state.plannedEpochs)
        session.lastMark = now
        if session.firstEpochEnd == nil { session.firstEpochEnd = now }
        return try planBudget(&session.state, sessionEpochs: session.state.epoch - session.firstEpoch,
                              secondsSinceFirstEpoch: now.timeIntervalSince(session.firstEpochEnd!))
    }

    /// The epoch's progress line, with the epochs planned and the ETA.
    func logEpoch(_ record: EpochRecord, session: Session, reduced: Bool, budgetReached: Bool) {
        let epoch = record.epoch, state = session.state
        var total = max(state.plannedEpochs ?? config.train.epochs, epoch + 1)
        let perEpoch = Date().timeIntervalSince(session.started) / Double(epoch + 1 - session.firstEpoch)
        let left = max(config.run.maxMinutes * 60 - (state.trainingSeconds ?? 0), 0)
        if config.run.maxMinutes > 0 && epoch + 1 >= total && epoch + 1 < config.train.epochs && !budgetReached {
            // Faster than planned (the plan is an estimate): count on from what is left.
            total = min(config.train.epochs, epoch + 1 + Int((left / perEpoch).rounded(.up)))
        }
        var eta = perEpoch * Double(max(total - epoch - 1, 0))
        if config.run.maxMinutes > 0 { eta = min(eta, left) }
        log(String(format: "epoch %4d/%d  train %.4f (rec %.4f kl %.3g)  valid %@ %.5f%@  lr %.2e%@  beta %.3f  %5.0f trials/s  ETA %@%@",
                   epoch + 1, total, record.trainLoss, record.trainReconstruction, record.trainKL,
                   "heldOut", record.validMetric,
                   record.best ? "*" : " ", record.learningRate, reduced ? "↓" : " ", record.klWeight,
                   record.trialsPerSecond, formatDuration(eta),
                   record.latentR2.map { String(format: "  latent R² [z,v] %.3f, z motion %.2f", $0, record.latentMotion ?? 0) } ?? ""))
    }

    /// Checkpoints every `checkpointEvery` epochs and at any end; true (with its reason logged)
    /// when early stopping or the budget ends training here.
    func checkpointAndDecide(_ session: inout Session, budgetReached: Bool) throws -> Bool {
        let epoch = session.state.epoch - 1
        let stopping = config.train.earlyStoppingPatience > 0 && epoch - bestEpoch >= config.train.earlyStoppingPatience
        if (epoch + 1) % config.run.checkpointEvery == 0 || epoch + 1 == config.train.epochs || stopping || budgetReached {
            try saveCheckpoint(session.state)
        }
        if stopping {
            log("early stopping: no better validation \("heldOut") for \(config.train.earlyStoppingPatience) epochs (best at epoch \(bestEpoch + 1))")
        } else if budgetReached {
            log("the budget of \(formatDuration(config.run.maxMinutes * 60)) is spent after \(epoch + 1) epochs (\(formatDuration(session.state.trainingSeconds ?? 0)) of training)")
        }
        return stopping || budgetReached
    }

    /// After the last epoch: the replicas agree, last.h5 holds the last weights, and the model
    /// and best.h5 the best ones.
    func finish(_ session: Session) throws {
        try verifyReplicasAgree()
        try writeLast()
        model.params.values.copy(from: bestParameters)
        try writeBest()
        log("best validation \("heldOut") \(String(format: "%.5f", bestValidMetric)) at epoch \(bestEpoch + 1); weights in \(run.best) (\(formatDuration(Date().timeIntervalSince(session.started))))")
    }

    /// Rank 0 writes last.h5 (the weights after the last step) atomically.
    func writeLast() throws {
        guard comm.isRoot else { return }
        try CheckpointIO.write(path: run.last, layout: model.params.layout, values: model.params.values, config: config.model, training: config.trainingJSON()) { file in
            try file.writeAttribute("step", int: Int64(self.step))
            try file.writeAttribute("epoch", int: Int64(self.history.count))
            try file.writeAttribute("world_size", int: Int64(self.comm.size))
        }
    }

    /// The error that ends a run whose loss, gradient or validation became non-finite (every rank
    /// calls it at the same step). Rank 0 first leaves the live weights in last.h5 when they are
    /// finite (at a non-finite gradient no update was applied, so they are the weights before
    /// the failing step), and says where the latent path of its last batch stood, which tells a
    /// diverging integrator from an optimiser that overshot.
    func nonFinite(epoch: Int, what: String, beforeUpdate: Bool = false) -> TrainingError {
        // Largest magnitude of a buffer; NaN or ∞ when any entry is.
        func largest(_ buffer: Buffer<Float>) -> Float {
            var m: Float = 0
            for i in 0..<buffer.count { let a = abs(buffer[i]); if !(a <= m) { m = a } }
            return m
        }
        let weight = largest(model.params.values)
        var kept = "no checkpoint of finite weights could be written"
        if comm.isRoot && weight.isFinite {
            do { try writeLast(); kept = "the live weights (finite\(beforeUpdate ? "; no update was applied, so they are those before this step" : ", the ones that gave it")) are in \(run.last)" } catch {
                kept = "writing \(run.last) failed (\(error))"
            }
        }
        let newest = checkpointPaths().first.map { "the newest resumable checkpoint is \($0)" } ?? "no resumable checkpoint was written yet"
        let best = bestEpoch >= 0 ? "; the best weights so far (epoch \(bestEpoch + 1)) are in \(run.best)" : ""
        // The path of this rank's last forward pass.
        let z = largest(model.dynamics.positions), v = largest(model.dynamics.velocities)
        let diverged = !(z.isFinite && v.isFinite) || max(z, v) > 1e15
        let diagnosis: String
        if !(weight <= 1e4) {
            diagnosis = String(format: "The weights reached |w| %.3g: the optimiser overshot; lower learningRate, or lower gradClip (now %@).", weight, "\(config.train.gradClip)")
        } else if diverged {
            diagnosis = String(format: "The latent path of the last batch reached |z| %.3g, |v| %.3g with bounded weights (|w| ≤ %.3g): the Langevin integrator diverged; lower dt or coupling (or raise mass or damping).", z, v, weight)
        } else {
            diagnosis = String(format: "The latent path of the last batch stayed bounded (|z| %.3g, |v| %.3g), so the optimiser overshot; lower learningRate, or lower gradClip (now %@).", z, v, "\(config.train.gradClip)")
        }
        return TrainingError("\(what) at epoch \(epoch + 1), step \(step); \(kept)\(best); \(newest). \(diagnosis) Then train again in a new run directory (a resumed run repeats the same step).")
    }

    /// Rank 0 writes best.h5 (the best weights so far) atomically.
    func writeBest() throws {
        guard comm.isRoot else { return }
        try CheckpointIO.write(path: run.best, layout: model.params.layout, values: bestParameters, config: config.model, training: config.trainingJSON()) { file in
            try file.writeAttribute("best_epoch", int: Int64(self.bestEpoch))
            try file.writeAttribute("best_valid_metric", double: self.bestValidMetric)
            try file.writeAttribute("valid_metric", string: "heldOut")
            try file.writeAttribute("step", int: Int64(self.step))
        }
    }

    /// Continues one pass over the epoch's seeded permutation from `state.batchCursor`. At a
    /// preemption request (agreed over ranks at every step boundary) it checkpoints `state` and
    /// throws `Preempted`.
    func runEpoch(_ epoch: Int, from state: inout TrainerState) throws -> (loss: LossValues, gradNorm: Double) {
        let order = seededPermutation(trainingKeys.count, seed: config.model.seed, purpose: .shuffle, key: epoch).map { trainingKeys[$0] }
        let klWeight = klWeight(atEpoch: epoch, state), weightDecay = weightDecay(atEpoch: epoch, state)
        // Local shares of the global sums; only rank 0 carries the sums restored from a checkpoint.
        var sums = comm.isRoot ? state.partial : EpochSums(observed: state.partial.observed, trials: state.partial.trials,
                                                           normSum: state.partial.normSum, batches: state.partial.batches)
        let starts = Array(stride(from: 0, to: order.count, by: config.train.batchSize))
        for (index, start) in starts.enumerated() where index >= state.batchCursor {
            let stepStarted = Date()
            var localLossFinite = true
            let global = Array(order[start..<min(start + config.train.batchSize, order.count)])
            let local = comm.share(global)
            let norm = LossNormalisation(observedEntries: observedEntries(global), trials: global.count)
            if !local.isEmpty { batch.load(trainingKeys: local, from: tensors) }
            let noise = NoiseContext(stochastic: true, seed: config.model.seed, epoch: epoch, step: step, trialIndices: local)
            let (loss, gradNorm) = try optimiserStep.take(local.isEmpty ? nil : batch, noise: noise, klWeight: klWeight, normalisation: norm,
                                                          learningRate: learningRate(atEpoch: epoch, state), weightDecay: weightDecay, step: step)
            if let loss {
                localLossFinite = loss.total.isFinite
                sums.reconstruction += loss.reconstruction * Double(norm.observedEntries)
                sums.kl += loss.kl * Double(norm.trials)
            }
            // Every rank sees the same summed gradient, so a NaN stops every rank at this step,
            // before the update.
            guard gradNorm.isFinite else {
                throw nonFinite(epoch: epoch, what: "the gradient became non-finite (norm \(gradNorm))", beforeUpdate: true)
            }
            step += 1
            sums.normSum += gradNorm
            sums.batches += 1
            sums.observed += norm.observedEntries
            sums.trials += norm.trials
            noteStepSeconds(Date().timeIntervalSince(stepStarted))
            let agreed = try stepAgreement(lossFinite: localLossFinite)
            // A loss that overflowed while its gradient stayed finite (the update was applied).
            if agreed.nonFinite { throw nonFinite(epoch: epoch, what: "the training loss became non-finite") }
            if agreed.preempted {
                var partial = sums
                let totals = try comm.sum([sums.reconstruction, sums.kl])
                partial.reconstruction = totals[0]
                partial.kl = totals[1]
                state = TrainerState(epoch: epoch, batchCursor: index + 1, partial: partial,
                                     trainingSeconds: state.trainingSeconds, plannedEpochs: state.plannedEpochs)
                let path = try saveCheckpoint(state)
                log("preempted at epoch \(epoch + 1), step \(step): checkpoint \(path). Run the same command again to resume.")
                throw Preempted(checkpoint: path)
            }
        }
        let reduced = try comm.sum([sums.reconstruction, sums.kl])
        let reconstruction = reduced[0] / Double(max(sums.observed, 1)), kl = reduced[1] / Double(max(sums.trials, 1))
        return (LossValues(reconstruction: reconstruction, kl: kl, total: reconstruction + klWeight * kl,
                           observedEntries: sums.observed, trials: sums.trials), sums.normSum / Double(max(sums.batches, 1)))
    }

    /// Runs `body` with the weight average in the model (when `weightAverage` is on), then
    /// puts the live weights back.
    func withAveragedWeights<T>(_ body: () throws -> T) rethrows -> T {
        guard let average, let liveParameters else { return try body() }
        liveParameters.copy(from: model.params.values)
        model.params.values.copy(from: average.values)
        defer { model.params.values.copy(from: liveParameters) }
        return try body()
    }

    /// The validation loss in deterministic mode, with the final KL weight so that the
    /// monitored objective does not drift with the warm-up, and the Poisson NLL per entry of
    /// the held-out neurons and forward bins.
    public func validate() throws -> (loss: LossValues, heldOutNLL: Double) {
        guard !split.validation.isEmpty else {
            return (LossValues(reconstruction: 0, kl: 0, total: 0, observedEntries: 0, trials: 0), 0)
        }
        var recon = 0.0, kl = 0.0, observed = 0, trials = 0
        var heldOutSum = 0.0, heldOutCount = 0
        let mine = comm.share(split.validation)
        for start in stride(from: 0, to: mine.count, by: config.train.batchSize) {
            let chunk = Array(mine[start..<min(start + config.train.batchSize, mine.count)])
            batch.load(trials: chunk, split: .train, from: tensors)
            let loss = model.forward(batch, noise: .deterministic(batch: chunk.count), klWeight: config.model.klWeight)
            model.addHeldOutNLL(batch, to: &heldOutSum, count: &heldOutCount)
            recon += loss.reconstruction * Double(loss.observedEntries)
            kl += loss.kl * Double(loss.trials)
            observed += loss.observedEntries
            trials += loss.trials
        }
        let totals = try comm.sum([recon, kl, Double(observed), Double(trials), heldOutSum, Double(heldOutCount)])
        recon = totals[0]; kl = totals[1]; observed = Int(totals[2]); trials = Int(totals[3])
        heldOutSum = totals[4]; heldOutCount = Int(totals[5])
        let r = recon / Double(max(observed, 1)), k = kl / Double(max(trials, 1))
        return (LossValues(reconstruction: r, kl: k, total: r + config.model.klWeight * k, observedEntries: observed, trials: trials),
                heldOutSum / Double(max(heldOutCount, 1)))
    }
}
