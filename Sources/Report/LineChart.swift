import Foundation

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

extension Plots {
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
}
