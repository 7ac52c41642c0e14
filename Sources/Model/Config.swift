import Foundation
import Kernels
import Support

/// Every setting of a run, flat. One table (`Config.fields`) names, documents, parses and
/// prints each field, so config files, `--set key=value`, the checkpoint's `config` attribute
/// and `Configs/README.md` can never disagree.
///
/// Defaults are the spec's (`shared/spec/model.md`), i.e. the released code's MC_Maze settings.
public struct Config: Equatable, Sendable {
    public enum EncoderInput: String, CaseIterable, Sendable { case current, lagged }
    public enum Encoder: String, CaseIterable, Sendable { case forward, bidirectional }
    public enum Potential: String, CaseIterable, Sendable { case allPairs, diagonal }
    public enum Dynamics: String, CaseIterable, Sendable { case secondOrder, firstOrder }
    public enum Decoder: String, CaseIterable, Sendable { case transformer, linear }
    public enum DecoderInput: String, CaseIterable, Sendable { case zvh, zv }
    public enum KLScale: String, CaseIterable, Sendable { case perTrial, perEntry }
    public enum EvalTrials: String, CaseIterable, Sendable { case ignore, heldIn }
    public enum PositionalEncoding: String, CaseIterable, Sendable { case none, sinusoidal }
    /// Where coordinated dropout lets the held-in reconstruction teach: `droppedAndSampled` (the
    /// spec's; it was called `spec`, which old configs still say) or `dropped`.
    public enum CDGradient: String, CaseIterable, Sendable { case droppedAndSampled, dropped }
    public enum Posterior: String, CaseIterable, Sendable { case initial, perStep }
    public enum PotentialInput: String, CaseIterable, Sendable { case none, spikes }

    // Architecture
    public var hidden = 280
    public var groups = 4
    public var kernelSize = 3
    public var heads = 2
    public var feedForward = 512
    public var encoderInput = EncoderInput.current
    public var encoder = Encoder.forward
    public var potential = Potential.allPairs
    public var potentialInput = PotentialInput.none
    public var posterior = Posterior.initial
    public var dynamics = Dynamics.secondOrder
    public var decoder = Decoder.transformer
    public var decoderInput = DecoderInput.zvh
    public var positionalEncoding = PositionalEncoding.none
    /// Width of a linear bottleneck between the decoder and the readout (0 = none, the spec).
    public var factors = 0
    // Physics
    public var dt = 0.01
    public var mass = 1.0
    public var damping = 0.55
    public var temperature = 1.0
    public var coupling = 1.0
    public var velocityPriorVar = 0.1
    // Regularisation
    public var cdKeep = 0.5
    public var cdGradient = CDGradient.droppedAndSampled
    public var dropout = 0.1
    public var decoderDropout = 0.1
    public var klWeight = 0.1
    public var klScale = KLScale.perTrial
    public var klWarmupEpochs = 500
    // Optimisation
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
    // Training and prediction
    public var batchSize = 256
    public var epochs = 2000
    public var validationFraction = 0.2
    public var evalTrials = EvalTrials.ignore
    public var earlyStoppingPatience = 0
    public var predictionSamples = 50
    public var checkpointEvery = 1
    public var latentEvery = 10
    public var keepCheckpoints = 3
    public var seed = 0
    /// -1: the validation split follows `seed`.
    public var splitSeed = -1
    /// Models `train` trains one after another and averages (1: one model, the spec).
    public var ensemble = 1
    /// The seed the validation split is drawn from.
    public var validationSplitSeed: Int { splitSeed >= 0 ? splitSeed : seed }
    // The job
    public var collectiveTimeoutSeconds = 60.0
    public var maxMinutes = 0.0
    public var precision = Precision.float32

    public init() {}

    /// Width of the decoder input S_t: [z, v, h] = 3H ([z, h] = 2H without velocity); without
    /// h (`decoderInput: zv`) one H less.
    public var decoderWidth: Int { decoderParts * hidden }
    /// How many H-wide parts S_t has: z, v (second order), h (unless `decoderInput: zv`).
    public var decoderParts: Int { 1 + (dynamics == .secondOrder ? 1 : 0) + (decoderInput == .zvh ? 1 : 0) }
    /// Length of one potential group, L = H / G.
    public var groupLength: Int { hidden / groups }
}

