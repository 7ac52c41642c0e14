import Foundation
import Kernels

// Model: LangevinFlow itself: config, parameter layout, the layers (forward above backward), the
// loss and Adam. It owns the mathematics and may not read files, talk MPI or keep time.

/// The three parts of the negative ELBO of one forward pass.
public struct LossValues: Equatable, Sendable {
    /// Mean Poisson NLL exp(ℓ) - yℓ over the observed entries.
    public var reconstruction: Double
    /// Unweighted KL: initial z and v terms plus the transition terms, divided by the batch.
    public var kl: Double
    /// reconstruction + klWeight · kl.
    public var total: Double
    /// What the means are over: observed target entries and trials of this batch.
    public var observedEntries: Int
    public var trials: Int

    public init(reconstruction: Double, kl: Double, total: Double, observedEntries: Int, trials: Int) {
        self.reconstruction = reconstruction
        self.kl = kl
        self.total = total
        self.observedEntries = observedEntries
        self.trials = trials
    }
}

/// What the loss is normalised by. Data-parallel training passes the *global* counts so that
/// summed per-rank gradients are the gradients of the global loss.
public struct LossNormalisation: Equatable, Sendable {
    /// Observed (non-NaN) target entries in the global batch.
    public var observedEntries: Int
    /// Trials in the global batch.
    public var trials: Int

    public init(observedEntries: Int, trials: Int) {
        self.observedEntries = observedEntries
        self.trials = trials
    }
}

/// A batch of targets, time-major (steps, B, Nout): [held-in, held-out] for the T observed
/// bins, then [held-in forward, held-out forward]. NaN marks a missing bin. Sized once.
public final class Batch<S: Scalar> {
    public let dims: DataDims
    public let capacity: Int
    public var count: Int
    public let targets: Buffer<S>

    public init(dims: DataDims, capacity: Int) {
        self.dims = dims
        self.capacity = capacity
        count = capacity
        targets = Buffer(count: dims.steps * capacity * dims.outputs)
    }

    /// Sets row `b` from one trial given trial-major arrays: observed (T, Nin) and (T, Nho),
    /// forward (F, Nin) and (F, Nho). Missing forward arrays leave NaN (masked out).
    public func setTrial(_ b: Int, heldIn: UnsafePointer<S>, heldOut: UnsafePointer<S>,
                         heldInForward: UnsafePointer<S>?, heldOutForward: UnsafePointer<S>?) {
        let nIn = dims.heldIn, nOut = dims.outputs, nHo = dims.heldOut
        for t in 0..<dims.steps {
            let row = targets.ptr + (t * count + b) * nOut
            if t < dims.bins {
                row.update(from: heldIn + t * nIn, count: nIn)
                (row + nIn).update(from: heldOut + t * nHo, count: nHo)
            } else {
                let f = t - dims.bins
                if let heldInForward { row.update(from: heldInForward + f * nIn, count: nIn) } else { row.update(repeating: .nan, count: nIn) }
                if let heldOutForward { (row + nIn).update(from: heldOutForward + f * nHo, count: nHo) } else { (row + nIn).update(repeating: .nan, count: nHo) }
            }
        }
    }
}

/// LangevinFlow (spec `model.md`): a GRU encoder, a Langevin latent integrator under a
/// coupled-oscillator potential, and a Transformer decoder to Poisson log-rates.
///
/// The model knows no communicator and no file: it computes the loss of a batch and
/// accumulates gradients into `params.grads`. Every activation cache is sized once from
/// (config, dims, maxBatch); nothing is allocated in `forward` or `backward`.
public final class LangevinFlow<S: Scalar> {
    public let config: ModelConfig
    public let dims: DataDims
    public let maxBatch: Int
    public let params: ParameterSet<S>

