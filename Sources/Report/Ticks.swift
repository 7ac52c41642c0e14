import Foundation

// MARK: - Ticks

/// Axis ticks: the (possibly extended) domain, the tick values and their labels.
public struct Ticks: Sendable {
    public var lo: Double
    public var hi: Double
    public var values: [Double]
    public var step: Double
    public var labels: [String]
}

/// Tick values and labels (1-2-5 multiples, log decades), data domains and linear/log scales.
extension Plots {
    // MARK: Nice numbers

    /// Ticks at multiples of 1, 2 or 5 × 10^k: 4–7 of them when `maxCount` allows, as close to
    /// 5 as possible. With `extend` the domain grows to the enclosing multiples of the step
    /// (d3's `nice`), otherwise ticks stay inside [lo, hi]. `minStep` (e.g. 1 for indices)
    /// bounds the step from below.
    public static func niceTicks(_ lo: Double, _ hi: Double, extend: Bool, maxCount: Int = 7,
                                 minStep: Double = 0) -> Ticks {
        var lo = lo.isFinite ? lo : 0, hi = hi.isFinite ? hi : 1
        if lo > hi { swap(&lo, &hi) }
        if lo == hi {
            let p = lo == 0 ? 1 : abs(lo) * 0.1
            lo -= p
            hi += p
        }
        let span = hi - lo
        let maxCount = max(2, maxCount)
        let e = Int(floor(log10(span)))
        var best: (score: Double, ia: Int, n: Int, m: Double, k: Int)?
        for k in (e - 2)...(e + 2) {
            for m in [1.0, 2, 5] {
                let step = scaled(m, k)
                if step < minStep * (1 - 1e-12) { continue }
                let ia: Double, ib: Double
                if extend {
                    ia = floor(lo / step + 1e-9)
                    ib = ceil(hi / step - 1e-9)
                } else {
                    ia = ceil(lo / step - 1e-9)
                    ib = floor(hi / step + 1e-9)
                }
                let n = Int(ib - ia) + 1
                if n < 1 || n > maxCount { continue }
                var score = abs(Double(n) - 5)
                if n < 4 { score += Double(4 - n) * 2 }
                if extend { score += 6 * ((ib - ia) * step / span - 1) }
                if best == nil || score < best!.score - 1e-12 {
                    best = (score, Int(ia), n, m, k)
                }
            }
        }
        guard let b = best else {
            // Only reachable with absurd minStep: fall back to the two ends.
            return Ticks(lo: lo, hi: hi, values: [lo, hi], step: span,
                         labels: [tickLabel(lo, step: span, maxAbs: max(abs(lo), abs(hi))),
                                  tickLabel(hi, step: span, maxAbs: max(abs(lo), abs(hi)))])
        }
        let values = (0..<b.n).map { scaled(Double(b.ia + $0) * b.m, b.k) }
        let step = scaled(b.m, b.k)
        let dlo = extend ? min(lo, values.first!) : lo
        let dhi = extend ? max(hi, values.last!) : hi
        let maxAbs = values.map(abs).max() ?? 0
        return Ticks(lo: dlo, hi: dhi, values: values, step: step,
                     labels: values.map { tickLabel($0, step: step, maxAbs: maxAbs) })
    }

    /// m × 10^k computed so that decimal steps come out exact (3 × 0.1 → 0.3, not 0.30000000000000004).
    static func scaled(_ m: Double, _ k: Int) -> Double {
        k >= 0 ? m * pow(10, Double(k)) : m / pow(10, Double(-k))
    }

    static let superscripts: [Character: Character] = [
        "0": "⁰", "1": "¹", "2": "²", "3": "³", "4": "⁴", "5": "⁵", "6": "⁶", "7": "⁷",
        "8": "⁸", "9": "⁹", "-": "⁻",
    ]

    static func power(_ e: Int) -> String {
        "10" + String(String(e).map { superscripts[$0] ?? $0 })
    }

    /// Typographic minus instead of a hyphen.
    static func minus(_ s: String) -> String { s.replacingOccurrences(of: "-", with: "−") }

    /// Compact label of tick `v` on an axis with spacing `step`.
    public static func tickLabel(_ v: Double, step: Double, maxAbs: Double) -> String {
        guard v.isFinite else { return "" }
        if abs(v) < step * 1e-6 { return "0" }
        let stepExp = Int(floor(log10(step) + 1e-9))
        if maxAbs < 1e5 && maxAbs >= 1e-3 {
            return minus(String(format: "%.\(max(0, -stepExp))f", v))
        }
        // One exponent for the whole axis (that of the largest tick), so labels line up.
        let e = Int(floor(log10(maxAbs) + 1e-9))
        let mant = v / scaled(1, e)
        let md = min(3, max(0, e - stepExp))
        let ms = String(format: "%.\(md)f", mant)
        return minus(ms) + "×" + power(e)
    }

