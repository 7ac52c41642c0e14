import Foundation
import Support

/// How a model is trained: the optimiser, the schedules (KL and weight-decay warm-ups, the
/// plateau scheduler, early stopping), regularisation outside the forward (clipping, the weight
/// average) and the use of the data (batch, epochs, validation split, eval trials). Stored in a
/// checkpoint's `training` attribute, beside the model's `config`.
public struct TrainConfig: Equatable, Sendable {
    public enum EvalTrials: String, CaseIterable, Sendable { case ignore, heldIn }

    public var klWarmupEpochs = 500
    public var learningRate = 3e-3
    public var adamBeta1 = 0.9
    public var adamBeta2 = 0.999
    public var adamEps = 1e-8
    public var weightDecay = 2e-5
    public var weightDecayWarmupEpochs = 500
    public var gradClip = 200.0
    public var weightAverage = 0.0
    public var lrFactor = 0.95
    public var lrPatience = 10
    public var minLearningRate = 1e-5
    public var batchSize = 256
    public var epochs = 2000
    public var validationFraction = 0.2
    public var evalTrials = EvalTrials.ignore
    public var earlyStoppingPatience = 0
    public var latentEvery = 10
    /// -1: the validation split follows `seed`.
    public var splitSeed = -1

    public init() {}
}

/// How the job runs, not what it learns: checkpoint cadence and retention, the ensemble's size,
/// the collective watchdog and the wall-clock budget. Stored with `TrainConfig`.
public struct RunOptions: Equatable, Sendable {
    public var checkpointEvery = 1
    public var keepCheckpoints = 3
    /// Models `train` trains one after another and averages (1: one model, the spec).
    public var ensemble = 1
    public var collectiveTimeoutSeconds = 60.0
    public var maxMinutes = 0.0
    public enum Overlap: String, CaseIterable, Sendable { case auto, on, off }
    /// Reduce the gradients layer group by layer group on a communication thread while the
    /// backward goes on (GradientReduction); the same bits either way. auto: when the ranks
    /// span more than one host (`TrainingStep.overlaps`).
    public var overlapAllreduce = Overlap.auto

    public init() {}
}

extension TrainConfig {
    public static let fields: [ConfigField<TrainConfig>] = [
        .int("klWarmupEpochs", \.klWarmupEpochs, ">= 0", "beta(epoch) = klWeight·min(epoch/klWarmupEpochs, 1); 0 = no warm-up."),
        .real("learningRate", \.learningRate, "> 0", "Adam learning rate at the start."),
        .real("adamBeta1", \.adamBeta1, "[0, 1)", "Adam beta1."),
        .real("adamBeta2", \.adamBeta2, "[0, 1)", "Adam beta2."),
        .real("adamEps", \.adamEps, "> 0", "Adam epsilon."),
        .real("weightDecay", \.weightDecay, ">= 0", "Final coupled L2 weight decay (added to the gradient, as torch.optim.Adam does)."),
        .int("weightDecayWarmupEpochs", \.weightDecayWarmupEpochs, ">= 0", "Weight decay ramps linearly from 0 over this many epochs; 0 = no ramp."),
        .real("gradClip", \.gradClip, ">= 0", "Global gradient-norm clip; 0 disables clipping."),
        .real("weightAverage", \.weightAverage, "[0, 1)", "Decay of an exponential moving average of the weights, updated after every step (0 = off, the spec). When on, validation, the best weights, best.h5 and prediction use the average; training continues from the live weights. The decay is min(weightAverage, (1+t)/(10+t)) at step t, so the average forgets the initial weights early. 0.999 averages over about the last 1,000 steps."),
        .real("lrFactor", \.lrFactor, "(0, 1)", "ReduceLROnPlateau factor on the validation loss."),
        .int("lrPatience", \.lrPatience, ">= 0", "ReduceLROnPlateau patience, in epochs."),
        .real("minLearningRate", \.minLearningRate, ">= 0", "ReduceLROnPlateau lower bound on the learning rate."),
        .int("batchSize", \.batchSize, "> 0", "Global batch size in trials (the same at any world size)."),
        .int("epochs", \.epochs, "> 0", "Training epochs."),
        .real("validationFraction", \.validationFraction, "[0, 1)", "Fraction of the training trials held out (seeded) for validation, model selection and the end-of-training metrics."),
        .choice("evalTrials", \.evalTrials, "ignore: train on the training trials only (spec); heldIn: also reconstruct the eval trials' held-in spikes, the input the model is given for them at prediction anyway (semi-supervised, transductive). Their held-out neurons and forward bins are never read, even when the file has them ('val' phase); validation, model selection and the scores are unchanged."),
        .int("earlyStoppingPatience", \.earlyStoppingPatience, ">= 0", "Stop after this many epochs without a better validation loss; 0 = never stop early."),
        .int("latentEvery", \.latentEvery, ">= 0", "On data with true latents (synth's, or --truth): every this many epochs (and after the first), fit linear maps of the validation trials' mean-path [z, v] to the true latents and log its R² (latentR2) and the within-trial share of z's variance (latentMotion) in metrics.jsonl, for the report's curve; 0 = only at the end. Costs one forward pass over up to 512 trials."),
        .int("splitSeed", \.splitSeed, ">= -1", "Seed of the validation split: -1 = seed's (spec); >= 0 = this one, so runs with different seeds (PBT's members, a seed ensemble) validate on the same trials and their metrics compare."),
    ]

