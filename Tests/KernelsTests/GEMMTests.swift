import Testing
@testable import Kernels
import CKernels

/// The GEMM entry point: oneDNN (float32 and bf16) against a Double reference, for every
/// transpose, α, β and padded leading dimension the model uses.
@Suite("GEMM: oneDNN and OpenBLAS behind Float.gemm")
struct GEMMTests {
    struct Case: CustomStringConvertible {
        let m: Int, n: Int, k: Int, transA: Bool, transB: Bool, pad: Int, alpha: Float, beta: Float
        var description: String { "\(m)×\(n)×\(k) \(transA ? "T" : "N")\(transB ? "T" : "N") pad \(pad) α \(alpha) β \(beta)" }
    }

    static let cases: [Case] = [(7, 5, 3), (64, 96, 33), (45, 45, 420), (300, 130, 257)].flatMap { s in
        [(false, true), (false, false), (true, false), (true, true)].flatMap { t in
            [Case(m: s.0, n: s.1, k: s.2, transA: t.0, transB: t.1, pad: 0, alpha: 1, beta: 0),
             Case(m: s.0, n: s.1, k: s.2, transA: t.0, transB: t.1, pad: 3, alpha: 0.35, beta: 1)]
        }
    } + [
        // A of 6M elements: bf16 runs it in slices of rows, or of the summed dimension (TN).
        Case(m: 3000, n: 8, k: 2048, transA: false, transB: true, pad: 0, alpha: 1, beta: 1),
        Case(m: 2048, n: 8, k: 3000, transA: true, transB: false, pad: 0, alpha: 1, beta: 1),
    ]

    /// A deterministic matrix of `count` values in about [-1, 1].
    static func values(_ count: Int, salt: UInt64) -> [Float] {
        var state = salt &* 0x9E37_79B9_7F4A_7C15
        return (0..<count).map { _ in
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return Float(Double(state >> 11) / Double(1 << 53) * 2 - 1)
        }
    }

    /// The worst |C - reference| relative to rms(reference), for one engine and precision.
    static func error(_ c: Case, engine: GEMMEngine, precision: Precision) -> Double {
        let aRows = c.transA ? c.k : c.m, aCols = c.transA ? c.m : c.k
        let bRows = c.transB ? c.n : c.k, bCols = c.transB ? c.k : c.n
        let lda = aCols + c.pad, ldb = bCols + c.pad, ldc = c.n + c.pad
        let a = values(aRows * lda, salt: 1), b = values(bRows * ldb, salt: 2), c0 = values(c.m * ldc, salt: 3)
        var out = c0
        GEMMEngine.$scoped.withValue(engine) {
            Float.gemm(transA: c.transA, transB: c.transB, m: c.m, n: c.n, k: c.k, alpha: c.alpha, a: a, lda: lda, b: b, ldb: ldb,
                       beta: c.beta, c: &out, ldc: ldc, precision: precision)
        }
        var worst = 0.0, squares = 0.0
        for i in 0..<c.m {
            for j in 0..<c.n {
                var sum = 0.0
                for p in 0..<c.k {
                    let x = Double(c.transA ? a[p * lda + i] : a[i * lda + p])
                    let y = Double(c.transB ? b[j * ldb + p] : b[p * ldb + j])
                    sum += x * y
                }
                let want = Double(c.alpha) * sum + Double(c.beta) * Double(c0[i * ldc + j])
                worst = max(worst, abs(Double(out[i * ldc + j]) - want))
                squares += want * want
            }
            // Padding between rows is left alone.
            for j in c.n..<ldc where out[i * ldc + j] != c0[i * ldc + j] { return .infinity }
        }
        return worst / (squares / Double(c.m * c.n)).squareRoot()
    }

    @Test("float32 through oneDNN and OpenBLAS equals the Double product to 1e-5 of its rms", arguments: cases)
    func float32(_ c: Case) {
        #expect(OneDNN.available, "oneDNN does not run here")
        for engine in [GEMMEngine.oneDNN, .openBLAS] {
            let e = Self.error(c, engine: engine, precision: .float32)
            #expect(e < 1e-5, "\(engine) \(c): error \(e) of rms")
        }
    }

    /// Rounding bounds. bf16 keeps 8 significant bits, float32 24, so round-to-nearest moves a
    /// value by at most 2⁻⁸ (bf16) or 2⁻²⁴ (float32) of itself: u and u32.
    static let u = 0x1p-8, u32 = 0x1p-24
    /// γ_n = n·u32 / (1 − n·u32): the bound on the relative error of n float32 additions in any
    /// order, relative to the sum of the terms' magnitudes (Higham, Accuracy and Stability §3.1).
    static func gamma(_ n: Int) -> Double { Double(n) * u32 / (1 - Double(n) * u32) }

