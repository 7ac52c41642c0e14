import Kernels

/// Readout and reconstruction loss: ℓ = clamp(x·Wᵀ + b, -8, 8) (log expected spikes per bin),
/// Poisson NLL per entry exp(ℓ) - y ℓ (the lnΓ(y+1) constant is dropped, as in the spec).
public final class PoissonReadout<S: Scalar> {
    public static var logRateBound: S { 8 }
    let width: Int, outputs: Int
    let logRatesRaw: Buffer<S>          // (steps, B, Nout) before the clamp
    public let logRates: Buffer<S>      // (steps, B, Nout)
    let dLogRates: Buffer<S>            // (steps, B, Nout)
    let weight: ParameterSlot, bias: ParameterSlot
    let precision: Precision

    public init(width: Int, outputs: Int, steps: Int, maxBatch: Int, layout: ParameterLayout, precision: Precision = .float32) {
        self.precision = precision
        weight = layout.slot("readout.weight")
        bias = layout.slot("readout.bias")
        self.width = width
        self.outputs = outputs
        logRatesRaw = Buffer(count: steps * maxBatch * outputs)
        logRates = Buffer(count: steps * maxBatch * outputs)
        dLogRates = Buffer(count: steps * maxBatch * outputs)
    }

    /// Overwrites `logRates` from x (rows, D).
    public func forward(x: UnsafePointer<S>, rows: Int, params: ParameterSet<S>) {
        Linear.forward(y: logRatesRaw.ptr, x: x, weight: params.value(weight),
                       bias: params.value(bias), rows: rows, inDim: width, outDim: outputs, precision: precision)
        let bound = Self.logRateBound
        let raw = logRatesRaw.ptr, clamped = logRates.ptr
        Parallel.ranges(rows * outputs) { range in
            for i in range { clamped[i] = min(max(raw[i], -bound), bound) }
        }
    }

    /// Σ lossMask ⊙ (exp(ℓ) - y ℓ) over (rows, Nout): the unnormalised reconstruction loss.
    public func nll(targets: UnsafePointer<S>, lossMask: UnsafePointer<S>, rows: Int) -> S {
        var sum: S = 0
        for i in 0..<(rows * outputs) where lossMask[i] != 0 {
            sum += S.exp(logRates[i]) - targets[i] * logRates[i]
        }
        return sum
    }

    /// Backward of `scale · Σ gradMask ⊙ (exp(ℓ) - y ℓ)`: overwrites `dx` (rows, D) and
    /// accumulates into the readout gradients.
    public func backward(dx: UnsafeMutablePointer<S>, x: UnsafePointer<S>, targets: UnsafePointer<S>,
                         gradMask: UnsafePointer<S>, scale: S, rows: Int, params: ParameterSet<S>) {
        let bound = Self.logRateBound
        let raw = logRatesRaw.ptr, l = logRates.ptr, dl = dLogRates.ptr
        Parallel.ranges(rows * outputs) { range in
            for i in range {
                let inRange = raw[i] >= -bound && raw[i] <= bound
                dl[i] = inRange ? gradMask[i] * scale * (S.exp(l[i]) - targets[i]) : 0
            }
        }
        dx.update(repeating: 0, count: rows * width)
        Linear.backward(dx: dx, dWeight: params.grad(weight), dBias: params.grad(bias),
                        dy: dLogRates.ptr, x: x, weight: params.value(weight),
                        rows: rows, inDim: width, outDim: outputs, precision: precision)
    }
}
