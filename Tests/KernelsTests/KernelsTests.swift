import Testing
import Foundation
import CKernels
@testable import Kernels

@Suite("Philox and keyed noise")
struct PhiloxTests {
    @Test("Philox4x32-10 known-answer vectors (Random123 kat_vectors)")
    func knownAnswers() {
        #expect(Philox.block(SIMD4(0, 0, 0, 0), key: SIMD2(0, 0)) == SIMD4(0x6627_e8d5, 0xe169_c58d, 0xbc57_ac4c, 0x9b00_dbd8))
        #expect(Philox.block(SIMD4(repeating: 0xffff_ffff), key: SIMD2(repeating: 0xffff_ffff))
                == SIMD4(0x408f_276d, 0x41c8_3b0e, 0xa20b_c7c6, 0x6d54_51fd))
        #expect(Philox.block(SIMD4(0x243f_6a88, 0x85a3_08d3, 0x1319_8a2e, 0x0370_7344), key: SIMD2(0xa409_3822, 0x299f_31d0))
                == SIMD4(0xd16c_fe09, 0x94fd_cceb, 0x5001_e420, 0x2412_6ea1))
    }

    @Test("The vectorised block generator makes the same words as Philox.block, across the 2³² wrap")
    func vectorisedBlocks() {
        for (first, count) in [(UInt32(0), 1), (7, 16), (1000, 37), (0xffff_fff0, 40), (3, 300)] {
            var words = [UInt32](repeating: 0, count: 4 * count)
            let made = lf_philox_blocks(first, 5, 17, 0x0800_0003, 42, 0x1234_5678, count, &words)
            // Whole groups of sixteen with AVX-512F (which every AVX512-BF16 CPU has), of eight
            // with AVX2 alone, none without either.
            #expect(made == 16 * (count / 16) || made == 8 * (count / 8) || made == 0)
            if lf_cpu_has_avx512_bf16() != 0 { #expect(made == 16 * (count / 16)) }
            if lf_cpu_has_avx2() != 0 { #expect(made > 0 || count < 8) }
            for i in 0..<made {
                let expected = Philox.block(SIMD4(first &+ UInt32(i), 5, 17, 0x0800_0003), key: SIMD2(42, 0x1234_5678))
                #expect(SIMD4(words[4 * i], words[4 * i + 1], words[4 * i + 2], words[4 * i + 3]) == expected, "block \(first &+ UInt32(i))")
            }
        }
        // Keep flags made straight from the generator equal the words compared one by one, for
        // every start within a block, short and long fills, and thresholds at the edges.
        let stream = NoiseStream(seed: 0x0bad_cafe_1234, purpose: .attentionDropout, epoch: 4, step: 1)
        for threshold: UInt32 in [0, 1, 0x4000_0000, 0x8000_0000, 0xcccc_cccd, UInt32.max] {
            for first in [0, 1, 2, 3, 37, 4093] {
                for count in [1, 3, 4, 5, 31, 32, 33, 100, 1027] {
                    var fast = [UInt8](repeating: 7, count: count), slow = fast
                    fast.withUnsafeMutableBufferPointer { stream.fillKept(trial: 9, first: first, into: $0.baseAddress!, count: count, threshold: threshold) }
                    for i in 0..<count {
                        let n = first + i
                        slow[i] = stream.words(block: n / 4, trial: 9)[n % 4] < threshold ? 0 : 1
                    }
                    #expect(fast == slow, "threshold \(threshold), first \(first), count \(count)")
                }
            }
        }
        // Every fill walks the same draws whatever its start and length: a stream filled in one
        // call equals one filled draw by draw.
        let s = NoiseStream(seed: 0xdead_beef_0042, purpose: .feedForwardDropout, epoch: 9, step: 2)
        var whole = [Float](repeating: 0, count: 2053), pieces = [Float](repeating: 0, count: 2053)
        whole.withUnsafeMutableBufferPointer { s.fillUniform(trial: 3, first: 1, into: $0.baseAddress!, count: 2053) }
        pieces.withUnsafeMutableBufferPointer { p in
            for i in 0..<2053 { s.fillUniform(trial: 3, first: 1 + i, into: p.baseAddress! + i, count: 1) }
        }
        #expect(whole == pieces)
    }

    @Test("Draws depend only on their keys, not on how many are taken")
    func keyed() {
        let s = NoiseStream(seed: 42, purpose: .langevin, epoch: 3, step: 17)
        var long = [Double](repeating: 0, count: 37), short = [Double](repeating: 0, count: 10)
        long.withUnsafeMutableBufferPointer { s.fillNormal(trial: 5, into: $0.baseAddress!, count: 37) }
        short.withUnsafeMutableBufferPointer { s.fillNormal(trial: 5, into: $0.baseAddress!, count: 10) }
        #expect(Array(long[0..<10]) == short)
        var other = [Double](repeating: 0, count: 10)
        other.withUnsafeMutableBufferPointer { s.fillNormal(trial: 6, into: $0.baseAddress!, count: 10) }
        #expect(other != short)
        let nextStep = NoiseStream(seed: 42, purpose: .langevin, epoch: 3, step: 18)
        other.withUnsafeMutableBufferPointer { nextStep.fillNormal(trial: 5, into: $0.baseAddress!, count: 10) }
        #expect(other != short)
    }

    @Test("Uniform and normal moments")
    func moments() {
        let n = 200_000
        let s = NoiseStream(seed: 1, purpose: .synthetic)
        let u = Buffer<Double>(count: n), z = Buffer<Double>(count: n)
        s.fillUniform(trial: 0, into: u.ptr, count: n)
        s.fillNormal(trial: 1, into: z.ptr, count: n)
        let uMean = u.array.reduce(0, +) / Double(n)
        let zMean = z.array.reduce(0, +) / Double(n)
        let zVar = z.array.map { ($0 - zMean) * ($0 - zMean) }.reduce(0, +) / Double(n)
        #expect(abs(uMean - 0.5) < 0.005 && u.array.allSatisfy { $0 >= 0 && $0 < 1 })
        #expect(abs(zMean) < 0.01 && abs(zVar - 1) < 0.01)
    }
}

@Suite("Linear and GEMM")
struct LinearTests {
    @Test("Linear forward and backward against loops, in Float and Double")
    func linear() {
        func check<S: Scalar>(_: S.Type, tolerance: S) {
            let rows = 5, inDim = 4, outDim = 3
            let x = Buffer<S>(count: rows * inDim), w = Buffer<S>(count: outDim * inDim), b = Buffer<S>(count: outDim)
            let s = NoiseStream(seed: 9, purpose: .synthetic)
            s.fillNormal(trial: 0, into: x.ptr, count: x.count)
            s.fillNormal(trial: 1, into: w.ptr, count: w.count)
            s.fillNormal(trial: 2, into: b.ptr, count: b.count)
            let y = Buffer<S>(count: rows * outDim)
            Linear.forward(y: y.ptr, x: x.ptr, weight: w.ptr, bias: b.ptr, rows: rows, inDim: inDim, outDim: outDim)
            for r in 0..<rows {
                for o in 0..<outDim {
                    var acc = b[o]
                    for i in 0..<inDim { acc += x[r * inDim + i] * w[o * inDim + i] }
                    #expect(abs(y[r * outDim + o] - acc) <= tolerance)
                }
            }
            // Backward accumulates: start from ones and check the increments.
            let dy = Buffer<S>(count: rows * outDim)
            s.fillNormal(trial: 3, into: dy.ptr, count: dy.count)
            let dx = Buffer<S>([S](repeating: 1, count: rows * inDim))
            let dw = Buffer<S>([S](repeating: 1, count: outDim * inDim))
            let db = Buffer<S>([S](repeating: 1, count: outDim))
            Linear.backward(dx: dx.ptr, dWeight: dw.ptr, dBias: db.ptr, dy: dy.ptr, x: x.ptr, weight: w.ptr,
                            rows: rows, inDim: inDim, outDim: outDim)
            for r in 0..<rows {
                for i in 0..<inDim {
                    var acc: S = 1
                    for o in 0..<outDim { acc += dy[r * outDim + o] * w[o * inDim + i] }
                    #expect(abs(dx[r * inDim + i] - acc) <= tolerance)
                }
            }
            for o in 0..<outDim {
                var accB: S = 1
                for r in 0..<rows { accB += dy[r * outDim + o] }
                #expect(abs(db[o] - accB) <= tolerance)
                for i in 0..<inDim {
                    var acc: S = 1
                    for r in 0..<rows { acc += dy[r * outDim + o] * x[r * inDim + i] }
                    #expect(abs(dw[o * inDim + i] - acc) <= tolerance)
                }
            }
        }
        check(Float.self, tolerance: 1e-5)
        check(Double.self, tolerance: 1e-13)
    }
}

@Suite("Vectorised exponential")
struct ExpTests {
    /// Every float from -87.3 to 88.7 in steps of a few ulps (about 4M values), and the edges.
    @Test("lf_expf is within 2 ulp of e^x in Double over the whole range, and its vector and scalar paths give the same bits")
    func accuracy() {
        var xs: [Float] = []
        var x: Float = -87.33
        while x < 88.72 {
            xs.append(x)
            x = x.isZero ? Float.leastNormalMagnitude : x > 0 ? x * (1 + 0x1p-11) : x / (1 + 0x1p-11)
            if x < 0 && x > -1e-30 { x = 0 }
        }
        xs += [0, -0.0, 1e-30, -1e-30, 88.72, -87.33, Float.ulpOfOne, 1, -1, 0.5, -0.5, 0.34657359, -0.34657359]
        var ys = [Float](repeating: 0, count: xs.count), portable = ys
        lf_expf(xs, &ys, xs.count)
        lf_expf_portable(xs, &portable, xs.count)
        #expect(ys == portable)
        var worst = 0.0
        for (x, y) in zip(xs, ys) {
            let truth = Foundation.exp(Double(x))
            let ulps = abs(Double(y) - truth) / Double(Float(truth).ulp)
            worst = max(worst, ulps)
        }
        #expect(worst <= 2, "worst error \(worst) ulp")
        // Odd lengths: the tail (scalar) and the body (vector) agree element by element.
        for n in [1, 7, 8, 9, 61] {
            var one = [Float](repeating: 0, count: n), each = one
            lf_expf(Array(xs[1000..<(1000 + n)]), &one, n)
            for i in 0..<n { var v: Float = 0; lf_expf([xs[1000 + i]], &v, 1); each[i] = v }
            #expect(one == each)
        }
    }

    @Test("lf_expf's edges: +∞ above log(FLT_MAX), 0 below log(FLT_MIN) and at -∞, NaN stays NaN, e⁰ = 1")
    func edges() {
        let xs: [Float] = [89, 1000, .infinity, -88, -1000, -.infinity, .nan, 0, -0.0]
        for input in [xs, xs + xs] {                  // 9 (tail only) and 18 (a vector body too)
            var ys = [Float](repeating: 0, count: input.count)
            lf_expf(input, &ys, input.count)
            for (x, y) in zip(input, ys) {
                if x.isNaN { #expect(y.isNaN) } else if x > 88.8 { #expect(y == .infinity) } else if x < -87.4 { #expect(y == 0) } else { #expect(y == 1) }
            }
        }
    }
}
