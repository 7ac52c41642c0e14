import Foundation

extension Plots {
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
}