    /// What a bf16 product `Float.gemm` computed, measured against two Double references, per
    /// element of C:
    /// - against the exact product of the operands rounded to bf16 (by the portable rounding, not
    ///   the kernels' own), only float32 accumulation may differ: the k products of bf16 values are
    ///   exact in float32 (8 + 8 significant bits), and the k − 1 sums, α and β·C add at most
    ///   γ_{k+2}·(|α|·Σ|ã·b̃| + |β·c|). `accumulation` is the worst |C − that| / that bound: ≤ 1.
    /// - against the exact product of the unrounded operands: |ã·b̃ − a·b| ≤ (2u + u²)·|a·b|, so
    ///   |C − exact| ≤ (2u + u²)·|α|·Σ|a·b| + γ_{k+2}·(|α|·Σ|ã·b̃| + |β·c|). `rounding` is the worst
    ///   |C − exact| / that bound: ≤ 1, and `ran` the worst |C − exact| / γ_{k+2}·(…): above 1
    ///   where the operands really were rounded.
    static func bf16Errors(_ c: Case) -> (accumulation: Double, rounding: Double, ran: Double) {
        let aRows = c.transA ? c.k : c.m, aCols = c.transA ? c.m : c.k
        let bRows = c.transB ? c.n : c.k, bCols = c.transB ? c.k : c.n
        let lda = aCols + c.pad, ldb = bCols + c.pad, ldc = c.n + c.pad
        let a = values(aRows * lda, salt: 1), b = values(bRows * ldb, salt: 2), c0 = values(c.m * ldc, salt: 3)
        func rounded(_ x: [Float]) -> [Float] {
            var bits = [UInt16](repeating: 0, count: x.count), back = [Float](repeating: 0, count: x.count)
            lf_f32_to_bf16_portable(x, &bits, x.count)
            lf_bf16_to_f32(bits, &back, x.count)
            return back
        }
        let a16 = rounded(a), b16 = rounded(b)
        var out = c0
        Float.gemm(transA: c.transA, transB: c.transB, m: c.m, n: c.n, k: c.k, alpha: c.alpha, a: a, lda: lda, b: b, ldb: ldb,
                   beta: c.beta, c: &out, ldc: ldc, precision: .bf16)
        var accumulation = 0.0, rounding = 0.0, ran = 0.0
        let alpha = Double(c.alpha), beta = Double(c.beta), g = gamma(c.k + 2)
        for i in 0..<c.m {
            for j in 0..<c.n {
                var exact = 0.0, magnitude = 0.0, onRounded = 0.0, magnitudeRounded = 0.0
                for p in 0..<c.k {
                    let ia = c.transA ? p * lda + i : i * lda + p, ib = c.transB ? j * ldb + p : p * ldb + j
                    exact += Double(a[ia]) * Double(b[ib]); magnitude += abs(Double(a[ia]) * Double(b[ib]))
                    onRounded += Double(a16[ia]) * Double(b16[ib]); magnitudeRounded += abs(Double(a16[ia]) * Double(b16[ib]))
                }
                let old = beta * Double(c0[i * ldc + j]), got = Double(out[i * ldc + j])
                let floatBound = g * (abs(alpha) * magnitudeRounded + abs(old))
                accumulation = max(accumulation, abs(got - (alpha * onRounded + old)) / floatBound)
                rounding = max(rounding, abs(got - (alpha * exact + old)) / ((2 * u + u * u) * abs(alpha) * magnitude + floatBound))
                ran = max(ran, abs(got - (alpha * exact + old)) / floatBound)
            }
            // Padding between rows is left alone.
            for j in c.n..<ldc where out[i * ldc + j] != c0[i * ldc + j] { return (.infinity, .infinity, 0) }
        }
        return (accumulation, rounding, ran)
    }