    let inputs: CoordinatedDropout<S>
    public let encoder: GRUEncoder<S>
    /// The reverse GRU of `encoder: bidirectional`, nil for the spec's forward encoder.
    let reverseEncoder: GRUEncoder<S>?
    /// h_t: the forward GRU's states, or with a reverse GRU the sum of both  // (steps, B, H)
    public let states: Buffer<S>
    let zHead: PosteriorHead<S>
    let vHead: PosteriorHead<S>?
    let potential: CoupledOscillatorPotential<S>
    /// φ(x_t) of `potentialInput: spikes`, nil for the spec's U(z).
    let inputPotential: InputPotential<S>?
    /// q(u_t | h_t) of `posterior: perStep` (steps 1 … T+F-1), nil for the spec's initial posterior.
    let innovationHead: PosteriorHead<S>?
    /// The innovations u_t drawn from it, step t at row t-1              // (steps-1, B, H)
    let innovations: Buffer<S>
    public let dynamics: LangevinDynamics<S>
    /// The decoder's Transformer layer, none for the linear decoder.
    let transformers: [TransformerLayer<S>]
    let readout: PoissonReadout<S>

    /// S_t = [z_t, v_t, h_t] (or [z_t, h_t] in first order)       // (steps, B, D)
    public let latents: Buffer<S>
    /// Each Transformer layer's output: the next layer's input (kept for the backward), and
    /// the last one's is what the readout reads.                    // (steps, B, D) each
    let layerOutputs: [Buffer<S>]
    /// With a positional encoding: its table (steps, D) and S_t + PE_t, the Transformer's input
    /// (steps, B, D); nil without one (S_t goes in as it is).
    let positional: Buffer<S>?, encodedLatents: Buffer<S>?
    let dDecoded: Buffer<S>, dLatents: Buffer<S>                     // (steps, B, D)
    let dStates: Buffer<S>          // d loss / d h_t                // (steps, B, H)
    /// Its copy for the reverse GRU (each GRU's backward uses its input as scratch)
    let dReverseStates: Buffer<S>                                    // (steps, B, H)

    // What backward needs from the last forward.
    var lastBatch = 0
    var lastScale = (reconstruction: S(0), kl: S(0))

