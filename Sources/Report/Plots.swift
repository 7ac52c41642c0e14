import Foundation

/// One named curve of a line plot.
public struct Series: Sendable {
    public var name: String
    public var x: [Double]
    public var y: [Double]
    public var dashed: Bool

    public init(name: String, x: [Double], y: [Double], dashed: Bool = false) {
        self.name = name
        self.x = x
        self.y = y
        self.dashed = dashed
    }
}

// MARK: - Colours

/// Colour-blind-safe palettes and colormaps.
public enum Colors {
    /// Okabe–Ito, reordered so that the strongest contrasts on white come first (yellow last).
    public static let okabeIto = ["#0072B2", "#D55E00", "#009E73", "#CC79A7",
                                  "#E69F00", "#56B4E9", "#000000", "#F0E442"]

    /// Colour and dash pattern of category `i`: the eight Okabe–Ito colours, then the same
    /// colours again with dashes (then dots) so that up to 24 categories stay distinct.
    public static func category(_ i: Int) -> (color: String, dash: String?) {
        let i = max(0, i)
        let color = okabeIto[i % okabeIto.count]
        switch (i / okabeIto.count) % 3 {
        case 0: return (color, nil)
        case 1: return (color, "5 3")
        default: return (color, "1.5 2.5")
        }
    }

    /// Viridis anchors (matplotlib's colormap at 0, 1/8, …, 1).
    static let viridisAnchors: [(Double, Double, Double)] = [
        (68, 1, 84), (71, 45, 123), (59, 82, 139), (44, 114, 142), (33, 145, 140),
        (40, 174, 128), (94, 201, 98), (173, 220, 48), (253, 231, 37),
    ]

    /// ColorBrewer RdBu reversed: blue for negative, near-white at the centre, red for positive.
    static let divergingAnchors: [(Double, Double, Double)] = [
        (5, 48, 97), (33, 102, 172), (67, 147, 195), (146, 197, 222), (209, 229, 240),
        (247, 247, 247),
        (253, 219, 199), (244, 165, 130), (214, 96, 77), (178, 24, 43), (103, 0, 31),
    ]

    /// Perceptually uniform sequential map (viridis), `t` in [0, 1].
    public static func viridis(_ t: Double) -> String { interpolate(viridisAnchors, t) }

    /// Diverging map, `t` in [0, 1] with 0.5 the neutral centre.
    public static func diverging(_ t: Double) -> String { interpolate(divergingAnchors, t) }

    static func interpolate(_ anchors: [(Double, Double, Double)], _ t: Double) -> String {
        let t = t.isFinite ? min(1, max(0, t)) : 0.5
        let pos = t * Double(anchors.count - 1)
        let i = min(anchors.count - 2, Int(pos))
        let f = pos - Double(i)
        let a = anchors[i], b = anchors[i + 1]
        return hex(a.0 + (b.0 - a.0) * f, a.1 + (b.1 - a.1) * f, a.2 + (b.2 - a.2) * f)
    }

    static func hex(_ r: Double, _ g: Double, _ b: Double) -> String {
        let digits = Array("0123456789abcdef")
        var s = "#"
        for c in [r, g, b] {
            let v = Int(min(255, max(0, c.rounded())))
            s.append(digits[v / 16])
            s.append(digits[v % 16])
        }
        return s
    }
}

// MARK: - Ticks

/// Axis ticks: the (possibly extended) domain, the tick values and their labels.
public struct Ticks: Sendable {
    public var lo: Double
    public var hi: Double
    public var values: [Double]
    public var step: Double
    public var labels: [String]
}

public enum Plots {
    // Typography and ink.
    static let tickSize = 11.0
    static let labelSize = 12.0
    static let titleSize = 12.5
    static let ink = "#222"
    static let axisInk = "#333"
    static let gridInk = "#ebebeb"
    static let pad = 6.0
    static let tickLength = 4.0

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

    // MARK: Layout pieces

    static func fit(_ s: String, size: Double, width: Double) -> String {
        if SVG.textWidth(s, size: size) <= width { return s }
        var chars = Array(s)
        while !chars.isEmpty && SVG.textWidth(String(chars) + "…", size: size) > width { chars.removeLast() }
        return String(chars) + "…"
    }

    /// Title (and subtitle) at the top left; returns the y below them.
    static func header(_ w: inout SVGWriter, title: String, subtitle: String?) -> Double {
        var y = pad
        w.text(fit(title, size: titleSize, width: w.width - 2 * pad), x: pad, y: y + SVG.ascent(titleSize),
               cls: "panel-title", size: titleSize, weight: "600", fill: "#111")
        y += SVG.lineBox(titleSize)
        if let subtitle, !subtitle.isEmpty {
            y += 1
            w.text(fit(subtitle, size: tickSize, width: w.width - 2 * pad), x: pad, y: y + SVG.ascent(tickSize),
                   cls: "subtitle", size: tickSize, fill: "#555")
            y += SVG.lineBox(tickSize)
        }
        return y
    }

