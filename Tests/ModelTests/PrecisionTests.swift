import Testing
import Foundation
import Kernels
@testable import Model

/// The bf16 training step against the float32 step: same parameters, batch and noise, only the
/// operands of the large matrix products rounded to bfloat16 (8 bits of mantissa, relative
/// rounding 2^-9 ≈ 2e-3 per operand).
@Suite("bf16 step against the float32 step")
struct PrecisionTests {
    struct Step { var loss: Double; var grads: [Float]; var rates: [Float] }

    /// The model variants the bf16 bound covers: the spec's, the per-step posterior and the
    /// input-dependent potential (their Linear layers go through the same bf16 products).
    enum Variant: String, CaseIterable, Sendable { case spec, perStep, potentialInput }

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
        return Step(loss: loss.total,
                    grads: Array(UnsafeBufferPointer(start: model.params.grads.ptr, count: model.params.grads.count)),
                    rates: Array(UnsafeBufferPointer(start: model.logRates.ptr, count: dims.steps * batchSize * dims.outputs)))
    }

    /// ‖a − b‖ / ‖b‖.
    static func relative(_ a: [Float], _ b: [Float]) -> Double {
        var d = 0.0, n = 0.0
        for (x, y) in zip(a, b) { d += Double(x - y) * Double(x - y); n += Double(y) * Double(y) }
        return (d / n).squareRoot()
    }

    @Test("Loss within 1e-3 (relative), log-rates and the gradient within 1e-2 (relative norm; measured on the spec's model 7e-5, 2.5e-3, 1.3e-4)",
          .enabled(if: OneDNN.bf16Available, "this CPU has no AVX512-BF16: bf16 runs the float32 path"), arguments: Variant.allCases)
    func bf16AgainstFloat32(variant: Variant) {
        let f32 = Self.step(.float32, variant), bf16 = Self.step(.bf16, variant)
        let lossError = abs(bf16.loss - f32.loss) / abs(f32.loss)
        let rateError = Self.relative(bf16.rates, f32.rates)
        let gradError = Self.relative(bf16.grads, f32.grads)
        print("bf16 vs float32 (\(variant)): loss \(lossError), log-rates \(rateError), gradient \(gradError)")
        #expect(lossError < 1e-3)
        #expect(rateError < 1e-2)
        #expect(gradError < 1e-2)
        // And bf16 really ran: float32 rounding alone is about 1e-7.
        #expect(rateError > 1e-5, "log-rates agree to \(rateError): the bf16 path did not run")
        #expect(bf16.grads.allSatisfy { $0.isFinite })
    }

    @Test("The attention in bf16: chunks of trials give bitwise the one-chunk result, within 1e-2 of float32",
          .enabled(if: OneDNN.bf16Available, "this CPU has no AVX512-BF16: bf16 runs the float32 path"))
    func attentionChunks() {
        // 7 trials in chunks of 3 (the last one short) against one chunk of 7, and float32.
        var config = tinyConfig { $0.decoderDropout = 0.2 }
        config.hidden = 48
        config.heads = 4
        let steps = 9, batch = 7
        config.precision = .bf16
        let params = ParameterSet<Float>(layout: ParameterLayout(config: config, dims: DataDims(bins: 7, forwardBins: 2, heldIn: 5, heldOut: 3)))
        params.initialise(seed: 5)
        let d = config.decoderWidth, n = steps * batch * d
        let x = Buffer<Float>(count: n), weights = Buffer<Float>(count: n)
        for i in 0..<n { x[i] = Float(sin(Double(i) * 0.37)) * 2; weights[i] = Float(cos(Double(i) * 0.11)) }
        let noise = NoiseContext(stochastic: true, seed: 3, epoch: 1, step: 2, trialIndices: Array(0..<batch))
        func run(_ precision: Precision, chunk: Int?) -> (out: [Float], dx: [Float], grads: [Float]) {
            var c = config
            c.precision = precision
            let layer = TransformerLayer<Float>(config: c, steps: steps, maxBatch: batch, layout: params.layout, attentionChunkTrials: chunk)
            #expect((layer.bf16Attention?.chunkTrials) == (precision == .bf16 ? chunk ?? batch : nil))
            let out = Buffer<Float>(count: n), dx = Buffer<Float>(count: n), dOut = Buffer<Float>(count: n)
            layer.forward(x: x.ptr, out: out.ptr, batch: batch, params: params, noise: noise)
            dOut.ptr.update(from: weights.ptr, count: n)
            params.grads.zero()
            layer.backward(dOut: dOut.ptr, dx: dx.ptr, x: x.ptr, batch: batch, params: params)
            return (Array(UnsafeBufferPointer(start: out.ptr, count: n)), Array(UnsafeBufferPointer(start: dx.ptr, count: n)),
                    Array(UnsafeBufferPointer(start: params.grads.ptr, count: params.grads.count)))
        }
        let chunked = run(.bf16, chunk: 3), whole = run(.bf16, chunk: nil), f32 = run(.float32, chunk: nil)
        #expect(chunked.out == whole.out && chunked.dx == whole.dx && chunked.grads == whole.grads)
        let errors = [Self.relative(whole.out, f32.out), Self.relative(whole.dx, f32.dx), Self.relative(whole.grads, f32.grads)]
        print("bf16 attention vs float32: out, dx, gradients \(errors)")
        #expect(errors.allSatisfy { $0 < 1e-2 && $0 > 1e-5 }, "\(errors)")
    }
}