    public init(config: ModelConfig, dims: DataDims, maxBatch: Int) {
        self.config = config
        self.dims = dims
        self.maxBatch = maxBatch
        let layout = ParameterLayout(config: config, dims: dims)
        params = ParameterSet(layout: layout)
        let steps = dims.steps, d = config.decoderWidth, h = config.hidden
        inputs = CoordinatedDropout(config: config, dims: dims, maxBatch: maxBatch)
        let transformers = config.decoder == .transformer
            ? [TransformerLayer<S>(config: config, steps: steps, maxBatch: maxBatch, layout: layout)] : []
        self.transformers = transformers
        // Shared scratch. A Transformer layer's buffers hold nothing from the end of its backward
        // to the start of its next forward, which are the spans the encoders' and the dynamics'
        // backward scratch is needed in (and the encoders' forward input gates, used only before
        // the decoder runs), so those live in the decoder's memory: its Q, K, V hold the
        // encoders' gate scratch (the reverse GRU's backward is done before the forward GRU's
        // begins), its context the dynamics' gradients, its x̂₁ the gradient of h, its d FF the
        // readout's d log-rates (the readout's backward precedes the layer's). The decoder's output
        // lives in dLatents (below). At paper size this is 222 MiB less per rank (986 -> 764 MiB
        // peak, `bench`); every value is the same (the digests are).
        let lender = transformers.first
        encoder = GRUEncoder(config: config, dims: dims, maxBatch: maxBatch, layout: layout, scratch: lender?.qkv)
        reverseEncoder = config.encoder == .bidirectional
            ? GRUEncoder(config: config, dims: dims, maxBatch: maxBatch, layout: layout, reversed: true, scratch: lender?.qkv) : nil
        states = reverseEncoder == nil ? encoder.states : Buffer(count: steps * maxBatch * h)
        zHead = PosteriorHead(latent: "z", hidden: h, maxBatch: maxBatch, layout: layout)
        vHead = config.dynamics == .secondOrder ? PosteriorHead(latent: "v", hidden: h, maxBatch: maxBatch, layout: layout) : nil
        potential = CoupledOscillatorPotential(config: config, layout: layout)
        inputPotential = config.potentialInput == .spikes
            ? InputPotential(config: config, dims: dims, maxBatch: maxBatch, layout: layout) : nil
        let perStep = config.posterior == .perStep && steps > 1
        innovationHead = perStep
            ? PosteriorHead(latent: "u", hidden: h, maxBatch: maxBatch, layout: layout, steps: steps - 1, precision: config.precision) : nil
        innovations = Buffer(count: perStep ? (steps - 1) * maxBatch * h : 0)
        dynamics = LangevinDynamics(config: config, steps: steps, maxBatch: maxBatch, scratch: lender?.context)
        readout = PoissonReadout(width: d, outputs: dims.outputs, steps: steps, maxBatch: maxBatch, layout: layout,
                                 precision: config.precision, scratch: lender?.dFF)
        latents = Buffer(count: steps * maxBatch * d)
        // The decoder's output is read by the readout's forward and backward, and dead by the
        // time the first layer's backward writes d S_t: it lives in dLatents.
        let dLatents = Buffer<S>(count: transformers.isEmpty ? 0 : steps * maxBatch * d)
        self.dLatents = dLatents
        layerOutputs = transformers.indices.map { $0 == transformers.count - 1 ? dLatents : Buffer(count: steps * maxBatch * d) }
        if !transformers.isEmpty && config.positionalEncoding == .sinusoidal {
            let table = Buffer<S>(count: steps * d)
            for t in 0..<steps {
                for i in 0..<d {
                    // PE[t, 2k] = sin(t·10000^(−2k/D)), PE[t, 2k+1] = cos(t·10000^(−2k/D)).
                    let frequency = Foundation.exp(-Foundation.log(10000.0) * Double(2 * (i / 2)) / Double(d))
                    let angle = Double(t) * frequency
                    table[t * d + i] = S(i % 2 == 0 ? Foundation.sin(angle) : Foundation.cos(angle))
                }
            }
            positional = table
            encodedLatents = Buffer(count: steps * maxBatch * d)
        } else {
            positional = nil
            encodedLatents = nil
        }
        // The readout's input gradient lives in the Transformer's forward scratch, which the
        // backward no longer needs (the Transformer reads it once, first).
        dDecoded = transformers.last?.residual ?? Buffer(count: steps * maxBatch * d)
        if let lender, lender.x1Hat.count >= steps * maxBatch * h {
            dStates = Buffer(viewing: lender.x1Hat, count: steps * maxBatch * h)
        } else {
            dStates = Buffer(count: steps * maxBatch * h)
        }
        dReverseStates = Buffer(count: reverseEncoder == nil ? 0 : steps * maxBatch * h)
        gradientGroupStarts = Self.gradientGroups(layout)
    }

    /// Log-rates of the last forward pass                          // (steps, B, Nout)
    public var logRates: Buffer<S> { readout.logRates }

    /// The factors of the last forward pass: what `readout.weight` multiplies, so that every
    /// neuron's log-rate is a linear map of them (LFADS's factors): the F factors with `factors`
    /// > 0, else the decoder's output (D wide).                     // (steps, B, width)
    public var factors: (values: UnsafeMutablePointer<S>, width: Int) {
        if readout.factors > 0 { return (readout.factorValues.ptr, readout.factors) }
        return ((layerOutputs.last ?? latents).ptr, config.decoderWidth)
    }

    /// Adds the held-out Poisson NLL terms of the last forward on `batch` to a running `sum`
    /// and `count` (see `PoissonReadout.addHeldOutNLL`): the held-out neurons and the forward bins.
    public func addHeldOutNLL(_ batch: Batch<S>, to sum: inout Double, count: inout Int) {
        readout.addHeldOutNLL(targets: batch.targets.ptr, steps: dims.steps, batch: batch.count, bins: dims.bins, heldIn: dims.heldIn,
                              to: &sum, count: &count)
    }