/// A config problem, phrased for the person who has to fix it.
public enum ConfigFailure {}
public typealias ConfigError = Failure<ConfigFailure>

/// One row of the field table.
public struct ConfigField: Sendable {
    public let name: String
    public let doc: String
    /// The accepted values, for `--help` and the README (e.g. "current | lagged", "> 0").
    public let domain: String
    public let get: @Sendable (Config) -> String
    public let set: @Sendable (inout Config, String) throws -> Void
    /// The value as JSON (number or string), for the checkpoint's `config` attribute.
    public let json: @Sendable (Config) -> Any
    /// "int", "real" or "choice": how the value is parsed (`lflow-dist config --fields --json`).
    public var kind = "real"
    /// A choice field's values, in order.
    public var choices: [String] = []
    /// A choice field's old value names, read as the new ones.
    public var aliases: [String: String] = [:]

    static func int(_ name: String, _ key: WritableKeyPath<Config, Int> & Sendable, _ domain: String, _ doc: String) -> ConfigField {
        ConfigField(
            name: name, doc: doc, domain: domain, get: { String($0[keyPath: key]) },
            set: { config, text in
                guard let v = Int(text.trimmingCharacters(in: .whitespaces)) else {
                    throw ConfigError("\(name) must be an integer, got '\(text)'")
                }
                config[keyPath: key] = v
            },
            json: { $0[keyPath: key] }, kind: "int")
    }

    static func real(_ name: String, _ key: WritableKeyPath<Config, Double> & Sendable, _ domain: String, _ doc: String) -> ConfigField {
        ConfigField(
            name: name, doc: doc, domain: domain, get: { formatReal($0[keyPath: key]) },
            set: { config, text in
                guard let v = Double(text.trimmingCharacters(in: .whitespaces)), v.isFinite else {
                    throw ConfigError("\(name) must be a finite number, got '\(text)'")
                }
                config[keyPath: key] = v
            },
            json: { $0[keyPath: key] })
    }

    /// `aliases`: old names of values, still read (config files and checkpoints of earlier
    /// versions), never written.
    static func choice<E: RawRepresentable & CaseIterable & Sendable>(
        _ name: String, _ key: WritableKeyPath<Config, E> & Sendable, _ doc: String, aliases: [String: String] = [:]
    ) -> ConfigField where E.RawValue == String {
        let options = E.allCases.map(\.rawValue)
        return ConfigField(
            name: name, doc: doc, domain: options.joined(separator: " | "), get: { $0[keyPath: key].rawValue },
            set: { config, text in
                let given = text.trimmingCharacters(in: .whitespaces)
                guard let v = E(rawValue: aliases[given] ?? given) else {
                    throw ConfigError("\(name) must be one of \(options.joined(separator: ", ")), got '\(text)'")
                }
                config[keyPath: key] = v
            },
            json: { $0[keyPath: key].rawValue }, kind: "choice", choices: options, aliases: aliases)
    }
}

/// Shortest text that parses back to the same Double.
func formatReal(_ v: Double) -> String { "\(v)" }