    /// Space below the plot area taken by x ticks, their labels and the axis label.
    static let bottomMargin = tickLength + 3 + SVG.lineBox(tickSize) + 5 + SVG.lineBox(labelSize) + pad

    static func leftMargin(tickLabels: [String]) -> Double {
        let widest = tickLabels.map { SVG.textWidth($0, size: tickSize) }.max() ?? 0
        return pad + SVG.lineBox(labelSize) + 6 + widest + 2 + tickLength
    }

    /// Ticks for a horizontal axis whose labels must not collide at plot width `width`.
    static func xTicks(_ lo: Double, _ hi: Double, width: Double, extend: Bool, minStep: Double = 0) -> Ticks {
        var chosen = niceTicks(lo, hi, extend: extend, maxCount: 7, minStep: minStep)
        for maxCount in stride(from: 7, through: 2, by: -1) {
            let t = niceTicks(lo, hi, extend: extend, maxCount: maxCount, minStep: minStep)
            chosen = t
            guard t.values.count > 1 else { break }
            let widest = t.labels.map { SVG.textWidth($0, size: tickSize) }.max() ?? 0
            let spacing = width * (t.values[1] - t.values[0]) / (t.hi - t.lo)
            if spacing >= widest + 8 { break }
        }
        return chosen
    }

    /// Most ticks a vertical axis of height `height` can label without collisions.
    static func maxYTicks(_ height: Double) -> Int {
        max(2, min(7, Int(height / (SVG.lineBox(tickSize) + 5)) + 1))
    }

    static func drawLeftAxis(_ w: inout SVGWriter, _ s: Scale, _ t: Ticks, x: Double, gridTo: Double? = nil) {
        for (v, label) in zip(t.values, t.labels) {
            let y = s(v)
            guard y.isFinite else { continue }
            if let gx = gridTo { w.line(x, y, gx, y, stroke: gridInk) }
            w.line(x - tickLength, y, x, y, stroke: axisInk, width: 0.8)
            w.text(label, x: x - tickLength - 2, y: y + 0.35 * tickSize, cls: "tick-label", anchor: .end, fill: "#333")
        }
        w.line(x, s.r0, x, s.r1, stroke: axisInk, width: 0.8)
    }

    static func drawBottomAxis(_ w: inout SVGWriter, _ s: Scale, _ t: Ticks, y: Double, labels: Bool = true,
                               gridTo: Double? = nil, spine: String = axisInk) {
        for (v, label) in zip(t.values, t.labels) {
            let x = s(v)
            guard x.isFinite else { continue }
            if let gy = gridTo { w.line(x, y, x, gy, stroke: gridInk) }
            w.line(x, y, x, y + tickLength, stroke: spine, width: 0.8)
            if labels {
                w.text(label, x: x, y: y + tickLength + 3 + SVG.ascent(tickSize), cls: "tick-label",
                       anchor: .middle, fill: "#333")
            }
        }
        w.line(s.r0, y, s.r1, y, stroke: spine, width: 0.8)
    }

    static func xAxisLabel(_ w: inout SVGWriter, _ label: String, left: Double, right: Double) {
        let y = w.height - pad - SVG.lineBox(labelSize) + SVG.ascent(labelSize)
        w.text(fit(label, size: labelSize, width: w.width - 2 * pad), x: (left + right) / 2, y: y,
               cls: "axis-label", size: labelSize, anchor: .middle)
    }

    static func yAxisLabel(_ w: inout SVGWriter, _ label: String, top: Double, bottom: Double) {
        w.text(fit(label, size: labelSize, width: bottom - top + 20), x: pad + SVG.ascent(labelSize),
               y: (top + bottom) / 2, cls: "axis-label", size: labelSize, anchor: .middle, rotate: true)
    }

    static func noData(_ w: inout SVGWriter, x: Double, y: Double) {
        w.text("no data", x: x, y: y, cls: "note", size: labelSize, anchor: .middle, fill: "#888")
    }

    struct LegendEntry {
        var name: String
        var color: String
        var dash: String?
        var dot = false
        var bar = false
    }

    static let legendRow = 16.0
    static let legendSample = 20.0
    static let legendNameWidth = 130.0

    static func legendWidth(_ entries: [LegendEntry]) -> Double {
        guard !entries.isEmpty else { return 0 }
        let widest = entries.map { SVG.textWidth(fit($0.name, size: tickSize, width: legendNameWidth), size: tickSize) }.max() ?? 0
        return legendSample + 5 + widest
    }

    static func drawSample(_ w: inout SVGWriter, _ e: LegendEntry, x: Double, y: Double) {
        if e.bar {
            w.rect(x + 6, y - 5, 8, 10, fill: e.color)
        } else {
            w.line(x, y, x + legendSample, y, stroke: e.color, width: 2, dash: e.dash)
            if e.dot { w.circle(x + 2, y, 2.6, fill: e.color, stroke: "#fff", strokeWidth: 0.6) }
        }
    }