    /// Ticks for a log axis on [lo, hi] (both > 0): powers of ten when the range spans two
    /// decades or more, otherwise 1-2-5 (or 1…9) multiples, otherwise linear nice ticks.
    public static func logTicks(_ lo: Double, _ hi: Double, maxCount: Int = 7) -> Ticks {
        let maxCount = max(2, maxCount)
        let l0 = log10(lo), l1 = log10(hi)
        var values: [Double] = []
        if l1 - l0 >= 2 {
            let k0 = Int(ceil(l0 - 1e-9)), k1 = Int(floor(l1 + 1e-9))
            var stride = 1
            while (k1 - k0) / stride + 1 > maxCount { stride += 1 }
            values = (k0...k1).filter { ($0 - k0) % stride == 0 }.map { scaled(1, $0) }
        } else {
            for mults in [[1.0, 2, 5], [1.0, 2, 3, 4, 5, 6, 7, 8, 9]] {
                var v: [Double] = []
                for k in Int(floor(l0)) - 1...Int(ceil(l1)) + 1 {
                    for m in mults {
                        let x = scaled(m, k)
                        if x >= lo * (1 - 1e-9) && x <= hi * (1 + 1e-9) { v.append(x) }
                    }
                }
                if v.count >= 3 && v.count <= maxCount { values = v; break }
                if v.count > maxCount { values = Array(v.prefix(maxCount)); break }
            }
            if values.count < 2 {
                values = niceTicks(lo, hi, extend: false, maxCount: maxCount).values.filter { $0 > 0 }
            }
        }
        let step = values.count > 1 ? values[1] - values[0] : hi - lo
        return Ticks(lo: lo, hi: hi, values: values, step: step, labels: values.map(logLabel))
    }

    static func logLabel(_ v: Double) -> String {
        let e = Int(floor(log10(v) + 1e-9))
        let mant = v / scaled(1, e)
        let mr = (mant * 10).rounded() / 10
        if (-3...3).contains(e) {
            let decimals = max(0, -e + (mr == mr.rounded() ? 0 : 1))
            return String(format: "%.\(decimals)f", v)
        }
        let ms = mr == mr.rounded() ? String(Int(mr)) : String(format: "%.1f", mr)
        return ms == "1" ? power(e) : ms + "×" + power(e)
    }

    /// The smallest of 1, 1.5, 2, 2.5, 3, 4, 5, 6, 8 × 10^k at or above `v` (1 for v ≤ 0).
    static func niceCeiling(_ v: Double) -> Double {
        guard v.isFinite, v > 0 else { return 1 }
        let k = Int(floor(log10(v)))
        for e in [k, k + 1] {
            for m in [1.0, 1.5, 2, 2.5, 3, 4, 5, 6, 8] where scaled(m, e) >= v * (1 - 1e-9) { return scaled(m, e) }
        }
        return scaled(1, k + 1)
    }

    /// A short label for a single value (no shared step): "1.5", "10", "0.25", "2×10⁻⁵".
    static func compact(_ v: Double) -> String {
        guard v.isFinite else { return "" }
        if v == v.rounded() && abs(v) < 1e6 { return minus(String(Int(v))) }
        if abs(v) >= 1e-3 && abs(v) < 1e6 {
            var s = String(format: "%.3f", v)
            while s.hasSuffix("0") { s.removeLast() }
            if s.hasSuffix(".") { s.removeLast() }
            return minus(s)
        }
        return tickLabel(v, step: abs(v), maxAbs: abs(v)).replacingOccurrences(of: "1×", with: "")
    }

    /// Extends the tick domain where data come within `fraction` of the span of its ends, so
    /// that markers do not sit on the axes; the ticks themselves stay where they are.
    static func padded(_ t: Ticks, data: (Double, Double), _ fraction: Double = 0.03) -> Ticks {
        var t = t
        let p = (t.hi - t.lo) * fraction
        t.lo = min(t.lo, data.0 - p)
        t.hi = max(t.hi, data.1 + p)
        return t
    }

    // MARK: Domains and scales

    static func extent<S: Sequence>(_ values: S, positive: Bool = false) -> (Double, Double)? where S.Element == Double {
        var lo = Double.infinity, hi = -Double.infinity
        for v in values where v.isFinite && (!positive || v > 0) {
            lo = min(lo, v)
            hi = max(hi, v)
        }
        return lo <= hi ? (lo, hi) : nil
    }

    /// A non-degenerate domain: empty data gives [0, 1] ([1, 10] on log axes), a constant gets
    /// ±10 % (±1 at zero, ×/÷ √10 on log axes).
    static func domain(_ e: (Double, Double)?, log: Bool = false) -> (Double, Double) {
        guard let (lo, hi) = e else { return log ? (1, 10) : (0, 1) }
        if log {
            if hi / lo < 1.0001 { return (lo / 3.1623, hi * 3.1623) }
            let pad = pow(hi / lo, 0.04)
            return (lo / pad, hi * pad)
        }
        if hi - lo <= max(abs(lo), abs(hi)) * 1e-12 {
            let p = lo == 0 ? 1 : abs(lo) * 0.1
            return (lo - p, hi + p)
        }
        return (lo, hi)
    }

    struct Scale {
        var d0: Double, d1: Double, r0: Double, r1: Double
        var log = false

        func callAsFunction(_ v: Double) -> Double {
            let t: Double
            if log {
                guard v > 0 else { return .nan }
                t = (Foundation.log10(v) - Foundation.log10(d0)) / (Foundation.log10(d1) - Foundation.log10(d0))
            } else {
                t = (v - d0) / (d1 - d0)
            }
            return r0 + t * (r1 - r0)
        }
    }
}
