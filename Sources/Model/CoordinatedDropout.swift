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
        for t in 0..<steps {
            for b in 0..<batch {
                let row = (t * batch + b) * outputs
                for n in 0..<outputs {
                    let y = rawTargets[row + n]
                    let present = !y.isNaN
                    let clean: S = present ? y : 0
                    targets[row + n] = clean
                    lossMask[row + n] = present ? 1 : 0
                    gradMask[row + n] = present ? 1 : 0
                    if present { observed += 1 }
                    guard t < bins && n < heldIn else { continue }
                    let i = (t * batch + b) * heldIn + n
                    if dropping {
                        let kept = keep[i] < p
                        let passes = keptPass && pass[i] < 1 - p
                        input[i] = kept ? (folded ? clean / p : clean) : 0
                        if kept && !passes { gradMask[row + n] = 0 }
                    } else {
                        input[i] = clean
                    }
                }
            }
        }
        return observed
    }
}