    var problems: [String] {
        var problems: [String] = []
        func need(_ ok: Bool, _ message: String) { if !ok { problems.append(message) } }
        need(klWarmupEpochs >= 0, "klWarmupEpochs must be >= 0 (got \(klWarmupEpochs))")
        need(learningRate > 0, "learningRate must be > 0 (got \(learningRate))")
        need(adamBeta1 >= 0 && adamBeta1 < 1, "adamBeta1 must be in [0, 1) (got \(adamBeta1))")
        need(adamBeta2 >= 0 && adamBeta2 < 1, "adamBeta2 must be in [0, 1) (got \(adamBeta2))")
        need(adamEps > 0, "adamEps must be > 0 (got \(adamEps))")
        need(weightDecay >= 0, "weightDecay must be >= 0 (got \(weightDecay))")
        need(weightDecayWarmupEpochs >= 0, "weightDecayWarmupEpochs must be >= 0 (got \(weightDecayWarmupEpochs))")
        need(gradClip >= 0, "gradClip must be >= 0 (got \(gradClip)); 0 disables clipping")
        need(weightAverage >= 0 && weightAverage < 1, "weightAverage must be in [0, 1) (got \(weightAverage)); 0 turns the weight average off")
        need(lrFactor > 0 && lrFactor < 1, "lrFactor must be in (0, 1) (got \(lrFactor))")
        need(lrPatience >= 0, "lrPatience must be >= 0 (got \(lrPatience))")
        need(minLearningRate >= 0, "minLearningRate must be >= 0 (got \(minLearningRate))")
        need(batchSize > 0, "batchSize must be > 0 (got \(batchSize))")
        need(epochs > 0, "epochs must be > 0 (got \(epochs))")
        need(validationFraction >= 0 && validationFraction < 1, "validationFraction must be in [0, 1) (got \(validationFraction))")
        need(earlyStoppingPatience >= 0, "earlyStoppingPatience must be >= 0 (got \(earlyStoppingPatience)); 0 = off")
        need(splitSeed >= -1, "splitSeed must be -1 (follow seed) or >= 0 (got \(splitSeed))")
        need(latentEvery >= 0, "latentEvery must be >= 0 (got \(latentEvery)); 0 = only at the end")
        return problems
    }
}

extension RunOptions {
    public static let fields: [ConfigField<RunOptions>] = [
        .int("checkpointEvery", \.checkpointEvery, ">= 1", "Write a resumable checkpoint every this many epochs (and at preemption)."),
        .int("keepCheckpoints", \.keepCheckpoints, ">= 1", "Resumable checkpoints kept in the run directory (the newest ones); best.h5 is kept besides."),
        .int("ensemble", \.ensemble, "1...16", "Models `train` trains one after another, in member-1, member-2, … of the run directory: seeds seed, seed+1, … (with splitSeed -1 each validates on its own split, so together they learn from every training trial). Under maxMinutes each member gets an equal share of what the members before it left. The submission holds the mean of their rates. 1 = one model (the spec). Measured on small data in docs/small-data.md."),
        .real("collectiveTimeoutSeconds", \.collectiveTimeoutSeconds, ">= 0", "Collective watchdog: a rank that waits longer than this (or 10 times the slowest training step so far, whichever is longer) for the other ranks in a collective prints which collective, step and checkpoint, and exits with status 69 (a lost rank, host or link; requeue and resume). After SIGTERM/SIGUSR1 it waits at most 10 s more. 0 disables it (blocking collectives)."),
        .choice("overlapAllreduce", \.overlapAllreduce, "auto: on when the ranks run on more than one host, off on one (there the sum is a shared-memory copy of well under a millisecond, and the communication thread's polling cost the main job 10-12% on 2 cores); on: sum the gradients over ranks layer group by layer group (readout, decoder, dynamics, encoder) on a communication thread while the backward still computes the groups before them, hiding communication behind computation (docs/performance.md, \"Past one node\"); off: all at once after the backward. Every element is summed in rank order either way, so the two give the same bits. Needs MPI_THREAD_SERIALIZED when on."),
        .real("maxMinutes", \.maxMinutes, ">= 0", "Wall-clock budget of the training, in minutes, counted across resumes (0 = none). Checked at each epoch end by rank 0 for every rank; the run then ends as if epochs were reached. After 5 epochs the epochs that fit are planned, and the warm-ups (klWarmupEpochs, weightDecayWarmupEpochs) shrink by planned/epochs."),
    ]

    var problems: [String] {
        var problems: [String] = []
        func need(_ ok: Bool, _ message: String) { if !ok { problems.append(message) } }
        need((1...16).contains(ensemble), "ensemble must be 1 (one model) to 16 (got \(ensemble))")
        need(checkpointEvery >= 1, "checkpointEvery must be >= 1 (got \(checkpointEvery))")
        need(keepCheckpoints >= 1, "keepCheckpoints must be >= 1 (got \(keepCheckpoints))")
        need(maxMinutes >= 0, "maxMinutes must be >= 0 (got \(maxMinutes)); 0 = no budget")
        need(collectiveTimeoutSeconds >= 0, "collectiveTimeoutSeconds must be >= 0 (got \(collectiveTimeoutSeconds)); 0 disables the watchdog")
        return problems
    }
}