extension Config {
    /// The field table: the single source of truth for names, docs and parsing.
    public static let fields: [ConfigField] = [
        .int("hidden", \.hidden, "> 0, divisible by groups", "H: GRU width, and the size of z and of v."),
        .int("groups", \.groups, "> 0", "G: channels of the coupled-oscillator potential; L = H/G."),
        .int("kernelSize", \.kernelSize, "odd, > 0", "K: taps of the potential's conv1d kernel (zero padding K/2)."),
        .int("heads", \.heads, "> 0, divides the decoder width", "Attention heads of the Transformer decoder."),
        .int("feedForward", \.feedForward, "> 0", "Fff: feed-forward width of the Transformer decoder."),
        .choice("encoderInput", \.encoderInput, "GRU input at step t: current = x[min(t,T-1)] (paper, Algorithm 1); lagged = x[min(t-1,T-1)] (released code)."),
        .choice("encoder", \.encoder, "forward: one GRU from the first step to the last (spec); bidirectional: a second GRU (encoder_reverse.*, the same shapes) runs from the last step to the first, reading the bin after t with lagged input (x[t] with current; nothing past the window), and h_t is the sum of the two states, so every width stays the same and h_0, which the initial posterior reads, has seen the whole trial; with lagged input neither direction has seen x[t] at a step t ≥ 1."),
        .choice("potential", \.potential, "allPairs: U = k·Σ_i Σ_j <V_i, Z_j> (released code); diagonal: U = k·Σ_i <V_i, Z_i> (paper's zᵀWz)."),
        .choice("potentialInput", \.potentialInput, "none: U(z) alone (spec); spikes: the paper's input-dependent potential U(z, x_t) = U(z) + φ(x_t)·z, so the force at Langevin step t gains φ(x_t), a map of the spikes the encoder reads at step t (the same bin, by encoderInput, after coordinated dropout): φ = KernelNormalizedLinear(Nin→H) → ReLU → KernelNormalizedLinear(H→H) (each weight row scaled to unit norm, as the released code's commented layer_x; parameters potential.layer_x.0.* and potential.layer_x.2.*)."),
        .choice("posterior", \.posterior, "initial: the posterior sets z_0 and v_0 only, and every later step adds Langevin noise no data informs (spec); perStep: the encoder state h_t also infers each step's innovation, an input u_t entering v_t (z_t in first order) in place of the Langevin noise, v_t = μ_t + s·u_t with s² = 2·damping·temperature (2·temperature·dt in first order) and q(u_t | h_t) = N(a_t, b_t²) from two Linear(H→H) heads (linear_u_means, linear_u_logvar; LFADS's controller output, Pandarinath et al. 2018). The transition KL is then KL(q(v_t | ·) ‖ p(v_t | ·)) = KL(N(a_t, b_t²) ‖ N(0, 1)) per step: what the data adds to the Langevin prior, zero where the posterior follows the physics (velocityPriorVar is not used). Needs Langevin noise: damping > 0 (second order) and temperature > 0."),
        .choice("dynamics", \.dynamics, "secondOrder: underdamped Langevin in (z, v); firstOrder: overdamped, no velocity (ablation)."),
        .choice("decoder", \.decoder, "transformer: one post-norm Transformer encoder layer; linear: readout straight from S_t (ablation)."),
        .choice("decoderInput", \.decoderInput, "What the decoder reads: zvh = S_t = [z_t, v_t, h_t] (spec); zv = [z_t, v_t] only, without the encoder state, so every rate must come through the Langevin latents (ablation)."),
        .choice("positionalEncoding", \.positionalEncoding, "none: the Transformer sees S_t without its step (spec); sinusoidal: the fixed sin/cos encoding of the step t (Vaswani et al. 2017) is added to S_t before the Transformer, so attention can weigh steps by where they are (no parameters; needs decoder: transformer)."),
        .int("factors", \.factors, "0 (none) or 1 to the decoder width", "Rank of the readout: 0 = Linear(D→Nout) straight from the decoder (spec); F > 0 puts a linear map D→F without bias (factors.weight [F, D]) before it (readout.weight [Nout, F]), so every neuron's log-rate, held-in and held-out, is a mix of the same F factors (LFADS's factors)."),
        .real("dt", \.dt, "> 0", "Langevin time step."),
        .real("mass", \.mass, "> 0", "Mass m in v' = v - dt·f(z)/m."),
        .real("damping", \.damping, "[0, 1)", "Damping g: mu_t = (1-g)·v', noise variance 2·g·temperature."),
        .real("temperature", \.temperature, ">= 0", "Temperature of the Langevin noise."),
        .real("coupling", \.coupling, "any", "Coupling strength k of the potential."),
        .real("velocityPriorVar", \.velocityPriorVar, "> 0", "Variance of the N(0, s²) prior in the transition KL of posterior: initial. Not used with posterior: perStep, whose transition KL is the innovation's against N(0, 1)."),
        .real("cdKeep", \.cdKeep, "(0, 1]", "Coordinated dropout keep probability p (1 disables coordinated dropout)."),
        .choice("cdGradient", \.cdGradient, "Where the held-in reconstruction is learned under coordinated dropout: droppedAndSampled = where the entry was dropped, and where it was kept but sampled to pass (pass ~ Bernoulli(1-p)), so the encoder also learns from entries it saw (the spec's; old configs call it spec); dropped = only where the entry was dropped from the input (LFADS's coordinated dropout, Keshtkaran and Pandarinath 2019), so no gradient ever teaches a rate to copy its own input spike.", aliases: ["spec": "droppedAndSampled"]),
        .real("dropout", \.dropout, "[0, 1)", "Dropout rate on every GRU hidden state."),
        .real("decoderDropout", \.decoderDropout, "[0, 1)", "Dropout rate inside the Transformer layer (attention weights, attention output, feed-forward)."),
        .real("klWeight", \.klWeight, ">= 0", "Final KL weight beta."),
        .choice("klScale", \.klScale, "perTrial: the KL summed over dimensions and steps, per trial (spec), against a reconstruction averaged per entry, so the KL weighs (T+F)·N times more; perEntry: the KL also divided by the entries of a trial, (T+F)·N, so both terms are per entry."),
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
        .int("predictionSamples", \.predictionSamples, ">= 0", "Stochastic passes averaged in log-rate space for prediction; 0 = one deterministic mean-path pass."),
        .int("latentEvery", \.latentEvery, ">= 0", "On data with true latents (synth's, or --truth): every this many epochs (and after the first), fit linear maps of the validation trials' mean-path [z, v] to the true latents and log its R² (latentR2) and the within-trial share of z's variance (latentMotion) in metrics.jsonl, for the report's curve; 0 = only at the end. Costs one forward pass over up to 512 trials."),
        .int("checkpointEvery", \.checkpointEvery, ">= 1", "Write a resumable checkpoint every this many epochs (and at preemption)."),
        .int("keepCheckpoints", \.keepCheckpoints, ">= 1", "Resumable checkpoints kept in the run directory (the newest ones); best.h5 is kept besides."),
        .int("seed", \.seed, ">= 0", "Seed of every random draw (initialisation, dropout, noise, shuffling)."),
        .int("splitSeed", \.splitSeed, ">= -1", "Seed of the validation split: -1 = seed's (spec); >= 0 = this one, so runs with different seeds (PBT's members, a seed ensemble) validate on the same trials and their metrics compare."),
        .int("ensemble", \.ensemble, "1...16", "Models `train` trains one after another, in member-1, member-2, … of the run directory: seeds seed, seed+1, … (with splitSeed -1 each validates on its own split, so together they learn from every training trial). Under maxMinutes each member gets an equal share of what the members before it left. The submission holds the mean of their rates. 1 = one model (the spec). Measured on small data in docs/small-data.md."),
        .real("collectiveTimeoutSeconds", \.collectiveTimeoutSeconds, ">= 0", "Collective watchdog: a rank that waits longer than this (or 10 times the slowest training step so far, whichever is longer) for the other ranks in a collective prints which collective, step and checkpoint, and exits with status 69 (a lost rank, host or link; requeue and resume). After SIGTERM/SIGUSR1 it waits at most 10 s more. 0 disables it (blocking collectives)."),
        .real("maxMinutes", \.maxMinutes, ">= 0", "Wall-clock budget of the training, in minutes, counted across resumes (0 = none). Checked at each epoch end by rank 0 for every rank; the run then ends as if epochs were reached. After 5 epochs the epochs that fit are planned, and the warm-ups (klWarmupEpochs, weightDecayWarmupEpochs) shrink by planned/epochs."),
        .choice("precision", \.precision, "Operands of the large matrix products (GRU input projection, attention projections, the attention's score and context products, feed-forward, readout, their backward products, and the GRU recurrent weight gradient): float32, or bf16 (bfloat16 operands, float32 accumulation; parameters, gradients, Adam, the allreduce, the loss, the Langevin steps and checkpoints stay float32). bf16 runs on AVX512-BF16 where the CPU has it; elsewhere the same bf16 rounding is emulated (float32 kernels on bf16-rounded operands: the same arithmetic, slower than float32) with a warning."),
    ]

