import Kernels

/// Turns a batch of targets into the encoder input and the two loss masks.
///
/// Targets (steps, B, Nout) hold [held-in, held-out] for observed bins t < T and their forward
/// bins after; the encoder input is the held-in observed block. NaN marks a missing bin: it is
/// zero in the input and masked out of the loss value and gradient.
///
/// Coordinated dropout (training only, keep probability p, spec step 1): keep ~ Bernoulli(p),
/// pass ~ Bernoulli(1-p) per held-in observed entry; input x' = x·keep/p; the reconstruction
/// gradient flows where (not keep) or pass. Held-out and forward entries always pass.
/// With `cdGradient: dropped` no kept entry passes: g = not keep (the default,
/// `droppedAndSampled`, is the spec's).
///
/// With bf16 products the input holds x·keep (counts, exact in bf16) and `inputScale` is 1/p,
/// which the products that read the input apply to their float32 result: rounding x/p to
/// bf16 would shrink every kept count by the same factor (1/0.6 rounds 0.16% low), a bias the
/// loss does not average away.
public final class CoordinatedDropout<S: Scalar> {
    let bins: Int, steps: Int, heldIn: Int, outputs: Int
    let keepProbability: Double
    let keptPass: Bool
    /// Whether 1/p stays out of `input` (bf16 products on Float).
    let scaleAfterProduct: Bool
    /// Encoder input x' = inputScale · input                 // (T, B, Nin)
    public let input: Buffer<S>
    /// The factor of `input` in x': 1/p while dropping with bf16 products, else 1.
    public private(set) var inputScale: S = 1
    /// Targets with NaN replaced by 0                       // (steps, B, Nout)
    public let targets: Buffer<S>
    /// 1 where the target is observed (counts in the loss value)      // (steps, B, Nout)
    public let lossMask: Buffer<S>
    /// lossMask, and 0 where coordinated dropout blocks the gradient  // (steps, B, Nout)
    public let gradMask: Buffer<S>
    let keep: Buffer<S>, pass: Buffer<S>                // (T, B, Nin) uniforms

    public init(config: ModelConfig, dims: DataDims, maxBatch: Int) {
        bins = dims.bins
        steps = dims.steps
        heldIn = dims.heldIn
        outputs = dims.outputs
        keepProbability = config.cdKeep
        keptPass = config.cdGradient == .droppedAndSampled
        scaleAfterProduct = config.precision == .bf16 && S.self == Float.self
        input = Buffer(count: bins * maxBatch * heldIn)
        targets = Buffer(count: steps * maxBatch * outputs)
        lossMask = Buffer(count: steps * maxBatch * outputs)
        gradMask = Buffer(count: steps * maxBatch * outputs)
        keep = Buffer(count: bins * maxBatch * heldIn)
        pass = Buffer(count: bins * maxBatch * heldIn)
    }

    /// Overwrites every buffer from raw targets (steps, B, Nout). Returns the number of
    /// observed (non-NaN) target entries.
    public func prepare(rawTargets: UnsafePointer<S>, batch: Int, noise: NoiseContext) -> Int {
        let dropping = noise.dropout && keepProbability < 1
        if dropping {
            noise.fill(.coordinatedDropoutKeep, normal: false, into: keep.ptr, rows: bins, width: heldIn)
            noise.fill(.coordinatedDropoutPass, normal: false, into: pass.ptr, rows: bins, width: heldIn)
        }
        let p = S(keepProbability)
        let folded = !(dropping && scaleAfterProduct)
        inputScale = folded ? 1 : 1 / p
        var observed = 0
        let keepCut = p, passCut = 1 - p
        for t in 0..<steps {
            for b in 0..<batch {
                // Each row in two branch-free passes the compiler vectorises: targets and masks,
                // then the held-in input and where coordinated dropout removes the gradient.
                let row = (t * batch + b) * outputs
                let y = rawTargets + row, clean = targets.ptr + row, loss = lossMask.ptr + row, grad = gradMask.ptr + row
                var present = 0
                for n in 0..<outputs {
                    let here = !y[n].isNaN
                    clean[n] = here ? y[n] : 0
                    loss[n] = here ? 1 : 0
                    grad[n] = here ? 1 : 0
                    present &+= here ? 1 : 0
                }
                observed += present
                guard t < bins else { continue }
                let i0 = (t * batch + b) * heldIn
                let x = input.ptr + i0
                if dropping {
                    let k = keep.ptr + i0, q = pass.ptr + i0
                    for n in 0..<heldIn {
                        let kept = k[n] < keepCut
                        let passes = keptPass && q[n] < passCut
                        x[n] = kept ? (folded ? clean[n] / p : clean[n]) : 0
                        grad[n] = kept && !passes ? 0 : grad[n]
                    }
                } else {
                    x.update(from: clean, count: heldIn)
                }
            }
        }
        return observed
    }
}
