import Kernels

/// Readout and reconstruction loss: ℓ = clamp(x·Wᵀ + b, -8, 8) (log expected spikes per bin),
/// Poisson NLL per entry exp(ℓ) - y ℓ (the lnΓ(y+1) constant is dropped, as in the spec).
/// With `factors: F` > 0 the readout reads f = x·Fᵀ (a bias-free D→F map, `factors.weight`)
/// instead of x: ℓ = clamp(f·Wᵀ + b, -8, 8), W (Nout, F).
public final class PoissonReadout<S: Scalar> {
    public static var logRateBound: S { 8 }
    let width: Int, outputs: Int
    /// F and the bottleneck's weight, values and their gradient (steps, B, F); nil/empty without.
    let factors: Int
    let factorWeight: ParameterSlot?
    let factorValues: Buffer<S>, dFactors: Buffer<S>
    let logRatesRaw: Buffer<S>          // (steps, B, Nout) before the clamp
    public let logRates: Buffer<S>      // (steps, B, Nout)
    /// exp(ℓ), made once per forward for the loss, the held-out score and the backward  // (steps, B, Nout)
    let rates: Buffer<S>
    let dLogRates: Buffer<S>            // (steps, B, Nout)
    let weight: ParameterSlot, bias: ParameterSlot
    let precision: Precision

    /// `scratch`: memory free during this backward (LangevinFlow lends the decoder's d FF);
    /// d log-rates live there when it is large enough.
    public init(width: Int, outputs: Int, steps: Int, maxBatch: Int, layout: ParameterLayout, precision: Precision = .float32,
                scratch: Buffer<S>? = nil) {
        self.precision = precision
        weight = layout.slot("readout.weight")
        bias = layout.slot("readout.bias")
        self.width = width
        self.outputs = outputs
        factorWeight = layout["factors.weight"].map { _ in layout.slot("factors.weight") }
        factors = factorWeight.map { $0.count / width } ?? 0
        factorValues = Buffer(count: steps * maxBatch * factors)
        dFactors = Buffer(count: steps * maxBatch * factors)
        logRatesRaw = Buffer(count: steps * maxBatch * outputs)
        logRates = Buffer(count: steps * maxBatch * outputs)
        rates = Buffer(count: steps * maxBatch * outputs)
        let rows = steps * maxBatch * outputs
        if let scratch, scratch.count >= rows {
            dLogRates = Buffer(viewing: scratch, count: rows)
        } else {
            dLogRates = Buffer(count: rows)
        }
    }

    /// Overwrites `logRates` and `rates` from x (rows, D).
    public func forward(x: UnsafePointer<S>, rows: Int, params: ParameterSet<S>) {
        if let factorWeight {
            Linear.forward(y: factorValues.ptr, x: x, weight: params.value(factorWeight), bias: nil,
                           rows: rows, inDim: width, outDim: factors, precision: precision)
        }
        Linear.forward(y: logRatesRaw.ptr, x: readoutInput(x), weight: params.value(weight),
                       bias: params.value(bias), rows: rows, inDim: readoutWidth, outDim: outputs, precision: precision)
        let bound = Self.logRateBound
        let raw = logRatesRaw.ptr, clamped = logRates.ptr, r = rates.ptr
        Parallel.ranges(rows * outputs) { range in
            for i in range { clamped[i] = min(max(raw[i], -bound), bound) }
            Elementwise.exp(clamped + range.lowerBound, into: r + range.lowerBound, count: range.count)
        }
    }

    /// Σ lossMask ⊙ (exp(ℓ) - y ℓ) over (rows, Nout): the unnormalised reconstruction loss.
    public func nll(targets: UnsafePointer<S>, lossMask: UnsafePointer<S>, rows: Int) -> S {
        var sum: S = 0
        for i in 0..<(rows * outputs) where lossMask[i] != 0 {
            sum += rates[i] - targets[i] * logRates[i]
        }
        return sum
    }

    /// The held-out score's part of the last forward: adds exp(ℓ) - y ℓ of the held-out neurons
    /// of the observed bins and of every neuron of the forward bins, NaN targets skipped, each
    /// term in S, to `sum` (in Double, in step, neuron, trial order) and counts them in `count`.
    /// `targets` (steps, batch, Nout) as the log-rates.
    public func addHeldOutNLL(targets: UnsafePointer<S>, steps: Int, batch: Int, bins: Int, heldIn: Int,
                              to sum: inout Double, count: inout Int) {
        let l = logRates.ptr, r = rates.ptr
        for t in 0..<steps {
            for n in 0..<outputs where t >= bins || n >= heldIn {
                for j in 0..<batch {
                    let i = (t * batch + j) * outputs + n
                    guard !targets[i].isNaN else { continue }
                    sum += Double(r[i] - targets[i] * l[i])
                    count += 1
                }
            }
        }
    }

    /// Backward of `scale · Σ gradMask ⊙ (exp(ℓ) - y ℓ)`: overwrites `dx` (rows, D) and
    /// accumulates into the readout gradients.
    public func backward(dx: UnsafeMutablePointer<S>, x: UnsafePointer<S>, targets: UnsafePointer<S>,
                         gradMask: UnsafePointer<S>, scale: S, rows: Int, params: ParameterSet<S>) {
        let bound = Self.logRateBound
        let raw = logRatesRaw.ptr, r = rates.ptr, dl = dLogRates.ptr
        Parallel.ranges(rows * outputs) { range in
            for i in range {
                let inRange = raw[i] >= -bound && raw[i] <= bound
                dl[i] = inRange ? gradMask[i] * scale * (r[i] - targets[i]) : 0
            }
        }
        dx.update(repeating: 0, count: rows * width)
        // The readout's input gradient is dx itself, or the factors' on its way to dx.
        let dInput = factorWeight == nil ? dx : dFactors.ptr
        if factorWeight != nil { dFactors.ptr.update(repeating: 0, count: rows * factors) }
        Linear.backward(dx: dInput, dWeight: params.grad(weight), dBias: params.grad(bias),
                        dy: dLogRates.ptr, x: readoutInput(x), weight: params.value(weight),
                        rows: rows, inDim: readoutWidth, outDim: outputs, precision: precision)
        if let factorWeight {
            Linear.backward(dx: dx, dWeight: params.grad(factorWeight), dBias: nil,
                            dy: dFactors.ptr, x: x, weight: params.value(factorWeight),
                            rows: rows, inDim: width, outDim: factors, precision: precision)
        }
    }

    /// What `readout.weight` multiplies: x (rows, D), or with factors the last forward's f (rows, F).
    private var readoutWidth: Int { factorWeight == nil ? width : factors }
    private func readoutInput(_ x: UnsafePointer<S>) -> UnsafePointer<S> {
        factorWeight == nil ? x : UnsafePointer(factorValues.ptr)
    }
}
