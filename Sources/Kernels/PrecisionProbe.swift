import Foundation

/// Times the products of a model in float32 and in bf16 on this CPU, so that `precision: auto`
/// runs the faster one: the measurement the choice rests on, not a belief about the CPU (bf16
/// is slower than float32 on some CPUs with AVX512-BF16, and always where it is emulated).
public enum PrecisionProbe {
    /// One product C[m, n] = A[m, k]·B[n, k]ᵀ as the layers run it (a forward pass); the probe
    /// also times its two backward products, dA = dC·B and dB = dCᵀ·A.
    public struct Shape: Sendable, Equatable {
        public let m: Int, n: Int, k: Int
        public init(m: Int, n: Int, k: Int) { self.m = m; self.n = n; self.k = k }
    }

    /// Seconds for one pass over every shape (forward and both backward products), the fastest
    /// of several repetitions, in each precision.
    public struct Timing: Codable, Sendable, Equatable {
        public var float32: Double
        public var bf16: Double
        /// Where the bf16 timing ran: "hardware (AVX512-BF16)" or "emulated (…)".
        public var bf16Path: String
        /// The faster precision (float32 on a tie).
        public var faster: Precision { bf16 < float32 ? .bf16 : .float32 }
        /// "float32 12.30 ms, bf16 31.00 ms; bf16 emulated (…)".
        public var summary: String {
            String(format: "float32 %.2f ms, bf16 %.2f ms; bf16 ", 1e3 * float32, 1e3 * bf16) + bf16Path
        }
    }

    /// The CPU's model name (/proc/cpuinfo), or "unknown CPU": the machine timings are taken on.
    public static let cpuModel: String = {
        let text = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)) ?? ""
        let line = text.split(separator: "\n").first { $0.hasPrefix("model name") }
        return line.flatMap { $0.split(separator: ":", maxSplits: 1).last }.map { $0.trimmingCharacters(in: .whitespaces) } ?? "unknown CPU"
    }()

    /// Times `shapes` in both precisions: one warm-up round each (oneDNN makes its primitives),
    /// then up to `repeats` rounds alternating float32 and bf16, so that a change in the
    /// machine's load falls on both, the fastest round of each kept. Rounds stop early once
    /// `budget` seconds have gone to them (after one of each): the main job's products take
    /// about 0.1 s in all, a paper-size run's two rounds of each (15 s on one Zen 3 core), not six. The
    /// operands are small seeded values; their size is the shapes' own.
    public static func measure(_ shapes: [Shape], repeats: Int = 5, budget: Double = 1) -> Timing {
        let shapes = shapes.filter { $0.m > 0 && $0.n > 0 && $0.k > 0 }
        let biggest = shapes.map { max($0.m * $0.k, $0.n * $0.k, $0.m * $0.n) }.max() ?? 1
        let a = Buffer<Float>(count: biggest), b = Buffer<Float>(count: biggest), c = Buffer<Float>(count: biggest)
        let da = Buffer<Float>(count: biggest), db = Buffer<Float>(count: biggest)
        for i in 0..<biggest {
            a[i] = Float((i * 7919) % 1000) / 1000 - 0.5
            b[i] = Float((i * 104_729) % 1000) / 1000 - 0.5
        }
        func round(_ precision: Precision) -> Double {
            let started = DispatchTime.now().uptimeNanoseconds
            for s in shapes {
                // forward: C = A·Bᵀ; backward: dA = dC·B, dB = dCᵀ·A (C standing in for dC).
                Float.gemm(transA: false, transB: true, m: s.m, n: s.n, k: s.k, alpha: 1, a: a.ptr, lda: s.k, b: b.ptr, ldb: s.k,
                           beta: 0, c: c.ptr, ldc: s.n, precision: precision)
                Float.gemm(transA: false, transB: false, m: s.m, n: s.k, k: s.n, alpha: 1, a: c.ptr, lda: s.n, b: b.ptr, ldb: s.k,
                           beta: 0, c: da.ptr, ldc: s.k, precision: precision)
                Float.gemm(transA: true, transB: false, m: s.n, n: s.k, k: s.m, alpha: 1, a: c.ptr, lda: s.n, b: a.ptr, ldb: s.k,
                           beta: 0, c: db.ptr, ldc: s.k, precision: precision)
            }
            return Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9
        }
        _ = round(.float32)
        _ = round(.bf16)
        var best = (float32: Double.infinity, bf16: Double.infinity), spent = 0.0
        for _ in 0..<max(repeats, 1) where best.float32.isInfinite || spent < budget {
            let float32 = round(.float32), bf16 = round(.bf16)
            best = (min(best.float32, float32), min(best.bf16, bf16))
            spent += float32 + bf16
        }
        return Timing(float32: best.float32, bf16: best.bf16, bf16Path: OneDNN.bf16Path.description)
    }
}
