import Foundation
import Testing
import Kernels
@testable import Model

@Suite("Transformer layer")
struct TransformerLayerTests {
    let steps = 4, batch = 3

    func setup(dropout: Double = 0.3) -> (ModelConfig, ParameterSet<Double>, TransformerLayer<Double>) {
        let config = tinyConfig { $0.decoderDropout = dropout }
        let params = perturbedParameters(config)
        return (config, params, TransformerLayer<Double>(config: config, steps: steps, maxBatch: batch, layout: params.layout))
    }

    @Test("Parameters and input against finite differences", arguments: [false, true])
    func gradients(stochastic: Bool) {
        let (config, params, layer) = setup()
        let d = config.decoderWidth, n = steps * batch * d
        let x = Buffer<Double>(count: n), out = Buffer<Double>(count: n), weights = Buffer<Double>(count: n)
        fillRandom(x.ptr, count: n, seed: 60, scale: 2)
        fillRandom(weights.ptr, count: n, seed: 61)
        let noise = stochastic ? stochasticNoise(batch: batch) : .deterministic(batch: batch)
        func loss() -> Double {
            layer.forward(x: x.ptr, out: out.ptr, batch: batch, params: params, noise: noise)
            return (0..<n).reduce(0) { $0 + out[$1] * weights[$1] }
        }
        _ = loss()
        params.grads.zero()
        let dx = Buffer<Double>(count: n)
        layer.backward(dOut: weights.ptr, dx: dx.ptr, x: x.ptr, batch: batch, params: params)
        for entry in params.layout.entries where entry.name.hasPrefix("decoder.") {
            expectGradient(entry.name, loss: loss, p: params.values.ptr + entry.offset,
                           analytic: params.grads.ptr + entry.offset, count: entry.count)
        }
        expectGradient("transformer input", loss: loss, p: x.ptr, analytic: dx.ptr, count: n)
    }

    @Test("Forward equals a naive per-element reference (deterministic)")
    func reference() {
        let (config, params, layer) = setup()
        let d = config.decoderWidth, f = config.feedForward, heads = config.heads, dh = d / heads
        let n = steps * batch * d
        let x = Buffer<Double>(count: n), out = Buffer<Double>(count: n)
        fillRandom(x.ptr, count: n, seed: 62, scale: 2)
        layer.forward(x: x.ptr, out: out.ptr, batch: batch, params: params, noise: .deterministic(batch: batch))
        func w(_ name: String) -> UnsafeMutablePointer<Double> { params.value("decoder.\(name)") }
        func linear(_ v: [Double], _ name: String, _ outDim: Int) -> [Double] {
            let wt = w("\(name).weight"), b = w("\(name).bias")
            return (0..<outDim).map { o in b[o] + v.indices.reduce(0) { $0 + wt[o * v.count + $1] * v[$1] } }
        }
        func layerNorm(_ v: [Double], _ name: String) -> [Double] {
            let mean = v.reduce(0, +) / Double(v.count)
            let variance = v.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(v.count)
            return v.indices.map { (v[$0] - mean) / (variance + 1e-5).squareRoot() * w("\(name).weight")[$0] + w("\(name).bias")[$0] }
        }
        for b in 0..<batch {
            let xs = (0..<steps).map { t in (0..<d).map { x[(t * batch + b) * d + $0] } }
            let qkv = xs.map { row -> [Double] in
                let wt = w("self_attn.in_proj_weight"), bias = w("self_attn.in_proj_bias")
                return (0..<(3 * d)).map { o in bias[o] + (0..<d).reduce(0) { $0 + wt[o * d + $1] * row[$1] } }
            }
            var context = [[Double]](repeating: [Double](repeating: 0, count: d), count: steps)
            for h in 0..<heads {
                for i in 0..<steps {
                    var scores = (0..<steps).map { j in
                        (0..<dh).reduce(0) { $0 + qkv[i][h * dh + $1] * qkv[j][d + h * dh + $1] } / Double(dh).squareRoot()
                    }
                    let top = scores.max()!
                    scores = scores.map { exp($0 - top) }
                    let sum = scores.reduce(0, +)
                    for c in 0..<dh {
                        context[i][h * dh + c] = (0..<steps).reduce(0) { $0 + scores[$1] / sum * qkv[$1][2 * d + h * dh + c] }
                    }
                }
            }
            for t in 0..<steps {
                let attn = linear(context[t], "self_attn.out_proj", d)
                let x1 = layerNorm(xs[t].indices.map { xs[t][$0] + attn[$0] }, "norm1")
                let hidden = linear(x1, "linear1", f).map { max($0, 0) }
                let ff = linear(hidden, "linear2", d)
                let x2 = layerNorm(x1.indices.map { x1[$0] + ff[$0] }, "norm2")
                for c in 0..<d {
                    let got = out[(t * batch + b) * d + c]
                    #expect(abs(got - x2[c]) <= 1e-12 * max(1, abs(x2[c])), "out[\(t),\(b),\(c)] \(got) vs \(x2[c])")
                }
            }
        }
    }