    /// A vertical legend at (x, top), at most `maxRows` rows ("+N more" in the last).
    static func drawLegend(_ w: inout SVGWriter, _ entries: [LegendEntry], x: Double, top: Double, maxRows: Int) {
        let rows = max(1, maxRows)
        let shown = entries.count > rows ? Array(entries.prefix(rows - 1)) : entries
        for (i, e) in shown.enumerated() {
            let y = top + legendRow * (Double(i) + 0.5)
            drawSample(&w, e, x: x, y: y)
            w.text(fit(e.name, size: tickSize, width: legendNameWidth), x: x + legendSample + 5,
                   y: y + 0.35 * tickSize, cls: "legend-label")
        }
        if entries.count > shown.count {
            let y = top + legendRow * (Double(shown.count) + 0.5)
            w.text("+\(entries.count - shown.count) more", x: x + legendSample + 5, y: y + 0.35 * tickSize,
                   cls: "legend-label", fill: "#666")
        }
    }

    /// A one-row legend starting at (x, y-centre); returns its width.
    @discardableResult
    static func drawLegendRow(_ w: inout SVGWriter, _ entries: [LegendEntry], x: Double, y: Double) -> Double {
        var cx = x
        for e in entries {
            drawSample(&w, e, x: cx, y: y)
            w.text(e.name, x: cx + legendSample + 5, y: y + 0.35 * tickSize, cls: "legend-label")
            cx += legendSample + 5 + SVG.textWidth(e.name, size: tickSize) + 16
        }
        return cx - x
    }

    /// Keeps first/min/max/last per pixel column when a curve has far more points than pixels.
    static func decimate(_ pts: [(Double, Double)], columns: Double) -> [(Double, Double)] {
        guard Double(pts.count) > 4 * columns else { return pts }
        var out: [(Double, Double)] = []
        out.reserveCapacity(Int(columns) * 4 + 8)
        var bucket: [(Double, Double)] = []
        var current = Double.nan
        func flush() {
            guard !bucket.isEmpty else { return }
            let finite = bucket.filter { $0.0.isFinite && $0.1.isFinite }
            if finite.count < bucket.count {
                // A break inside this column: keep the break.
                out.append(contentsOf: finite.prefix(1))
                out.append((.nan, .nan))
                out.append(contentsOf: finite.suffix(1))
            } else if bucket.count <= 4 {
                out.append(contentsOf: bucket)
            } else {
                let lo = bucket.min { $0.1 < $1.1 }!, hi = bucket.max { $0.1 < $1.1 }!
                out.append(bucket.first!)
                out.append(contentsOf: lo.0 <= hi.0 ? [lo, hi] : [hi, lo])
                out.append(bucket.last!)
            }
            bucket.removeAll(keepingCapacity: true)
        }
        for p in pts {
            let c = p.0.isFinite ? p.0.rounded(.down) : current
            if c != current { flush(); current = c }
            bucket.append(p)
        }
        flush()
        return out
    }

    // MARK: - Line plot