    /// The force matrix A of the last forward pass (f(z) = z A, A symmetric)   // (H, H)
    public var forceMatrix: UnsafePointer<S> { UnsafePointer(potential.forceMatrix.ptr) }

    /// Set by `lflow-dist bench` to time the phases; the caller starts it before `forward`.
    public var clock: PhaseClock?

    /// Runs the model on `batch` and returns the loss. `normalisation` defaults to this batch's
    /// own counts. `klWeight` is β (the warm-up schedule is the trainer's).
    @discardableResult
    public func forward(_ batch: Batch<S>, noise: NoiseContext, klWeight: Double,
                        normalisation: LossNormalisation? = nil) -> LossValues {
        let b = batch.count, steps = dims.steps
        precondition(b <= maxBatch && noise.trialIndices.count == b, "batch of \(b) does not fit the model's caches")
        let observed = inputs.prepare(rawTargets: batch.targets.ptr, batch: b, noise: noise)
        let norm = normalisation ?? LossNormalisation(observedEntries: observed, trials: b)

        encoder.forward(x: inputs.input.ptr, inputScale: inputs.inputScale, batch: b, params: params, noise: noise)
        if let reverseEncoder {
            reverseEncoder.forward(x: inputs.input.ptr, inputScale: inputs.inputScale, batch: b, params: params, noise: noise)
            let n = steps * b * config.hidden
            for i in 0..<n { states[i] = encoder.states[i] + reverseEncoder.states[i] }
        }
        clock?.mark(.encoder)
        let h0 = states.ptr                                                  // (B, H)
        var kl = zHead.forward(h0: h0, sample: dynamics.positions.ptr, batch: b, params: params, noise: noise)
        if let vHead {
            kl += vHead.forward(h0: h0, sample: dynamics.velocities.ptr, batch: b, params: params, noise: noise)
        }
        potential.build(params: params)
        inputPotential?.forward(x: inputs.input.ptr, inputScale: inputs.inputScale, batch: b, params: params)
        if let innovationHead {
            // u_t from h_t, t ≥ 1: the states from row block 1 on.
            kl += innovationHead.forward(h0: states.ptr + b * config.hidden, sample: innovations.ptr, batch: b, params: params, noise: noise)
        }
        kl += dynamics.forward(forceMatrix: potential.forceMatrix.ptr, batch: b, noise: noise,
                               drive: inputPotential.map { UnsafePointer($0.drive.ptr) }, driveRow: driveRow,
                               innovations: innovationHead == nil ? nil : UnsafePointer(innovations.ptr))
        clock?.mark(.dynamics)
        assembleLatents(batch: b)
        let decoderOut: UnsafeMutablePointer<S>
        if !transformers.isEmpty {
            // Layer k reads layer k−1's output.
            var input = transformerInput(batch: b)
            for (layer, output) in zip(transformers, layerOutputs) {
                layer.forward(x: input, out: output.ptr, batch: b, params: params, noise: noise)
                input = output.ptr
            }
            decoderOut = input
        } else {
            decoderOut = latents.ptr
        }
        clock?.mark(.decoder)
        readout.forward(x: decoderOut, rows: steps * b, params: params)
        let nll = readout.nll(targets: inputs.targets.ptr, lossMask: inputs.lossMask.ptr, rows: steps * b)
        clock?.mark(.readoutLoss)

        let reconstruction = Double(nll) / Double(max(norm.observedEntries, 1))
        // perEntry: the KL per trial also divided by a trial's entries, (T+F)·Nout.
        let klDivisor = Double(max(norm.trials, 1)) * (config.klScale == .perEntry ? Double(steps * dims.outputs) : 1)
        let klMean = Double(kl) / klDivisor
        lastBatch = b
        lastScale = (S(1) / S(max(norm.observedEntries, 1)), S(klWeight) / S(klDivisor))
        return LossValues(reconstruction: reconstruction, kl: klMean, total: reconstruction + klWeight * klMean,
                          observedEntries: observed, trials: b)
    }

