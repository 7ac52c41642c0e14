import Foundation
import Kernels
import Support

/// The model's part of the config: what a checkpoint's weights mean and how they are run. It is
/// the checkpoint's identity (its `config` attribute), and the only part `predict`, `latents`,
/// `inspect` and the Python package read: architecture, physics, the objective the forward
/// computes (coordinated dropout, dropouts, the KL's weight and scale), the precision of the
/// products, and prediction (samples, seed). How it is trained is `TrainConfig`'s (Training),
/// how the job runs is `RunOptions`' (Training).
///
/// Defaults are the spec's (`shared/spec/model.md`), i.e. the released code's MC_Maze settings.
public struct ModelConfig: Equatable, Sendable {
    public enum EncoderInput: String, CaseIterable, Sendable { case current, lagged }
    public enum Encoder: String, CaseIterable, Sendable { case forward, bidirectional }
    public enum Potential: String, CaseIterable, Sendable { case allPairs, diagonal }
    public enum Dynamics: String, CaseIterable, Sendable { case secondOrder, firstOrder }
    public enum Decoder: String, CaseIterable, Sendable { case transformer, linear }
    public enum DecoderInput: String, CaseIterable, Sendable { case zvh, zv }
    public enum KLScale: String, CaseIterable, Sendable { case perTrial, perEntry }
    public enum PositionalEncoding: String, CaseIterable, Sendable { case none, sinusoidal }
    /// Where coordinated dropout lets the held-in reconstruction teach: `droppedAndSampled` (the
    /// spec's; it was called `spec`, which old configs still say) or `dropped`.
    public enum CDGradient: String, CaseIterable, Sendable { case droppedAndSampled, dropped }
    public enum Posterior: String, CaseIterable, Sendable { case initial, perStep }
    public enum PotentialInput: String, CaseIterable, Sendable { case none, spikes }
    /// How the potential's stiffness A is made from its kernel: `paper`, A = k(B + Bᵀ) (may be
    /// indefinite), or `gram`, A = k·BᵀB/b (positive semi-definite for k ≥ 0: an energy).
    public enum Stiffness: String, CaseIterable, Sendable { case paper, gram }
    /// The Langevin step's treatment of the force: `explicit` (the spec's) or `midpoint` (the
    /// implicit midpoint rule, stable at every dt for a positive semi-definite stiffness).
    public enum Integrator: String, CaseIterable, Sendable { case explicit, midpoint }

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
    public var stiffness = Stiffness.paper
    public var integrator = Integrator.explicit
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
    // The objective
    public var cdKeep = 0.5
    public var cdGradient = CDGradient.droppedAndSampled
    public var dropout = 0.1
    public var decoderDropout = 0.1
    public var klWeight = 0.1
    public var klScale = KLScale.perTrial
    // Prediction and arithmetic
    public var predictionSamples = 50
    public var seed = 0
    public var precision = Precision.auto

    public init() {}

    /// Width of the decoder input S_t: [z, v, h] = 3H ([z, h] = 2H without velocity); without
    /// h (`decoderInput: zv`) one H less.
    public var decoderWidth: Int { decoderParts * hidden }
    /// How many H-wide parts S_t has: z, v (second order), h (unless `decoderInput: zv`).
    public var decoderParts: Int { 1 + (dynamics == .secondOrder ? 1 : 0) + (decoderInput == .zvh ? 1 : 0) }
    /// Length of one potential group, L = H / G.
    public var groupLength: Int { hidden / groups }
}

extension ModelConfig {
    /// The model's fields: names, docs and parsing.
    public static let fields: [ConfigField<ModelConfig>] = [
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
        .choice("stiffness", \.stiffness, "How the force matrix A (f = A·z) comes from the potential's kernel, with B the conv1d map of the normalised kernel (potential): paper = A = k·(B + Bᵀ), U = k·zᵀBz (spec; indefinite for some kernels, so some modes grow); gram = A = k·BᵀB/b, U = k/2·‖Bz‖²/b with b = groups²·√K′ (allPairs) or groups·√K′ (diagonal), K′ = min(kernelSize, 2L − 1), the bound on ‖B‖: positive semi-definite for coupling ≥ 0, so every mode oscillates or decays, with stiffness between 0 and k·b (needs coupling ≥ 0)."),
        .choice("integrator", \.integrator, "The Langevin step's deterministic part: explicit = z_t = z + dt·v, v' = v − dt·f(z)/m (spec; first order z − dt·f(z)), stable only while dt²·stiffness/mass < damping/(1 − damping); midpoint = the implicit midpoint rule for the linear force, z_t = z + dt·(v + v')/2, v' = v − dt·f((z + z_t)/2)/m (first order: the trapezoid rule), solved exactly through (I + c·A)⁻¹ once per pass: with stiffness gram no mode grows at any dt, damping or coupling. Damping and noise are the same in both."),
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
        .int("predictionSamples", \.predictionSamples, ">= 0", "Stochastic passes averaged in log-rate space for prediction; 0 = one deterministic mean-path pass."),
        .int("seed", \.seed, ">= 0", "Seed of every random draw (initialisation, dropout, noise, shuffling)."),
        .choice("precision", \.precision, "Operands of the large matrix products (GRU input projection, attention projections, the attention's score and context products, feed-forward, readout, their backward products, and the GRU recurrent weight gradient): auto (the default) = whichever of float32 and bf16 is faster on this CPU for this run's products, timed by the run at its start (about 0.1 s at the main job's size, 15 s at paper size on one rank of a Zen 3 and half that on two; printed, kept in precision.json, so a resumed run keeps it; the checkpoints record the choice); float32 (the spec's); or bf16 (bfloat16 operands, float32 accumulation; parameters, gradients, Adam, the allreduce, the loss, the Langevin steps and checkpoints stay float32). bf16 runs on AVX512-BF16 where the CPU has it; elsewhere the same bf16 rounding is emulated (float32 kernels on bf16-rounded operands: the same arithmetic, slower than float32); set by hand, it warns with both timings when it is the slower. Commands that do not train (init, inspect, predict of an untrained checkpoint) run auto as float32."),
    ]