    /// Training curves: one line per series, legend at the right, optional vertical marker
    /// (e.g. the best epoch). Non-finite points (and non-positive ones with `logY`) break the line.
    public static func lines(title: String, subtitle: String? = nil, xLabel: String, yLabel: String,
                             series: [Series], logY: Bool = false, marker: (x: Double, label: String)? = nil,
                             width: Int = 520, height: Int = 300) -> String {
        let W = Double(width), H = Double(height)
        var w = SVGWriter(width: W, height: H)
        let top = header(&w, title: title, subtitle: subtitle) + 10

        var xs: [Double] = [], ys: [Double] = []
        for s in series {
            for i in 0..<min(s.x.count, s.y.count) where s.x[i].isFinite && s.y[i].isFinite && (!logY || s.y[i] > 0) {
                xs.append(s.x[i])
                ys.append(s.y[i])
            }
        }
        let hasData = !xs.isEmpty
        if let m = marker, m.x.isFinite { xs.append(m.x) }

        let entries = series.enumerated().map { i, s -> LegendEntry in
            let c = Colors.category(i)
            return LegendEntry(name: s.name, color: c.color, dash: s.dashed ? "6 3" : c.dash)
        }
        let bottom = H - bottomMargin
        let plotH = max(10, bottom - top)

        let (ylo, yhi) = domain(extent(ys), log: logY)
        let yt = logY ? logTicks(ylo, yhi, maxCount: maxYTicks(plotH))
                      : niceTicks(ylo, yhi, extend: true, maxCount: maxYTicks(plotH))
        let left = leftMargin(tickLabels: yt.labels)
        let legendW = legendWidth(entries)
        let right = W - (legendW > 0 ? legendW + 2 * pad + 8 : pad + 14)
        let (xlo, xhi) = domain(extent(xs))
        let xt = xTicks(xlo, xhi, width: right - left, extend: true)

        let sx = Scale(d0: xt.lo, d1: xt.hi, r0: left, r1: right)
        let sy = Scale(d0: yt.lo, d1: yt.hi, r0: bottom, r1: top, log: logY)

        drawLeftAxis(&w, sy, yt, x: left, gridTo: right)
        drawBottomAxis(&w, sx, xt, y: bottom)

        if !hasData { noData(&w, x: (left + right) / 2, y: (top + bottom) / 2) }

        for (i, s) in series.enumerated() {
            let n = min(s.x.count, s.y.count)
            var pts: [(Double, Double)] = []
            pts.reserveCapacity(n)
            for j in 0..<n {
                let ok = s.x[j].isFinite && s.y[j].isFinite && (!logY || s.y[j] > 0)
                pts.append(ok ? (sx(s.x[j]), sy(s.y[j])) : (.nan, .nan))
            }
            pts = decimate(pts, columns: right - left)
            let e = entries[i]
            w.polyline(pts, stroke: e.color, width: 1.6, dash: e.dash)
            // A lone finite point between breaks would be invisible as a line: dot it.
            for j in pts.indices where pts[j].0.isFinite
                && (j == 0 || !pts[j - 1].0.isFinite) && (j == pts.count - 1 || !pts[j + 1].0.isFinite) {
                w.circle(pts[j].0, pts[j].1, 2, fill: e.color)
            }
        }

        if let m = marker, m.x.isFinite {
            let x = sx(m.x)
            w.line(x, top, x, bottom, stroke: "#555", width: 1, dash: "3 3")
            let label = fit(m.label, size: tickSize, width: (right - left) * 0.6)
            let lw = SVG.textWidth(label, size: tickSize)
            let y = top + SVG.ascent(tickSize) + 1
            if x + 4 + lw <= right {
                w.text(label, x: x + 4, y: y, cls: "marker-label", fill: "#444", halo: true)
            } else {
                w.text(label, x: x - 4, y: y, cls: "marker-label", anchor: .end, fill: "#444", halo: true)
            }
        }

        if legendW > 0 {
            let rows = max(1, Int((bottom - top) / legendRow))
            drawLegend(&w, entries, x: right + pad + 8, top: top, maxRows: min(12, rows))
        }
        xAxisLabel(&w, xLabel, left: left, right: right)
        yAxisLabel(&w, yLabel, top: top, bottom: bottom)
        return w.document(title: title, description: subtitle)
    }

    // MARK: - Heatmap

