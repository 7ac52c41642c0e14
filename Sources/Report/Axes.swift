import Foundation

/// The pieces every chart is built from: header, margins, axes with their ticks and labels,
/// legends, and the decimation of long lines.
extension Plots {
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
}