    public static func field(named name: String) -> ConfigField<ModelConfig>? { fields.first { $0.name == name } }

    /// The model's retired options (the whole config's are `Config.retired`, in Training).
    public static let retired = [
        RetiredField("decoderLayers", kept: "1", why: "decoderLayers was retired: a second Transformer layer tied the spec's one on MC_Maze-shaped data and lost on MC_RTT-shaped data in the same 12 minutes (0.3375 against 0.3382 co-bps, docs/quality.md). The decoder has one layer; remove the key (a checkpoint with more layers cannot be loaded by this version)"),
    ]

    /// Every problem that would make the model impossible.
    public var problems: [String] {
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
        need(stiffness == .paper || coupling >= 0,
             "stiffness gram makes the force matrix k·BᵀB/b, an energy only for coupling ≥ 0 (got coupling \(coupling)); set coupling=\(abs(coupling)) or stiffness=paper")
        need(velocityPriorVar > 0, "velocityPriorVar must be > 0 (got \(velocityPriorVar))")
        need(cdKeep > 0 && cdKeep <= 1, "cdKeep must be in (0, 1] (got \(cdKeep)); 1 disables coordinated dropout")
        need(dropout >= 0 && dropout < 1, "dropout must be in [0, 1) (got \(dropout))")
        need(decoderDropout >= 0 && decoderDropout < 1, "decoderDropout must be in [0, 1) (got \(decoderDropout))")
        need(klWeight >= 0, "klWeight must be >= 0 (got \(klWeight))")
        need(predictionSamples >= 0, "predictionSamples must be >= 0 (got \(predictionSamples))")
        need(seed >= 0, "seed must be >= 0 (got \(seed))")
        return problems
    }

    /// Throws every problem of `problems` in one message.
    public func validate() throws {
        if !problems.isEmpty { throw ConfigError("impossible config:\n  - " + problems.joined(separator: "\n  - ")) }
    }

    /// The model's fields as a JSON object, keys in table order (a checkpoint's `config`).
    public func json() -> String { ConfigTable.json(self, Self.fields) }

    /// Reads the JSON of `json()`. Unknown keys are an error, unless `othersAllowed`: a
    /// checkpoint of schema 1 stored every part of the config in `config`, and the model reads
    /// only its own fields from it.
    public static func fromJSON(_ text: String, source: String, othersAllowed: Bool = false) throws -> ModelConfig {
        var config = ModelConfig()
        for (key, value) in try ConfigTable.pairs(text, source: source) {
            try ConfigTable.set(&config, key, value, source: source, fields: fields, retired: retired,
                                unknown: othersAllowed ? nil : ("model config key", "A newer lflow-dist may have written it."))
        }
        return config
    }
}

extension ModelConfig {
    /// The products whose precision `precision` sets, at `batch` trials of data of `dims`: what
    /// `precision: auto` times on this CPU (forward shapes; the probe adds their backward ones).
    public func productShapes(dims: DataDims, batch: Int) -> [PrecisionProbe.Shape] {
        let rows = batch * dims.bins, all = batch * dims.steps, d = decoderWidth
        var shapes = [PrecisionProbe.Shape(m: rows, n: 3 * hidden, k: dims.heldIn)]          // GRU input projection
        if encoder == .bidirectional { shapes.append(shapes[0]) }
        if decoder == .transformer {
            shapes += [PrecisionProbe.Shape(m: all, n: 3 * d, k: d), PrecisionProbe.Shape(m: all, n: d, k: d),   // attention
                       PrecisionProbe.Shape(m: all, n: feedForward, k: d), PrecisionProbe.Shape(m: all, n: d, k: feedForward)]
        }
        shapes.append(PrecisionProbe.Shape(m: all, n: dims.outputs, k: factors > 0 ? factors : d))             // readout
        return shapes
    }
}