    /// A matrix as coloured cells (row 0 at the top) with a colourbar. Matrices larger than
    /// `maxCells` in either direction are shown as block means (stated in the subtitle).
    /// `diverging` uses a blue–white–red map symmetric around 0, otherwise viridis.
    public static func heatmap(title: String, subtitle: String? = nil, values: [Double], rows: Int, columns: Int,
                               rowLabel: String, columnLabel: String, valueLabel: String = "",
                               diverging: Bool, maxCells: Int = 96,
                               width: Int = 440, height: Int = 400) -> String {
        let W = Double(width), H = Double(height)
        var w = SVGWriter(width: W, height: H)
        let rows = max(0, rows), columns = max(0, columns)
        let maxCells = max(1, maxCells)
        let fr = max(1, (rows + maxCells - 1) / maxCells), fc = max(1, (columns + maxCells - 1) / maxCells)
        let R = (rows + fr - 1) / fr, C = (columns + fc - 1) / fc

        // Block means, ignoring non-finite and missing entries.
        var cells = [Double](repeating: .nan, count: R * C)
        for br in 0..<R {
            for bc in 0..<C {
                var sum = 0.0, n = 0
                for r in (br * fr)..<min(rows, (br + 1) * fr) {
                    for c in (bc * fc)..<min(columns, (bc + 1) * fc) {
                        let k = r * columns + c
                        if k < values.count, values[k].isFinite { sum += values[k]; n += 1 }
                    }
                }
                if n > 0 { cells[br * C + bc] = sum / Double(n) }
            }
        }
        var sub = [subtitle ?? ""].filter { !$0.isEmpty }
        if fr > 1 || fc > 1 {
            sub.append("\(rows)×\(columns), shown as \(R)×\(C) means of \(fr)×\(fc) blocks")
        } else if rows > 0 && columns > 0 {
            sub.append("\(rows)×\(columns)")
        }
        let subtitleText = sub.joined(separator: " · ")
        let top = header(&w, title: title, subtitle: subtitleText) + 10

        // Colour domain.
        let ext = extent(cells)
        let (clo, chi): (Double, Double)
        if diverging {
            let l = ext.map { max(abs($0.0), abs($0.1)) } ?? 1
            (clo, chi) = l > 0 ? (-l, l) : (-1, 1)
        } else {
            (clo, chi) = domain(ext)
        }
        func t(_ v: Double) -> Double { (v - clo) / (chi - clo) }
        func cmap(_ t: Double) -> String { diverging ? Colors.diverging(t) : Colors.viridis(t) }

        // Layout: row ticks left, column ticks below, colourbar right.
        let bottom = H - bottomMargin
        let availH = max(10, bottom - top)
        let rowTicks = niceTicks(0, Double(max(0, rows - 1)), extend: false, maxCount: maxYTicks(availH), minStep: 1)
        let left = leftMargin(tickLabels: rowTicks.labels)
        let barTicks = niceTicks(clo, chi, extend: false, maxCount: maxYTicks(availH))
        let barLabelW = barTicks.labels.map { SVG.textWidth($0, size: tickSize) }.max() ?? 0
        let barW = 12.0, barGap = 14.0
        let rightBlock = barGap + barW + tickLength + 3 + barLabelW + (valueLabel.isEmpty ? 0 : 8 + SVG.lineBox(labelSize)) + pad
        let availW = max(10, W - left - rightBlock)
        let cell = (R > 0 && C > 0) ? min(availW / Double(C), availH / Double(R)) : 0
        let matW = R > 0 && C > 0 ? cell * Double(C) : availW
        let matH = R > 0 && C > 0 ? cell * Double(R) : availH
        let mx = left + max(0, (availW - matW) / 2)
        let my = top

        if R > 0 && C > 0 {
            // One path per quantised colour, in cell units, runs merged along rows.
            let levels = 129
            var runs = [String](repeating: "", count: levels + 1)  // last: missing values
            for r in 0..<R {
                var c = 0
                while c < C {
                    let v = cells[r * C + c]
                    let level = v.isFinite ? Int((t(v) * Double(levels - 1)).rounded()) : levels
                    var end = c + 1
                    while end < C {
                        let u = cells[r * C + end]
                        let l2 = u.isFinite ? Int((t(u) * Double(levels - 1)).rounded()) : levels
                        if l2 != level { break }
                        end += 1
                    }
                    let lv = min(levels, max(0, level))
                    runs[lv] += "M\(c) \(r)h\(end - c)v1h-\(end - c)z"
                    c = end
                }
            }
            w.open("g", "transform=\"translate(\(SVG.num(mx, 2)) \(SVG.num(my, 2))) scale(\(SVG.num(matW / Double(C), 4)) \(SVG.num(matH / Double(R), 4)))\" shape-rendering=\"crispEdges\"")
            for (lv, d) in runs.enumerated() where !d.isEmpty {
                let color = lv == levels ? "#d9d9d9" : cmap(Double(lv) / Double(levels - 1))
                w.path(d, fill: color)
            }
            w.close("g")
            w.rect(mx, my, matW, matH, fill: "none", stroke: axisInk, strokeWidth: 0.8)

            // Row ticks (original indices, at cell centres).
            let sr = Scale(d0: 0, d1: Double(rows), r0: my, r1: my + matH)
            for (v, label) in zip(rowTicks.values, rowTicks.labels) {
                let y = sr(v + 0.5)
                w.line(mx - tickLength, y, mx, y, stroke: axisInk, width: 0.8)
                w.text(label, x: mx - tickLength - 2, y: y + 0.35 * tickSize, cls: "tick-label", anchor: .end, fill: "#333")
            }
            let colTicks = xTicks(0, Double(max(0, columns - 1)), width: matW, extend: false, minStep: 1)
            let sc = Scale(d0: 0, d1: Double(columns), r0: mx, r1: mx + matW)
            for (v, label) in zip(colTicks.values, colTicks.labels) {
                let x = sc(v + 0.5)
                w.line(x, my + matH, x, my + matH + tickLength, stroke: axisInk, width: 0.8)
                w.text(label, x: x, y: my + matH + tickLength + 3 + SVG.ascent(tickSize), cls: "tick-label",
                       anchor: .middle, fill: "#333")
            }
        } else {
            w.rect(mx, my, matW, matH, fill: "none", stroke: "#ccc")
            noData(&w, x: mx + matW / 2, y: my + matH / 2)
        }

        // Colourbar.
        let bx = mx + matW + barGap
        let steps = 64
        w.open("g", "shape-rendering=\"crispEdges\"")
        for i in 0..<steps {
            let y0 = my + matH * Double(i) / Double(steps)
            let tv = 1 - (Double(i) + 0.5) / Double(steps)
            w.rect(bx, y0, barW, matH / Double(steps) + 0.6, fill: cmap(tv))
        }
        w.close("g")
        w.rect(bx, my, barW, matH, fill: "none", stroke: axisInk, strokeWidth: 0.6)
        let sb = Scale(d0: clo, d1: chi, r0: my + matH, r1: my)
        for (v, label) in zip(barTicks.values, barTicks.labels) {
            let y = sb(v)
            w.line(bx + barW, y, bx + barW + tickLength, y, stroke: axisInk, width: 0.8)
            w.text(label, x: bx + barW + tickLength + 3, y: y + 0.35 * tickSize, cls: "tick-label", fill: "#333")
        }
        if !valueLabel.isEmpty {
            let x = bx + barW + tickLength + 3 + barLabelW + 8 + SVG.ascent(labelSize) - 2
            w.text(fit(valueLabel, size: labelSize, width: matH + 10), x: x, y: my + matH / 2, cls: "axis-label",
                   size: labelSize, anchor: .middle, rotate: true)
        }

        w.text(fit(columnLabel, size: labelSize, width: W - 2 * pad), x: mx + matW / 2,
               y: my + matH + tickLength + 3 + SVG.lineBox(tickSize) + 5 + SVG.ascent(labelSize),
               cls: "axis-label", size: labelSize, anchor: .middle)
        w.text(fit(rowLabel, size: labelSize, width: matH + 20), x: pad + SVG.ascent(labelSize), y: my + matH / 2,
               cls: "axis-label", size: labelSize, anchor: .middle, rotate: true)
        return w.document(title: title, description: subtitleText)
    }