    /// Fields that manage a run rather than shape its trajectory: a resumed run may change them
    /// (more epochs, another checkpoint cadence, a longer watchdog).
    public static let runManagementFields: Set<String> = [
        "epochs", "checkpointEvery", "latentEvery", "keepCheckpoints", "earlyStoppingPatience", "predictionSamples",
        "collectiveTimeoutSeconds", "maxMinutes",
    ]

    public static func field(named name: String) -> ConfigField? { fields.first { $0.name == name } }

    /// Options measured and not adopted, retired. A config file or a checkpoint of an earlier
    /// version that sets one to the value every run now has still loads; any other value is
    /// refused with what replaced it.
    public static let retired: [(name: String, kept: String, why: String)] = [
        ("decoderLayers", "1", "decoderLayers was retired: a second Transformer layer tied the spec's one on MC_Maze-shaped data and lost on MC_RTT-shaped data in the same 12 minutes (0.3375 against 0.3382 co-bps, docs/quality.md). The decoder has one layer; remove the key (a checkpoint with more layers cannot be loaded by this version)"),
        ("lrSchedule", "plateau", "lrSchedule was retired: the cosine schedule reached 0.3174 co-bps against the plateau schedule's 0.3178 in the same 12 minutes (docs/quality.md), and a search cannot continue it in steps. The learning rate follows the plateau schedule (lrFactor, lrPatience, minLearningRate); remove the key"),
        ("validationMetric", "heldOut", "validationMetric was retired: selecting on the validation loss tied the held-out NLL (0.3196 against 0.3194 co-bps, docs/quality.md) while its KL, summed per trial, swamps the reconstruction it should judge. Model selection, the plateau schedule and early stopping use the held-out NLL; remove the key"),
    ]

