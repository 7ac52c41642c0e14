import Foundation

extension Plots {
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
}