    // MARK: - Trajectories

    /// 2-D latent trajectories: one thin polyline per trial coloured by its group, a dot at
    /// the start, legend of the groups (at most 12 rows).
    public static func trajectories(title: String, subtitle: String? = nil, xLabel: String, yLabel: String,
                                    paths: [[(x: Double, y: Double)]], groups: [Int], groupNames: [String],
                                    width: Int = 520, height: Int = 360) -> String {
        let W = Double(width), H = Double(height)
        var w = SVGWriter(width: W, height: H)
        let top = header(&w, title: title, subtitle: subtitle) + 10
        let bottom = H - bottomMargin

        let group = { (i: Int) -> Int in i < groups.count ? max(0, groups[i]) : 0 }
        let present = Set(paths.indices.filter { !paths[$0].isEmpty }.map(group)).sorted()
        let entries = present.map { g -> LegendEntry in
            let c = Colors.category(g)
            return LegendEntry(name: g < groupNames.count ? groupNames[g] : "group \(g + 1)",
                               color: c.color, dash: c.dash, dot: true)
        }
        let (xlo, xhi) = domain(extent(paths.lazy.flatMap { $0.map(\.x) }))
        let (ylo, yhi) = domain(extent(paths.lazy.flatMap { $0.map(\.y) }))
        let yt = padded(niceTicks(ylo, yhi, extend: true, maxCount: maxYTicks(bottom - top)), data: (ylo, yhi), 0.02)
        let left = leftMargin(tickLabels: yt.labels)
        let legendW = legendWidth(entries)
        let right = W - (legendW > 0 ? legendW + 2 * pad + 8 : pad + 14)
        let xt = padded(xTicks(xlo, xhi, width: right - left, extend: true), data: (xlo, xhi), 0.02)
        let sx = Scale(d0: xt.lo, d1: xt.hi, r0: left, r1: right)
        let sy = Scale(d0: yt.lo, d1: yt.hi, r0: bottom, r1: top)

        drawLeftAxis(&w, sy, yt, x: left, gridTo: right)
        drawBottomAxis(&w, sx, xt, y: bottom)
        if present.isEmpty { noData(&w, x: (left + right) / 2, y: (top + bottom) / 2) }

        for (i, p) in paths.enumerated() {
            let c = Colors.category(group(i))
            w.polyline(p.map { ($0.x.isFinite && $0.y.isFinite) ? (sx($0.x), sy($0.y)) : (.nan, .nan) },
                       stroke: c.color, width: 1.1, dash: c.dash, opacity: 0.6)
        }
        for (i, p) in paths.enumerated() {
            guard let s = p.first(where: { $0.x.isFinite && $0.y.isFinite }) else { continue }
            w.circle(sx(s.x), sy(s.y), 2.6, fill: Colors.category(group(i)).color, stroke: "#fff", strokeWidth: 0.6)
        }
        if legendW > 0 {
            let rows = max(1, Int((bottom - top) / legendRow))
            drawLegend(&w, entries, x: right + pad + 8, top: top, maxRows: min(12, rows))
        }
        xAxisLabel(&w, xLabel, left: left, right: right)
        yAxisLabel(&w, yLabel, top: top, bottom: bottom)
        return w.document(title: title, description: subtitle)
    }

    // MARK: - Raster