    /// Sets one field from its text form, as `--set key=value` and config files do.
    /// `source` names where the pair came from, for the error message.
    public mutating func set(_ key: String, _ value: String, source: String = "--set") throws {
        if let retired = Config.retired.first(where: { $0.name == key }) {
            let given = value.trimmingCharacters(in: .whitespaces)
            guard given == retired.kept || Double(given).map({ Double(retired.kept) == $0 }) == true else {
                throw ConfigError("\(source): \(key) \(given): \(retired.why).")
            }
            return
        }
        guard let field = Config.field(named: key) else {
            let close = Config.fields.map(\.name).filter { editDistance($0.lowercased(), key.lowercased()) <= 2 }
            let hint = close.isEmpty ? "" : " Did you mean \(close.joined(separator: " or "))?"
            throw ConfigError("\(source): unknown config key '\(key)'.\(hint) Run `lflow-dist help config` or see Configs/README.md for every key.")
        }
        do { try field.set(&self, value) } catch let error as ConfigError {
            throw ConfigError("\(source): \(error.message)")
        }
    }

    /// Applies `key=value` overrides, in order.
    public mutating func apply(overrides: [String]) throws {
        for item in overrides {
            guard let eq = item.firstIndex(of: "="), eq != item.startIndex else {
                throw ConfigError("--set expects key=value, got '\(item)'. Example: --set hidden=64")
            }
            try set(String(item[..<eq]), String(item[item.index(after: eq)...]), source: "--set \(item)")
        }
    }