    /// Backward of the last `forward`: accumulates d total / d θ into `params.grads`. As each
    /// layer group's gradients are complete it calls `gradientsFinal(offset)`: everything from
    /// `offset` to the end of the flat gradient buffer is final (`gradientGroupStarts`, falling).
    public func backward(gradientsFinal: ((Int) -> Void)? = nil) {
        let b = lastBatch, steps = dims.steps, rows = steps * b
        let decoderIn = layerOutputs.last?.ptr ?? latents.ptr
        readout.backward(dx: dDecoded.ptr, x: decoderIn, targets: inputs.targets.ptr, gradMask: inputs.gradMask.ptr,
                         scale: lastScale.reconstruction, rows: rows, params: params)
        clock?.mark(.readoutBackward)
        gradientsFinal?(gradientGroupStarts.readout)
        let dS: UnsafeMutablePointer<S>
        if !transformers.isEmpty {
            // From the last layer down: layer k's input gradient goes into layer k−1's forward
            // scratch (`residual`), where that layer's backward takes its output gradient.
            for k in stride(from: transformers.count - 1, through: 0, by: -1) {
                let layer = transformers[k]
                let dx = k == 0 ? dLatents.ptr : transformers[k - 1].residual.ptr
                dx.update(repeating: 0, count: rows * config.decoderWidth)
                // The encoding is a constant: d(S_t + PE_t) = dS_t.
                let x = k == 0 ? (encodedLatents?.ptr ?? latents.ptr) : layerOutputs[k - 1].ptr
                layer.backward(dOut: layer.residual.ptr, dx: dx, x: x, batch: b, params: params)
            }
            dS = dLatents.ptr
        } else {
            dS = dDecoded.ptr
        }
        splitLatentGradient(dS, batch: b)
        clock?.mark(.decoderBackward)
        if let decoder = gradientGroupStarts.decoder { gradientsFinal?(decoder) }
        if let inputPotential { inputPotential.dDrive.ptr.update(repeating: 0, count: dims.bins * b * config.hidden) }
        dynamics.backward(forceMatrix: potential.forceMatrix.ptr, klScale: lastScale.kl, batch: b,
                          dDrive: inputPotential?.dDrive.ptr, driveRow: driveRow)
        let h0 = states.ptr, block = b * config.hidden
        zHead.backward(dSample: dynamics.dPositions.ptr, klScale: lastScale.kl, h0: h0, dh0: dStates.ptr, batch: b, params: params)
        vHead?.backward(dSample: dynamics.dVelocities.ptr, klScale: lastScale.kl, h0: h0, dh0: dStates.ptr, batch: b, params: params)
        innovationHead?.backward(dSample: dynamics.dInnovations.ptr + block, klScale: lastScale.kl, h0: h0 + block,
                                 dh0: dStates.ptr + block, batch: b, params: params)
        potential.backward(dForceMatrix: dynamics.dForceMatrix.ptr, params: params)
        inputPotential?.backward(x: inputs.input.ptr, inputScale: inputs.inputScale, batch: b, params: params)
        clock?.mark(.dynamicsBackward)
        gradientsFinal?(gradientGroupStarts.dynamics)
        if let reverseEncoder {
            // h_t = forward_t + reverse_t: both GRUs get d loss / d h_t.
            dReverseStates.ptr.update(from: dStates.ptr, count: rows * config.hidden)
            reverseEncoder.backward(dStates: dReverseStates.ptr, dx: nil, x: inputs.input.ptr, inputScale: inputs.inputScale, batch: b, params: params)
        }
        encoder.backward(dStates: dStates.ptr, dx: nil, x: inputs.input.ptr, inputScale: inputs.inputScale, batch: b, params: params)
        clock?.mark(.encoderBackward)
        gradientsFinal?(0)
    }