    /// Spike counts (bars) with the inferred rate (line) and, when given, the true rate
    /// (dashed), one stacked panel per neuron on a shared time axis in ms. `height` nil
    /// sizes the figure to the number of neurons; a height too small for 26 px panels grows.
    public static func raster(title: String, subtitle: String? = nil, spikes: [[Double]], rates: [[Double]],
                              truth: [[Double]]? = nil, binMs: Double, neuronLabels: [String]? = nil,
                              yLabel: String = "count / bin", width: Int = 520, height: Int? = nil) -> String {
        let n = max(spikes.count, rates.count, truth?.count ?? 0)
        let bins = max(spikes.map(\.count).max() ?? 0, rates.map(\.count).max() ?? 0, truth?.map(\.count).max() ?? 0)
        let binMs = binMs.isFinite && binMs > 0 ? binMs : 1
        let gap = 18.0
        let W = Double(width)
        // Header + legend row, computed before the height is known.
        let headerH = pad + SVG.lineBox(titleSize) + ((subtitle ?? "").isEmpty ? 0 : 1 + SVG.lineBox(tickSize))
        let legendY = headerH + 6 + legendRow / 2
        let top = headerH + 6 + legendRow + 8
        let H: Double
        let ph: Double
        let minPanel = 26.0
        if let height, (Double(height) - bottomMargin - top - gap * Double(max(0, n - 1))) / Double(max(1, n)) >= minPanel {
            H = Double(height)
            ph = (H - bottomMargin - top - gap * Double(max(0, n - 1))) / Double(max(1, n))
        } else if height != nil {
            // Too many neurons for the requested height: grow rather than squash.
            ph = minPanel
            H = top + Double(max(1, n)) * ph + gap * Double(max(0, n - 1)) + bottomMargin
        } else {
            ph = 50
            H = top + Double(max(1, n)) * ph + gap * Double(max(0, n - 1)) + bottomMargin
        }
        var w = SVGWriter(width: W, height: H)
        _ = header(&w, title: title, subtitle: subtitle)

        func row(_ m: [[Double]]?, _ i: Int) -> [Double] { (m != nil && i < m!.count) ? m![i] : [] }
        let labels = (0..<n).map { i in (neuronLabels != nil && i < neuronLabels!.count) ? neuronLabels![i] : "neuron \(i + 1)" }
        let tops = (0..<n).map { i -> Double in niceCeiling(extent(row(spikes, i) + row(rates, i) + row(truth, i))?.1 ?? 0) }
        let tickLabels = tops.map(compact) + ["0"]
        let left = leftMargin(tickLabels: tickLabels)
        let nameW = labels.map { SVG.textWidth(fit($0, size: tickSize, width: 110), size: tickSize) }.max() ?? 0
        let right = W - pad - nameW - 10
        let xt = xTicks(0, Double(max(1, bins)) * binMs, width: right - left, extend: false)
        let sx = Scale(d0: 0, d1: Double(max(1, bins)) * binMs, r0: left, r1: right)
        let bw = sx(binMs) - sx(0)

        var legend = [LegendEntry(name: "spikes", color: "#bdbdbd", dash: nil, bar: true),
                      LegendEntry(name: "inferred rate", color: "#0072B2", dash: nil)]
        if truth != nil { legend.append(LegendEntry(name: "true rate", color: "#D55E00", dash: "5 3")) }
        drawLegendRow(&w, legend, x: left, y: legendY)

        if n == 0 { noData(&w, x: (left + right) / 2, y: top + ph / 2) }
        for i in 0..<n {
            let pt = top + Double(i) * (ph + gap), pb = pt + ph
            let sy = Scale(d0: 0, d1: tops[i], r0: pb, r1: pt)
            // Spike-count bars as one path.
            var d = ""
            for (b, c) in row(spikes, i).enumerated() where c.isFinite && c > 0 {
                let x0 = sx(Double(b) * binMs) + 0.1 * bw
                d += "M\(SVG.num(x0))\(" ")\(SVG.num(pb))V\(SVG.num(sy(min(c, tops[i]))))h\(SVG.num(0.8 * bw))V\(SVG.num(pb))z"
            }
            if !d.isEmpty { w.path(d, fill: "#c8c8c8") }
            let centres = (0..<bins).map { sx((Double($0) + 0.5) * binMs) }
            if let tr = truth, i < tr.count {
                w.polyline(zip(centres, tr[i]).map { ($0, $1.isFinite ? sy($1) : .nan) },
                           stroke: "#D55E00", width: 1.4, dash: "4 3")
            }
            w.polyline(zip(centres, row(rates, i)).map { ($0, $1.isFinite ? sy($1) : .nan) },
                       stroke: "#0072B2", width: 1.6)
            // Per-panel y axis: 0 and the top.
            let yt = Ticks(lo: 0, hi: tops[i], values: [0, tops[i]], step: tops[i],
                           labels: ["0", compact(tops[i])])
            drawLeftAxis(&w, sy, yt, x: left)
            drawBottomAxis(&w, sx, xt, y: pb, labels: i == n - 1, spine: i == n - 1 ? axisInk : "#aaa")
            w.text(fit(labels[i], size: tickSize, width: 110), x: right + 10, y: (pt + pb) / 2 + 0.35 * tickSize,
                   cls: "axis-label")
        }
        let stackBottom = n > 0 ? top + Double(n) * ph + Double(n - 1) * gap : top + ph
        if n == 0 { drawBottomAxis(&w, sx, xt, y: stackBottom) }
        xAxisLabel(&w, "time (ms)", left: left, right: right)
        yAxisLabel(&w, yLabel, top: top, bottom: stackBottom)
        return w.document(title: title, description: subtitle)
    }