    /// Every problem that would make the model impossible, in one message.
    public func validate() throws {
        var problems: [String] = []
        func need(_ ok: Bool, _ message: String) { if !ok { problems.append(message) } }
        need(hidden > 0, "hidden must be > 0 (got \(hidden))")
        need(groups > 0, "groups must be > 0 (got \(groups))")
        if hidden > 0 && groups > 0 {
            need(hidden % groups == 0, "hidden (\(hidden)) must be divisible by groups (\(groups)); try hidden=\(max(groups, hidden / groups * groups))")
        }
        need(kernelSize > 0 && kernelSize % 2 == 1, "kernelSize must be odd and > 0 (got \(kernelSize))")
        need(heads > 0, "heads must be > 0 (got \(heads))")
        if heads > 0 && hidden > 0 && decoder == .transformer {
            need(decoderWidth % heads == 0, "decoder width \(decoderWidth) (= \(decoderParts)·hidden) must be divisible by heads (\(heads))")
        }
        need(feedForward > 0, "feedForward must be > 0 (got \(feedForward))")
        need(factors >= 0 && factors <= decoderWidth,
             "factors must be 0 (no bottleneck) or 1 to the decoder width \(decoderWidth) (got \(factors))")
        need(positionalEncoding == .none || decoder == .transformer,
             "positionalEncoding \(positionalEncoding.rawValue) needs decoder: transformer (the linear decoder reads each step alone); set positionalEncoding=none")
        need(dt > 0, "dt must be > 0 (got \(dt))")
        need(mass > 0, "mass must be > 0 (got \(mass)); it divides the force")
        need(damping >= 0 && damping < 1, "damping must be in [0, 1) (got \(damping))")
        need(temperature >= 0, "temperature must be >= 0 (got \(temperature))")
        if posterior == .perStep {
            need(temperature > 0 && (dynamics == .firstOrder || damping > 0),
                 "posterior perStep needs Langevin noise, the prior of each step's innovation: temperature > 0" + (dynamics == .secondOrder ? " and damping > 0" : "") + " (got temperature \(temperature)" + (dynamics == .secondOrder ? ", damping \(damping)" : "") + "); or set posterior=initial")
        }
        need(velocityPriorVar > 0, "velocityPriorVar must be > 0 (got \(velocityPriorVar))")
        need(cdKeep > 0 && cdKeep <= 1, "cdKeep must be in (0, 1] (got \(cdKeep)); 1 disables coordinated dropout")
        need(dropout >= 0 && dropout < 1, "dropout must be in [0, 1) (got \(dropout))")
        need(decoderDropout >= 0 && decoderDropout < 1, "decoderDropout must be in [0, 1) (got \(decoderDropout))")
        need(klWeight >= 0, "klWeight must be >= 0 (got \(klWeight))")
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
        need(predictionSamples >= 0, "predictionSamples must be >= 0 (got \(predictionSamples))")
        need(seed >= 0, "seed must be >= 0 (got \(seed))")
        need((1...16).contains(ensemble), "ensemble must be 1 (one model) to 16 (got \(ensemble))")
        need(splitSeed >= -1, "splitSeed must be -1 (follow seed) or >= 0 (got \(splitSeed))")
        need(checkpointEvery >= 1, "checkpointEvery must be >= 1 (got \(checkpointEvery))")
        need(latentEvery >= 0, "latentEvery must be >= 0 (got \(latentEvery)); 0 = only at the end")
        need(keepCheckpoints >= 1, "keepCheckpoints must be >= 1 (got \(keepCheckpoints))")
        need(maxMinutes >= 0, "maxMinutes must be >= 0 (got \(maxMinutes)); 0 = no budget")
        need(collectiveTimeoutSeconds >= 0, "collectiveTimeoutSeconds must be >= 0 (got \(collectiveTimeoutSeconds)); 0 disables the watchdog")
        if !problems.isEmpty {
            throw ConfigError("impossible config:\n  - " + problems.joined(separator: "\n  - "))
        }
    }

    /// The resolved config as a JSON object, keys in table order (stored in checkpoints).
    public func json() -> String {
        let body = Config.fields.map { field -> String in
            let value = field.json(self)
            let text: String
            if let s = value as? String { text = "\"\(s)\"" } else { text = field.get(self) }
            return "  \"\(field.name)\": \(text)"
        }
        return "{\n" + body.joined(separator: ",\n") + "\n}"
    }

    /// Reads a config from the JSON written by `json()`. Unknown keys are an error.
    public static func fromJSON(_ text: String, source: String) throws -> Config {
        guard let data = text.data(using: .utf8),
              let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw ConfigError("\(source): the config is not a JSON object")
        }
        var config = Config()
        for (key, value) in object.sorted(by: { $0.key < $1.key }) {
            let text: String
            if let n = value as? NSNumber, !(value is String) { text = n.stringValue } else { text = "\(value)" }
            try config.set(key, text, source: source)
        }
        return config
    }
}

/// Levenshtein distance, for "did you mean" hints.
func editDistance(_ a: String, _ b: String) -> Int {
    let a = Array(a), b = Array(b)
    var previous = Array(0...b.count)
    for i in 1...max(a.count, 1) where !a.isEmpty {
        var current = [i] + Array(repeating: 0, count: b.count)
        for j in stride(from: 1, through: b.count, by: 1) {
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
        }
        previous = current
    }
    return a.isEmpty ? b.count : previous[b.count]
}
