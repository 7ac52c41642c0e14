import Foundation

extension Plots {
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
}