    // MARK: - Scatter

    /// y against x (e.g. true vs inferred latent), with an optional identity line (then both
    /// axes share one domain and the plot area is square). More than `maxPoints` points are
    /// thinned evenly (stated in the subtitle).
    public static func scatter(title: String, subtitle: String? = nil, xLabel: String, yLabel: String,
                               x: [Double], y: [Double], identityLine: Bool = true, maxPoints: Int = 4000,
                               width: Int = 360, height: Int = 340) -> String {
        let W = Double(width), H = Double(height)
        var pairs: [(Double, Double)] = []
        for i in 0..<min(x.count, y.count) where x[i].isFinite && y[i].isFinite { pairs.append((x[i], y[i])) }
        var sub = [subtitle ?? ""].filter { !$0.isEmpty }
        let total = pairs.count
        if total > max(1, maxPoints) {
            let stride = Double(total) / Double(maxPoints)
            pairs = (0..<maxPoints).map { pairs[min(total - 1, Int(Double($0) * stride))] }
            sub.append("showing \(maxPoints) of \(total) points")
        }
        let subtitleText = sub.joined(separator: " · ")
        var w = SVGWriter(width: W, height: H)
        let top = header(&w, title: title, subtitle: subtitleText) + 10
        var bottom = H - bottomMargin

        var xd = domain(extent(pairs.map(\.0))), yd = domain(extent(pairs.map(\.1)))
        if identityLine {
            let both = domain(extent(pairs.map(\.0) + pairs.map(\.1)))
            xd = both
            yd = both
        }
        var yt = niceTicks(yd.0, yd.1, extend: true, maxCount: maxYTicks(bottom - top))
        let left = leftMargin(tickLabels: yt.labels)
        var right = W - pad - 14
        if identityLine {
            let side = min(right - left, bottom - top)
            right = left + side
            bottom = top + side
        }
        var xt = xTicks(xd.0, xd.1, width: right - left, extend: true)
        if identityLine {
            // Same ticks on both axes: take the coarser of the two.
            if xt.step > yt.step { yt = xt } else { xt = niceTicks(xd.0, xd.1, extend: true, maxCount: yt.values.count) }
            if xt.step < yt.step { xt = yt }
        }
        xt = padded(xt, data: xd)
        yt = padded(yt, data: yd)
        if identityLine { xt = yt }
        let sx = Scale(d0: xt.lo, d1: xt.hi, r0: left, r1: right)
        let sy = Scale(d0: yt.lo, d1: yt.hi, r0: bottom, r1: top)
        drawLeftAxis(&w, sy, yt, x: left, gridTo: right)
        drawBottomAxis(&w, sx, xt, y: bottom)
        if identityLine {
            let lo = max(xt.lo, yt.lo), hi = min(xt.hi, yt.hi)
            w.line(sx(lo), sy(lo), sx(hi), sy(hi), stroke: "#777", width: 1, dash: "4 3")
        }
        if pairs.isEmpty { noData(&w, x: (left + right) / 2, y: (top + bottom) / 2) }
        let r = pairs.count > 1000 ? 1.5 : 2.2
        let alpha = pairs.count > 1000 ? 0.35 : 0.55
        w.open("g", "fill=\"#0072B2\" fill-opacity=\"\(SVG.num(alpha, 2))\"")
        for (a, b) in pairs {
            w.raw("<circle cx=\"\(SVG.num(sx(a)))\" cy=\"\(SVG.num(sy(b)))\" r=\"\(SVG.num(r))\"/>")
        }
        w.close("g")
        // Axis label positions follow the (possibly square) plot area.
        let yLabelY = H - pad - SVG.lineBox(labelSize) + SVG.ascent(labelSize)
        let xLabelY = min(yLabelY, bottom + tickLength + 3 + SVG.lineBox(tickSize) + 5 + SVG.ascent(labelSize))
        w.text(fit(xLabel, size: labelSize, width: W - 2 * pad), x: (left + right) / 2, y: xLabelY,
               cls: "axis-label", size: labelSize, anchor: .middle)
        yAxisLabel(&w, yLabel, top: top, bottom: bottom)
        return w.document(title: title, description: subtitleText)
    }

    // MARK: - Layout

    /// Figures side by side in an HTML CSS grid of `columns` columns.
    public static func grid(_ svgs: [String], columns: Int) -> String {
        var s = "<div class=\"figure-grid\" style=\"display:grid;grid-template-columns:repeat(\(max(1, columns)),max-content);gap:18px 24px;align-items:start\">"
        for svg in svgs { s += "<div>" + svg + "</div>" }
        return s + "</div>"
    }
}
