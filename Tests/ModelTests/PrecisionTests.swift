import Testing
import Foundation
import Kernels
@testable import Model

/// The bf16 training step against the float32 step: same parameters, batch and noise, only the
/// operands of the large matrix products rounded to bfloat16. It runs on every CPU: on the
/// hardware path where the CPU has AVX512-BF16, emulated elsewhere (`OneDNN.bf16Path`).
///
/// ## Where the bounds come from
/// bf16 keeps 8 significant bits. Rounding to nearest moves an operand x by ε·x with |ε| ≤ u =
/// 2⁻⁸; for values spread over a binade (log-uniform mantissa m ∈ [1, 2)) the error is uniform
/// in ±2⁻⁸·2^e, so its RMS relative size is u_rms = 2⁻⁸·√(E[1/m²]/3) = 2⁻⁸·√((1/ln 2)(1/2 − 1/8)/3)
/// = 0.4247·2⁻⁸ ≈ 2⁻⁹·² ≈ 1.66e-3, with mean 0 (nearest even has no bias).
/// To first order a quantity Q of the step moves by δQ = Σ_m ε_m·s_m over every rounded operand
/// element m, s_m = x_m·∂Q/∂x_m. The roundings are independent, so δQ has mean 0 and standard
/// deviation u_rms·√(Σ s_m²).
/// - **Loss.** A weight matrix is rounded once and read by every row of the batch, so its
///   errors move the loss coherently; an activation element is read by one row, and the loss,
///   a mean over rows, averages those away (their part of Σ s² is smaller by about the rows
///   per product, 12–16 here, than the weights'). So σ_L ≈ σ_W = u_rms·‖W ⊙ ∇_W L‖₂ over the
///   weights the bf16 products read, computed below from the float32 step's own gradient. The
///   bound is 6σ_W: a Gaussian exceeds it with probability 2e-9, and a bias (every operand
///   rounded the same way) shows as many σ. Measured: spec 0.7σ, perStep 1.3σ, potentialInput
///   1.3σ. Before the fix in `CoordinatedDropout`, the per-step model's loss was 7.4σ off
///   (1.55e-3 relative, issue 40): the encoder input x/p rounded every kept count by the same
///   −0.16% (1/0.6 → 1.6640625), a bias, not noise; now 1/p is applied after the product.
/// - **Log-rates** (relative 2-norm). Each of the D bf16 products on the path from the input to
///   the log-rates adds a relative error of RMS √2·u_rms (two rounded operands; for products of
///   uncorrelated terms ‖δC‖/‖C‖ ≈ √2·u_rms), and independent errors add in quadrature:
///   √(2D)·u_rms. D = 8 here (encoder input, q/k/v projection, scores, context, out-projection,
///   two feed-forward products, readout), 9 with the per-step posterior's heads, 10 with the input
///   potential's two products. Bound: twice that (products' conditioning and the decoder's
///   residual sums may amplify a little; layer norms do not). Measured: 0.3–0.4 of √(2D)·u_rms.
/// - **Gradient** (relative 2-norm over all parameters). The backward adds two products per
///   forward product (dx and dW), on the same chain read backwards: √(2·3D)·u_rms, bound twice
///   that. Measured: spec and potentialInput under 0.01 (their gradient is mostly the coupling kernel's,
///   whose products are float32), perStep 0.2.
@Suite("bf16 step against the float32 step")
struct PrecisionTests {
    struct Step { var loss: Double; var grads: [Float]; var rates: [Float]; var weightSensitivity: Double }

    /// The model variants the bf16 bound covers: the spec's, the per-step posterior and the
    /// input-dependent potential (their Linear layers go through the same bf16 products).
    enum Variant: String, CaseIterable, Sendable {
        case spec, perStep, potentialInput
        /// bf16 products on the path from the input to the log-rates (see the suite's comment).
        var depth: Int { switch self { case .spec: 8; case .perStep: 9; case .potentialInput: 10 } }
    }

    /// RMS relative rounding error of one bf16 operand (see the suite's comment).
    static let uRMS = 0x1p-8 * ((1 / log(2.0)) * (0.5 - 0.125) / 3).squareRoot()

    /// Whether the bf16 products read this weight tensor (its rounding is one of the loss's
    /// coherent terms). Biases are added in float32; the initial posterior's heads and the GRU's
    /// recurrent product run in float32; layer-norm and coupling parameters enter no product.
    static func readInBF16(_ name: String) -> Bool {
        let suffixes = ["weight_ih", "in_proj_weight", "out_proj.weight", "linear1.weight", "linear2.weight"]
        return suffixes.contains { name.hasSuffix($0) } || name.hasPrefix("linear_u_") && name.hasSuffix(".weight")
            || name.hasPrefix("potential.layer_x.") && name.hasSuffix(".weight") || name == "factors.weight" || name == "readout.weight"
    }

