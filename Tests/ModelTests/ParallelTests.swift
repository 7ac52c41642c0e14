import Testing
import Kernels
@testable import Model

@Suite("Threads and noise offsets")
struct ParallelTests {
    @Test("A training step is bit-identical with 1 and with 3 element-wise workers")
    func workersDoNotChangeResults() {
        var config = tinyConfig()
        config.hidden = 24
        config.groups = 4
        config.feedForward = 48
        // Large enough that every parallel loop splits (flat loops split above 16k elements).
        let dims = DataDims(bins: 7, forwardBins: 3, heldIn: 5, heldOut: 3)
        func step(workers: Int) -> (loss: Double, grads: [Float], rates: [Float]) {
            Parallel.$scopedWorkers.withValue(workers) {
                #expect(Parallel.workers == workers)
                return runStep()
            }
        }
        func runStep() -> (loss: Double, grads: [Float], rates: [Float]) {
            let model = LangevinFlow<Float>(config: config, dims: dims, maxBatch: 64)
            model.params.initialise(seed: 5)
            let batch = Batch<Float>(dims: dims, capacity: 64)
            for i in 0..<batch.targets.count { batch.targets[i] = Float((i * 7919) % 5) }
            batch.targets[3] = .nan
            let noise = NoiseContext(stochastic: true, seed: 2, epoch: 1, step: 4, trialIndices: Array(10..<74))
            let loss = model.forward(batch, noise: noise, klWeight: 0.1)
            model.backward()
            return (loss.total, Array(UnsafeBufferPointer(start: model.params.grads.ptr, count: model.params.grads.count)),
                    Array(UnsafeBufferPointer(start: model.logRates.ptr, count: dims.steps * 64 * dims.outputs)))
        }
        let one = step(workers: 1), three = step(workers: 3)
        #expect(one.loss == three.loss)
        #expect(one.grads == three.grads)
        #expect(one.rates == three.rates)
        #expect(one.grads.contains { $0 != 0 })
    }

    @Test("Draws from an offset equal the same slice of a fill from zero")
    func offsets() {
        let stream = NoiseStream(seed: 9, purpose: .langevin, epoch: 3, step: 2)
        let n = 37
        for (first, count) in [(0, 37), (1, 5), (3, 10), (4, 8), (6, 31), (13, 1)] where first + count <= n {
            var full = [Float](repeating: 0, count: n), part = [Float](repeating: 0, count: count)
            full.withUnsafeMutableBufferPointer { stream.fillUniform(trial: 4, into: $0.baseAddress!, count: n) }
            part.withUnsafeMutableBufferPointer { stream.fillUniform(trial: 4, first: first, into: $0.baseAddress!, count: count) }
            #expect(Array(full[first..<(first + count)]) == part, "uniform \(first)+\(count)")
            full.withUnsafeMutableBufferPointer { stream.fillNormal(trial: 4, into: $0.baseAddress!, count: n) }
            part.withUnsafeMutableBufferPointer { stream.fillNormal(trial: 4, first: first, into: $0.baseAddress!, count: count) }
            #expect(Array(full[first..<(first + count)]) == part, "normal \(first)+\(count)")
            var fullD = [Double](repeating: 0, count: n), partD = [Double](repeating: 0, count: count)
            fullD.withUnsafeMutableBufferPointer { stream.fillNormal(trial: 4, into: $0.baseAddress!, count: n) }
            partD.withUnsafeMutableBufferPointer { stream.fillNormal(trial: 4, first: first, into: $0.baseAddress!, count: count) }
            #expect(Array(fullD[first..<(first + count)]) == partD, "normal (Double) \(first)+\(count)")
            let threshold = NoiseStream.dropoutThreshold(rate: 0.3)
            full.withUnsafeMutableBufferPointer { stream.fillDropout(trial: 4, into: $0.baseAddress!, count: n, threshold: threshold, keepValue: 2) }
            part.withUnsafeMutableBufferPointer { stream.fillDropout(trial: 4, first: first, into: $0.baseAddress!, count: count, threshold: threshold, keepValue: 2) }
            #expect(Array(full[first..<(first + count)]) == part, "dropout \(first)+\(count)")
        }
    }

    @Test("Dropout masks drop at the configured rate and keep 1/(1-p)")
    func dropoutRate() {
        let stream = NoiseStream(seed: 1, purpose: .feedForwardDropout)
        let n = 200_000
        var mask = [Float](repeating: 0, count: n)
        mask.withUnsafeMutableBufferPointer {
            stream.fillDropout(trial: 0, into: $0.baseAddress!, count: n, threshold: NoiseStream.dropoutThreshold(rate: 0.1), keepValue: Float(1 / 0.9))
        }
        let dropped = Double(mask.filter { $0 == 0 }.count) / Double(n)
        #expect(abs(dropped - 0.1) < 0.003, "dropped fraction \(dropped)")
        #expect(mask.allSatisfy { $0 == 0 || $0 == Float(1 / 0.9) })
        #expect(NoiseStream.dropoutThreshold(rate: 0) == 0)
        #expect(NoiseStream.dropoutThreshold(rate: 0.5) == 1 << 31)
    }
}
