import Report
import RunFiles

/// The search metric (validation co-bps by default) as a heatmap, drawn with Report's writer
/// and palette: the grid's first axis across, its second down, one panel per combination of the
/// remaining axes (mass × damping, a panel per coupling, by default). Bright is better whichever
/// way the metric runs; the best trial is framed in red, failed ones are grey.
struct SearchHeatmap {
    let grid: SearchGrid
    /// Each point's result, in grid order (nil: not finished).
    let results: [JobResult?]
    let best: Int?
    /// Each point's trial name, in grid order.
    let names: [String]
    var metric: SearchMetric = .coBps

    func svg() -> String {
        let axes = grid.axes
        let xAxis = axes[0]
        let yAxis = axes.count > 1 ? axes[1] : SearchAxis(field: "", values: [""])
        let panelAxes = Array(axes.dropFirst(2))
        let panels = panelAxes.reduce(1) { $0 * $1.values.count }
        let cellW = 74.0, cellH = 40.0, left = 90.0, top = 70.0, gap = 50.0, barW = 16.0
        let panelW = cellW * Double(xAxis.values.count), panelH = cellH * Double(yAxis.values.count)
        let width = left + Double(panels) * (panelW + gap) + 70, height = top + panelH + 60
        let values = results.compactMap { $0 }.filter { $0.status == .complete }.compactMap(metric.value).filter(\.isFinite)
        let low = values.min() ?? 0, high = values.max() ?? 1
        func t(_ v: Double) -> Double {
            let u = high > low ? (v - low) / (high - low) : 0.5
            return metric.higherIsBetter ? u : 1 - u
        }
        let label = metric.label.prefix(1).uppercased() + metric.label.dropFirst()
        let title = "\(label) over \(xAxis.field)" + (yAxis.field.isEmpty ? "" : " × " + yAxis.field)
        var w = SVGWriter(width: width, height: height)
        w.text(title, x: left, y: 24, cls: "title", size: 16, weight: "bold")
        for panel in 0..<panels {
            // Panel coordinates in the remaining axes, last axis fastest (grid order).
            var rest = panel, coordinates: [Int] = Array(repeating: 0, count: panelAxes.count)
            for (k, axis) in panelAxes.enumerated().reversed() { coordinates[k] = rest % axis.values.count; rest /= axis.values.count }
            let x0 = left + Double(panel) * (panelW + gap)
            let panelTitle = zip(panelAxes, coordinates).map { "\($0.field) = \($0.values[$1])" }.joined(separator: ", ")
            if !panelTitle.isEmpty { w.text(panelTitle, x: x0 + panelW / 2, y: top - 24, cls: "panel", size: 12, anchor: .middle, weight: "bold") }
            for (yi, yValue) in yAxis.values.enumerated() {
                for (xi, xValue) in xAxis.values.enumerated() {
                    // Index in grid order: first axis slowest.
                    var index = xi
                    if axes.count > 1 { index = index * yAxis.values.count + yi }
                    for (k, axis) in panelAxes.enumerated() { index = index * axis.values.count + coordinates[k] }
                    let record = results[index]
                    let x = x0 + Double(xi) * cellW, y = top + Double(yi) * cellH
                    let fill: String, text: String, ink: String
                    switch (record?.status ?? .pending, record.flatMap(metric.value)) {
                    case (.complete, let v?) where v.isFinite:
                        fill = Colors.viridis(t(v)); text = String(format: "%.4f", v); ink = t(v) < 0.55 ? "#fff" : "#000"
                    case (.failed, _): fill = "#bdbdbd"; text = "failed"; ink = "#333"
                    default: fill = "#f0f0f0"; text = (record?.status ?? .pending).rawValue; ink = "#777"
                    }
                    w.open("g")
                    w.open("title")
                    w.raw(SVG.escape("\(names[index]): \(text)"))
                    w.close("title")
                    w.rect(x, y, cellW, cellH, fill: fill, stroke: "#fff")
                    w.text(text, x: x + cellW / 2, y: y + cellH / 2 + 4, cls: "cell", size: 12, anchor: .middle, fill: ink)
                    w.close("g")
                    if index == best { w.rect(x + 1.5, y + 1.5, cellW - 3, cellH - 3, fill: "none", stroke: "#d62728", strokeWidth: 3) }
                    if yi == yAxis.values.count - 1 { w.text(xValue, x: x + cellW / 2, y: top + panelH + 16, cls: "tick", size: 12, anchor: .middle) }
                    if xi == 0 && panel == 0 && !yAxis.field.isEmpty { w.text(yValue, x: x0 - 8, y: y + cellH / 2 + 4, cls: "tick", size: 12, anchor: .end) }
                }
            }
            w.text(xAxis.field, x: x0 + panelW / 2, y: top + panelH + 36, cls: "label", size: 12, anchor: .middle)
        }
        if !yAxis.field.isEmpty { w.text(yAxis.field, x: 20, y: top + panelH / 2, cls: "label", size: 12, anchor: .middle, rotate: true) }
        // Colour bar: the best value at the top.
        let barX = width - 60
        w.raw("<defs><linearGradient id=\"scale\" x1=\"0\" y1=\"1\" x2=\"0\" y2=\"0\">"
              + (0...10).map { "<stop offset=\"\(Double($0) / 10)\" stop-color=\"\(Colors.viridis(Double($0) / 10))\"/>" }.joined()
              + "</linearGradient></defs>")
        w.rect(barX, top, barW, panelH, fill: "url(#scale)")
        w.text(values.isEmpty ? "–" : String(format: "%.4f", metric.higherIsBetter ? high : low), x: barX + barW / 2, y: top - 8, cls: "tick", size: 12, anchor: .middle)
        w.text(values.isEmpty ? "–" : String(format: "%.4f", metric.higherIsBetter ? low : high), x: barX + barW / 2, y: top + panelH + 16, cls: "tick", size: 12, anchor: .middle)
        return w.document(title: title) + "\n"
    }
}