    @Test("With dropout 0, stochastic and deterministic passes agree")
    func noDropout() {
        let (config, params, layer) = setup(dropout: 0)
        let n = steps * batch * config.decoderWidth
        let x = Buffer<Double>(count: n), a = Buffer<Double>(count: n), b = Buffer<Double>(count: n)
        fillRandom(x.ptr, count: n, seed: 63)
        layer.forward(x: x.ptr, out: a.ptr, batch: batch, params: params, noise: .deterministic(batch: batch))
        layer.forward(x: x.ptr, out: b.ptr, batch: batch, params: params, noise: stochasticNoise(batch: batch))
        #expect(a.array == b.array)
    }
}

/// The attention tests' layer and inputs (`AttentionGridTests`, `PrecisionTests.attentionChunks`):
/// 7 trials of 9 steps, hidden 48 (D = 144) over 4 heads, decoder dropout 0.2, fixed inputs and
/// output weights, stochastic noise.
struct AttentionFixture {
    let config: ModelConfig
    let steps = 9, batch = 7
    let layout: ParameterLayout
    let x: [Float], weights: [Float]
    let noise: NoiseContext

    init() {
        var config = tinyConfig { $0.decoderDropout = 0.2 }
        config.hidden = 48
        config.heads = 4
        self.config = config
        layout = ParameterLayout(config: config, dims: DataDims(bins: 7, forwardBins: 2, heldIn: 5, heldOut: 3))
        let n = steps * batch * config.decoderWidth
        x = (0..<n).map { Float(sin(Double($0) * 0.37)) * 2 }
        weights = (0..<n).map { Float(cos(Double($0) * 0.11)) }
        noise = NoiseContext(stochastic: true, seed: 3, epoch: 1, step: 2, trialIndices: Array(0..<batch))
    }

    /// One forward and backward of a new layer in `precision` (attention chunks of `chunk`
    /// trials, nil: its own choice) with `params`: the output, the input gradient and all
    /// parameter gradients, and the layer.
    func run<S: Scalar>(_ params: ParameterSet<S>, precision: Precision = .float32, chunk: Int?)
        -> (out: [S], dx: [S], grads: [S], layer: TransformerLayer<S>) {
        var c = config
        c.precision = precision
        let layer = TransformerLayer<S>(config: c, steps: steps, maxBatch: batch, layout: layout, attentionChunkTrials: chunk)
        let n = x.count
        let input = Buffer<S>(count: n), out = Buffer<S>(count: n), dx = Buffer<S>(count: n), dOut = Buffer<S>(count: n)
        for i in 0..<n { input[i] = S(Double(x[i])); dOut[i] = S(Double(weights[i])) }
        layer.forward(x: input.ptr, out: out.ptr, batch: batch, params: params, noise: noise)
        params.grads.zero()
        layer.backward(dOut: dOut.ptr, dx: dx.ptr, x: input.ptr, batch: batch, params: params)
        return (Array(UnsafeBufferPointer(start: out.ptr, count: n)), Array(UnsafeBufferPointer(start: dx.ptr, count: n)),
                Array(UnsafeBufferPointer(start: params.grads.ptr, count: params.grads.count)), layer)
    }
}

@Suite("Float32 attention as grids of products")
struct AttentionGridTests {
    static func relative(_ a: [Float], _ b: [Double]) -> Double {
        var d = 0.0, n = 0.0
        for (x, y) in zip(a, b) { d += (Double(x) - y) * (Double(x) - y); n += y * y }
        return (d / n).squareRoot()
    }

    @Test("Whole batch or chunks of trials give the same bits, and agree with the Double layer's loops within float32 rounding",
          .enabled(if: OneDNN.available, "oneDNN does not run here"))
    func gridAgainstLoops() {
        // 7 trials in chunks of 3 (the last one short) against one chunk of 7, and Double.
        let fixture = AttentionFixture()
        let wide = ParameterSet<Double>(layout: fixture.layout)
        wide.initialise(seed: 5)
        let narrow = ParameterSet<Float>(layout: fixture.layout)
        for i in 0..<fixture.layout.totalCount { narrow.values[i] = Float(wide.values[i]) }
        let chunked = fixture.run(narrow, chunk: 3), whole = fixture.run(narrow, chunk: nil), exact = fixture.run(wide, chunk: nil)
        #expect(chunked.layer.gridChunkTrials == 3 && whole.layer.gridChunkTrials == fixture.batch && exact.layer.gridChunkTrials == 0)
        #expect(chunked.out == whole.out && chunked.dx == whole.dx && chunked.grads == whole.grads)
        let errors = [Self.relative(whole.out, exact.out), Self.relative(whole.dx, exact.dx), Self.relative(whole.grads, exact.grads)]
        // float32 keeps 24 bits (u = 6e-8); a handful of products and layer norms in a chain
        // stay within 1e-6 relative; an indexing mistake would be of order 1.
        print("float32 grid attention vs Double loops: out, dx, gradients \(errors)")
        #expect(errors.allSatisfy { $0 < 1e-5 }, "\(errors)")
    }
}
