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

    @Test("bf16 operands, float32 accumulation: within 2e-2 of the rms (the rounding of the operands to 8 bits)",
          .enabled(if: OneDNN.bf16Available, "this CPU has no AVX512-BF16: bf16 products run in float32"), arguments: cases)
    func bf16(_ c: Case) {
        let e = Self.error(c, engine: .automatic, precision: .bf16)
        #expect(e < 2e-2, "\(c): error \(e) of rms")
        // And it really ran in bf16: float32 is 1000 times closer.
        if c.k >= 33 { #expect(e > 1e-4, "\(c): error \(e) is float32-sized; bf16 did not run") }
    }

    @Test("Linear's bf16 backward converts each operand once and equals its two bf16 products bitwise",
          .enabled(if: OneDNN.bf16Available, "this CPU has no AVX512-BF16: bf16 products run in float32"),
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

    @Test("A grid of bf16 products (the attention's, per chunk of trials) equals its Double products within 2e-2 of the rms",
          .enabled(if: OneDNN.bf16Available, "this CPU has no AVX512-BF16: bf16 products run in float32"),
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
        var worst = 0.0, squares = 0.0, touched = Set<Int>()
        for i in 0..<outer {
            for j in 0..<inner {
                let ao = i * 100 + j * 50, bo = i * 90 + j * 45, co = i * 80 + j * n
                for r in 0..<m {
                    for col in 0..<n {
                        var sum = 0.0
                        for p in 0..<k {
                            let x = Double(t.transA ? a[ao + p * lda + r] : a[ao + r * lda + p])
                            let y = Double(t.transB ? b[bo + col * ldb + p] : b[bo + p * ldb + col])
                            sum += x * y
                        }
                        let index = co + r * ldc + col
                        let want = Double(alpha) * sum + Double(c0[index])
                        worst = max(worst, abs(Double(c[index]) - want)); squares += want * want
                        touched.insert(index)
                    }
                }
            }
        }
        let rms = (squares / Double(touched.count)).squareRoot()
        #expect(worst / rms < 2e-2 && worst / rms > 1e-5, "error \(worst / rms) of rms")
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
}
