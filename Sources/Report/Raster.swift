import Foundation

extension Plots {
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
}