    /// Where each layer group's gradients begin in the flat buffer, in the order the backward
    /// completes the groups: the readout (with `factors`), the decoder's Transformer (nil for the
    /// linear decoder), the dynamics (posterior heads, potential, φ); the encoder begins at 0.
    /// Each group is a suffix of what is left, so `backward(gradientsFinal:)` hands over suffixes.
    public let gradientGroupStarts: (readout: Int, decoder: Int?, dynamics: Int)

    /// The groups of `gradientGroupStarts` from the layout's names; checks that the layout keeps
    /// them contiguous in the order encoder, dynamics, decoder, readout.
    static func gradientGroups(_ layout: ParameterLayout) -> (readout: Int, decoder: Int?, dynamics: Int) {
        func group(_ name: String) -> Int {
            if name.hasPrefix("readout.") || name.hasPrefix("factors.") { return 3 }
            if name.hasPrefix(TransformerLayer<Double>.prefix) { return 2 }
            if name.hasPrefix(GRUEncoder<Double>.prefix(reversed: false) + ".")
                || name.hasPrefix(GRUEncoder<Double>.prefix(reversed: true) + ".") { return 0 }
            return 1
        }
        var starts: [Int: Int] = [:], last = 0
        for entry in layout.entries {
            let g = group(entry.name)
            precondition(g >= last, "parameter \(entry.name) is out of the layout's group order (encoder, dynamics, decoder, readout)")
            if starts[g] == nil { starts[g] = entry.offset }
            last = g
        }
        return (starts[3]!, starts[2], starts[1] ?? starts[2] ?? starts[3]!)
    }

    /// The observed bin whose φ drives Langevin step t: the bin the forward GRU reads at t.
    func driveRow(_ t: Int) -> Int { encoder.source(t) ?? dims.bins - 1 }

    /// S_t, or S_t + PE_t (into `encodedLatents`) with a positional encoding.
    func transformerInput(batch: Int) -> UnsafeMutablePointer<S> {
        guard let positional, let encodedLatents else { return latents.ptr }
        let d = config.decoderWidth
        for t in 0..<dims.steps {
            for b in 0..<batch {
                let row = (t * batch + b) * d
                for i in 0..<d { encodedLatents[row + i] = latents[row + i] + positional[t * d + i] }
            }
        }
        return encodedLatents.ptr
    }

    /// S_t = [z_t, v_t, h_t] row by row (without v in first order, without h for `zv`).
    func assembleLatents(batch: Int) {
        let h = config.hidden, d = config.decoderWidth, withH = config.decoderInput == .zvh
        for row in 0..<(dims.steps * batch) {
            let out = latents.ptr + row * d
            out.update(from: dynamics.positions.ptr + row * h, count: h)
            if vHead != nil {
                (out + h).update(from: dynamics.velocities.ptr + row * h, count: h)
            }
            if withH { (out + d - h).update(from: states.ptr + row * h, count: h) }
        }
    }

    /// Overwrites dPositions, dVelocities and dStates with the slices of d loss / d S_t (dStates
    /// with zeros when S_t has no h).
    func splitLatentGradient(_ dS: UnsafePointer<S>, batch: Int) {
        let h = config.hidden, d = config.decoderWidth, withH = config.decoderInput == .zvh
        for row in 0..<(dims.steps * batch) {
            let g = dS + row * d
            (dynamics.dPositions.ptr + row * h).update(from: g, count: h)
            if vHead != nil {
                (dynamics.dVelocities.ptr + row * h).update(from: g + h, count: h)
            }
            if withH {
                (dStates.ptr + row * h).update(from: g + d - h, count: h)
            } else {
                (dStates.ptr + row * h).update(repeating: 0, count: h)
            }
        }
    }
}