    @Test("bf16 products are the bf16-rounded operands' products with float32 accumulation: within γ_{k+2} of them, and within 2u + γ_{k+2} of the exact product",
          .enabled(if: OneDNN.available, "oneDNN does not run here"), arguments: cases)
    func bf16(_ c: Case) {
        let e = Self.bf16Errors(c)
        #expect(e.accumulation <= 1, "\(c) on the \(OneDNN.bf16Path) path: \(e.accumulation) of the float32 accumulation bound")
        #expect(e.rounding <= 1, "\(c) on the \(OneDNN.bf16Path) path: \(e.rounding) of the bf16 bound")
        // And the operands were rounded: some element is further from the exact product than
        // float32 arithmetic alone could put it.
        if c.k >= 33 { #expect(e.ran > 1, "\(c): within float32 error of the exact product; bf16 did not run") }
    }

    @Test("Linear's bf16 backward converts each operand once and equals its two bf16 products bitwise",
          .enabled(if: OneDNN.available, "oneDNN does not run here"),
          arguments: [(rows: 3000, inDim: 300, outDim: 2048), (rows: 70, inDim: 33, outDim: 96)])
    func linearBackwardBF16(_ shape: (rows: Int, inDim: Int, outDim: Int)) {
        // 3000 × 2048 values of dy: two slices of rows, as in the attention's in_proj.
        let (rows, inDim, outDim) = shape
        let dy = Self.values(rows * outDim, salt: 4), x = Self.values(rows * inDim, salt: 5)
        let w = Self.values(outDim * inDim, salt: 6), dx0 = Self.values(rows * inDim, salt: 7)
        let dw0 = Self.values(outDim * inDim, salt: 8)
        var dxFused = dx0, dwFused = dw0, dxPair = dx0, dwPair = dw0, dxNone = dx0, dwNone = dw0
        var biasFused = [Float](repeating: 0, count: outDim), biasPair = biasFused
        Linear.backward(dx: &dxFused, dWeight: &dwFused, dBias: &biasFused, dy: dy, x: x, weight: w,
                        rows: rows, inDim: inDim, outDim: outDim, precision: .bf16)
        Linear.products(dx: &dxPair, dWeight: &dwPair, dy: dy, x: x, weight: w, rows: rows, inDim: inDim, outDim: outDim,
                        precision: .bf16)
        for r in 0..<rows { for o in 0..<outDim { biasPair[o] += dy[r * outDim + o] } }
        #expect(dxFused == dxPair && dwFused == dwPair && biasFused == biasPair)
        // Without dx only the weight gradient changes.
        Linear.backward(dx: nil, dWeight: &dwNone, dBias: nil, dy: dy, x: x, weight: w,
                        rows: rows, inDim: inDim, outDim: outDim, precision: .bf16)
        #expect(dxNone == dx0 && dwNone == dwPair)
        // And it is a bf16 product: the float32 one differs.
        var dxF32 = dx0, dwF32 = dw0
        Linear.products(dx: &dxF32, dWeight: &dwF32, dy: dy, x: x, weight: w, rows: rows, inDim: inDim, outDim: outDim,
                        precision: .float32)
        #expect(dwF32 != dwPair)
    }

    @Test("A grid of bf16 products (the attention's, per chunk of trials) is the rounded operands' products within float32 accumulation",
          .enabled(if: OneDNN.available, "oneDNN does not run here"),
          arguments: [(false, true), (false, false), (true, false)])
    func bf16Grid(_ t: (transA: Bool, transB: Bool)) {
        // 3 trials × 2 heads of 45 × 45 × 20 products reading strided views of one (steps,
        // trials, 3D)-like array, written into another, as the attention does.
        let outer = 3, inner = 2, m = 45, n = 20, k = 45, alpha: Float = 0.7
        let lda = outer * 100, ldb = outer * 90, ldc = outer * 80
        let grid = GEMMGrid(outer: outer, inner: inner, a: .init(outer: 100, inner: 50), b: .init(outer: 90, inner: 45),
                            c: .init(outer: 80, inner: n))
        let aRows = t.transA ? k : m, bRows = t.transB ? n : k
        let a = Self.values(aRows * lda, salt: 9), b = Self.values(bRows * ldb, salt: 10)
        var a16 = [UInt16](repeating: 0, count: a.count), b16 = [UInt16](repeating: 0, count: b.count)
        BF16.convert(rows: 1, count: a.count, from: a, ld: 0, into: &a16)
        BF16.convert(rows: 1, count: b.count, from: b, ld: 0, into: &b16)
        let c0 = Self.values(m * ldc, salt: 11)
        var c = c0
        #expect(BF16.gemm(grid: grid, transA: t.transA, transB: t.transB, m: m, n: n, k: k, alpha: alpha,
                          a: a16, lda: lda, b: b16, ldb: ldb, beta: 1, c: &c, ldc: ldc))
        // The operands as the products saw them, widened back exactly.
        let aSeen = a16.map { Float(bitPattern: UInt32($0) << 16) }, bSeen = b16.map { Float(bitPattern: UInt32($0) << 16) }
        var accumulation = 0.0, rounding = 0.0, touched = Set<Int>()
        let g = Self.gamma(k + 2)
        for i in 0..<outer {
            for j in 0..<inner {
                let ao = i * 100 + j * 50, bo = i * 90 + j * 45, co = i * 80 + j * n
                for r in 0..<m {
                    for col in 0..<n {
                        var seen = 0.0, magnitude = 0.0, exact = 0.0
                        for p in 0..<k {
                            let ia = ao + (t.transA ? p * lda + r : r * lda + p), ib = bo + (t.transB ? col * ldb + p : p * ldb + col)
                            seen += Double(aSeen[ia]) * Double(bSeen[ib]); magnitude += abs(Double(aSeen[ia]) * Double(bSeen[ib]))
                            exact += Double(a[ia]) * Double(b[ib])
                        }
                        let index = co + r * ldc + col
                        let bound = g * (Double(alpha) * magnitude + abs(Double(c0[index])))
                        accumulation = max(accumulation, abs(Double(c[index]) - (Double(alpha) * seen + Double(c0[index]))) / bound)
                        rounding = max(rounding, abs(Double(c[index]) - (Double(alpha) * exact + Double(c0[index]))) / bound)
                        touched.insert(index)
                    }
                }
            }
        }
        #expect(accumulation <= 1, "\(accumulation) of the float32 accumulation bound on the \(OneDNN.bf16Path) path")
        #expect(rounding > 1, "the grid's products are float32-exact: bf16 did not run")
        // Outside the grid's matrices C is left alone.
        #expect((0..<c.count).allSatisfy { touched.contains($0) || c[$0] == c0[$0] })
    }

    @Test("float32 → bf16 rounds to nearest even, keeps NaN and signed zeros, flushes subnormals")
    func conversion() {
        let inputs: [Float] = [1, -1, 1 + 1.0 / 256, 1 + 3.0 / 512, 0, -Float(0), .infinity, -.infinity, .nan, 1e-40, 3.1415927]
        var out = [UInt16](repeating: 0, count: inputs.count)
        lf_f32_to_bf16(inputs, &out, inputs.count)
        let back = out.map { Float(bitPattern: UInt32($0) << 16) }
        #expect(back[0] == 1 && back[1] == -1)
        #expect(back[2] == 1, "1 + 2⁻⁸ is a tie: rounds to the even 1")
        #expect(back[3] == 1 + 1.0 / 128, "1 + 3·2⁻⁹ rounds up to 1 + 2⁻⁷")
        #expect(back[4] == 0 && back[5].sign == .minus && back[6] == .infinity && back[7] == -.infinity && back[8].isNaN)
        #expect(back[9] == 0, "subnormals flush to zero, as vcvtne2ps2bf16 does")
        #expect(abs(back[10] - 3.1415927) < 0.0079)
    }

    @Test("The conversion the kernels use gives the portable rounding's bits, for every kind of float32")
    func conversionPaths() {
        // Random bit patterns (every exponent, NaNs and subnormals among them), ties, and the
        // edges of the range.
        var state: UInt64 = 0x5DEE_CE66_D
        var inputs: [Float] = (0..<100_000).map { _ in
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return Float(bitPattern: UInt32(truncatingIfNeeded: state >> 29))
        }
        inputs += [.greatestFiniteMagnitude, -.greatestFiniteMagnitude, .leastNormalMagnitude, .leastNonzeroMagnitude,
                   Float(bitPattern: 0x7f7f_8000), Float(bitPattern: 0x3f80_8000), Float(bitPattern: 0x3f81_8000), 0, -0]
        var fast = [UInt16](repeating: 0, count: inputs.count), portable = fast
        lf_f32_to_bf16(inputs, &fast, inputs.count)
        lf_f32_to_bf16_portable(inputs, &portable, inputs.count)
        let differing = zip(fast, portable).filter { $0 != $1 }.count
        #expect(differing == 0, "\(differing) of \(inputs.count) conversions differ (instructions \(lf_cpu_has_avx512_bf16() != 0 && OneDNN.bf16Path == .hardware ? "used" : "not used"))")
        var back = [Float](repeating: 0, count: inputs.count)
        lf_bf16_to_f32(portable, &back, inputs.count)
        #expect(zip(back, portable).allSatisfy { $0.bitPattern == UInt32($1) << 16 })
    }
}