    static func step(_ precision: Precision, _ variant: Variant = .spec) -> Step {
        var config = tinyConfig()
        switch variant {
        case .spec: break
        case .perStep: config.posterior = .perStep
        case .potentialInput: config.potentialInput = .spikes
        }
        config.hidden = 48
        config.groups = 4
        config.heads = 4
        config.feedForward = 96
        config.precision = precision
        let dims = DataDims(bins: 12, forwardBins: 4, heldIn: 30, heldOut: 10)
        let batchSize = 32
        let model = LangevinFlow<Float>(config: config, dims: dims, maxBatch: batchSize)
        model.params.initialise(seed: 11)
        let batch = Batch<Float>(dims: dims, capacity: batchSize)
        for i in 0..<batch.targets.count { batch.targets[i] = Float((i &* 2_654_435_761) % 7 == 0 ? 1 : 0) + Float(i % 3 == 0 ? 1 : 0) }
        let noise = NoiseContext(stochastic: true, seed: 4, epoch: 2, step: 1, trialIndices: Array(0..<batchSize))
        let loss = model.forward(batch, noise: noise, klWeight: 0.5)
        model.backward()
        // ‖W ⊙ ∇_W L‖₂ over the weights the bf16 products read.
        var squares = 0.0
        for entry in model.params.layout.entries where readInBF16(entry.name) {
            for i in entry.range {
                let s = Double(model.params.values[i]) * Double(model.params.grads[i])
                squares += s * s
            }
        }
        return Step(loss: loss.total,
                    grads: Array(UnsafeBufferPointer(start: model.params.grads.ptr, count: model.params.grads.count)),
                    rates: Array(UnsafeBufferPointer(start: model.logRates.ptr, count: dims.steps * batchSize * dims.outputs)),
                    weightSensitivity: squares.squareRoot())
    }

    /// ‖a − b‖ / ‖b‖.
    static func relative(_ a: [Float], _ b: [Float]) -> Double {
        var d = 0.0, n = 0.0
        for (x, y) in zip(a, b) { d += Double(x - y) * Double(x - y); n += Double(y) * Double(y) }
        return (d / n).squareRoot()
    }

    @Test("Loss within 6σ of the weights' rounding, log-rates and gradient within twice the chain's RMS rounding (derived in the suite's comment)",
          .enabled(if: OneDNN.available, "oneDNN does not run here"), arguments: Variant.allCases)
    func bf16AgainstFloat32(variant: Variant) {
        let f32 = Self.step(.float32, variant), bf16 = Self.step(.bf16, variant)
        let sigma = Self.uRMS * f32.weightSensitivity
        let lossSigmas = abs(bf16.loss - f32.loss) / sigma
        let rateBound = 2 * (2 * Double(variant.depth)).squareRoot() * Self.uRMS
        let gradBound = 2 * (6 * Double(variant.depth)).squareRoot() * Self.uRMS
        let rateError = Self.relative(bf16.rates, f32.rates)
        let gradError = Self.relative(bf16.grads, f32.grads)
        print("bf16 path: \(OneDNN.bf16Path.description)")
        print(String(format: "bf16 vs float32 (%@): loss %.2e relative = %.2fσ (σ %.2e, bound 6σ); log-rates %.2e (bound %.2e); gradient %.2e (bound %.2e)",
                     variant.rawValue, abs(bf16.loss - f32.loss) / abs(f32.loss), lossSigmas, sigma / abs(f32.loss),
                     rateError, rateBound, gradError, gradBound))
        #expect(lossSigmas < 6)
        #expect(rateError < rateBound)
        #expect(gradError < gradBound)
        // And bf16 really ran: float32 rounding alone is about 1e-7.
        #expect(rateError > Self.uRMS / 10, "log-rates agree to \(rateError): the bf16 path did not run")
        #expect(bf16.grads.allSatisfy { $0.isFinite })
    }

    @Test("The attention in bf16: chunks of trials give bitwise the one-chunk result, within the rounding of its four products of float32",
          .enabled(if: OneDNN.available, "oneDNN does not run here"))
    func attentionChunks() {
        // 7 trials in chunks of 3 (the last one short) against one chunk of 7, and float32.
        let fixture = AttentionFixture()
        let params = ParameterSet<Float>(layout: fixture.layout)
        params.initialise(seed: 5)
        let chunked = fixture.run(params, precision: .bf16, chunk: 3), whole = fixture.run(params, precision: .bf16, chunk: nil)
        let f32 = fixture.run(params, precision: .float32, chunk: nil)
        #expect(chunked.layer.bf16Attention?.chunkTrials == 3 && whole.layer.bf16Attention?.chunkTrials == fixture.batch
                    && f32.layer.bf16Attention == nil)
        #expect(chunked.out == whole.out && chunked.dx == whole.dx && chunked.grads == whole.grads)
        let errors = [Self.relative(whole.out, f32.out), Self.relative(whole.dx, f32.dx), Self.relative(whole.grads, f32.grads)]
        // The layer's six products (q/k/v projection, scores, context, out-projection, two
        // feed-forward): the output within twice √(2·6)·u_rms, dx and the gradients (two more
        // products per product, backwards) within twice √(6·6)·u_rms, as in the suite's comment.
        let bounds = [2 * 12.0.squareRoot() * Self.uRMS, 2 * 6 * Self.uRMS, 2 * 6 * Self.uRMS]
        print("bf16 attention vs float32 (\(OneDNN.bf16Path)): out, dx, gradients \(errors), bounds \(bounds)")
        #expect(zip(errors, bounds).allSatisfy { $0 < $1 && $0 > Self.uRMS / 10 }, "\(errors)")
    }
}
