import Foundation
import Model

/// The search's outputs, rewritten by world rank 0 whenever a trial finishes: results.csv,
/// results.md, best.yaml and heatmap.svg in the run directory.
struct SearchResults {
    let search: Search
    let records: [TrialRecord]

    /// The complete trial best by `metric` (validation co-bps, the NLB ranking metric, by
    /// default); the lower index wins a tie.
    static func best(_ records: [TrialRecord], by metric: SearchMetric = .coBps) -> TrialRecord? {
        let sign = metric.higherIsBetter ? 1.0 : -1.0
        return records.filter { $0.status == .complete && (metric.value($0)?.isFinite ?? false) }
            .max { (sign * metric.value($0)!, -$0.index) < (sign * metric.value($1)!, -$1.index) }
    }

    var best: TrialRecord? { Self.best(records, by: search.metric) }

    func write() throws {
        let dir = search.runDirectory
        try write(csv(), to: dir + "/results.csv")
        try write(markdown(), to: dir + "/results.md")
        let best = self.best
        try write(SearchHeatmap(grid: search.grid, records: records, best: best?.index, metric: search.metric).svg(), to: dir + "/heatmap.svg")
        if let best {
            let point = search.points[best.index]
            let header = """
            # The best point of the search in \(dir) by \(search.metric.label): trial \(point.name)
            # (\(point.label)), \(search.metric.label) \(search.metric.value(best).map { String(format: "%.4f", $0) } ?? "-"), validation co-bps \(best.coBps.map { String(format: "%.4f", $0) } ?? "-").
            # Train it with: lflow-dist train --config \(dir)/best.yaml --data \(search.dataPath)

            """
            try write(header + ConfigFile.yaml(point.config), to: dir + "/best.yaml")
        }
    }

    func write(_ text: String, to path: String) throws {
        do { try Data(text.utf8).write(to: URL(fileURLWithPath: path), options: .atomic) } catch {
            throw SearchError("cannot write '\(path)': \(error.localizedDescription). Free some space or fix the permissions; the trials' own files are unaffected.")
        }
    }

    /// Full precision (shortest round-trip text), so equal tables mean equal results.
    static func number(_ v: Double?) -> String { v.map { "\($0)" } ?? "" }
    static func number(_ v: Int?) -> String { v.map { "\($0)" } ?? "" }

    /// One row per trial; wall time is the last column, the one field that differs between
    /// two runs of the same search.
    func csv() -> String {
        func quote(_ s: String) -> String {
            s.contains(where: { ",\"\n".contains($0) }) ? "\"" + s.replacingOccurrences(of: "\"", with: "\"\"") + "\"" : s
        }
        let fields = search.grid.axes.map(\.field)
        var lines = [(["trial"] + fields + ["status", "epochs", "best_epoch", "best_valid_loss", "valid_co_bps",
                                             "valid_fp_bps", "valid_vel_r2", "valid_psth_r2", "valid_latent_r2", "reason", "wall_seconds"]).joined(separator: ",")]
        for r in records {
            let row = [r.name] + r.parameters.map(\.value) + [
                r.status.rawValue, Self.number(r.epochs), Self.number(r.bestEpoch), Self.number(r.bestValidLoss),
                Self.number(r.coBps), Self.number(r.fpBps), Self.number(r.velR2), Self.number(r.psthR2), Self.number(r.latentR2),
                quote(r.reason ?? ""), r.wallSeconds.map { String(format: "%.1f", $0) } ?? "",
            ]
            lines.append(row.joined(separator: ","))
        }
        return lines.joined(separator: "\n") + "\n"
    }

    func markdown() -> String {
        func f(_ v: Double?, _ digits: Int = 4) -> String { v.map { String(format: "%.\(digits)f", $0) } ?? "–" }
        let fields = search.grid.axes.map(\.field)
        let metric = search.base.validationMetric == .heldOut ? "held-out NLL" : "loss"
        let best = self.best?.index
        var lines = [
            "# Search results",
            "",
            "\(records.count) grid points; data `\(search.dataPath)`; \(search.ranksPerTrial) rank\(search.ranksPerTrial == 1 ? "" : "s") per trial. Validation metrics of each trial's best weights on its validation split; best valid \(metric) is the value the trainer selects on (lower is better); latent R² is that of the validation trials' [z, v] against the true latents (synthetic data only). ★ marks the best by \(search.metric.label) (`--metric \(search.metric.rawValue)`, best.yaml).",
            "",
            "| trial | " + fields.joined(separator: " | ") + " | status | epochs | best valid \(metric) | co-bps | fp-bps | vel R² | PSTH R² | latent R² | wall |",
            "|---|" + String(repeating: "---:|", count: fields.count) + "---|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for r in records {
            let status = r.status == .failed ? "failed: " + (r.reason ?? "").replacingOccurrences(of: "|", with: "\\|").replacingOccurrences(of: "\n", with: " ") : r.status.rawValue
            lines.append("| \(r.name)\(r.index == best ? " ★" : "") | " + r.parameters.map(\.value).joined(separator: " | ")
                + " | \(status) | \(Self.number(r.epochs)) | \(f(r.bestValidLoss, 5)) | \(f(r.coBps)) | \(f(r.fpBps)) | \(f(r.velR2)) | \(f(r.psthR2)) | \(f(r.latentR2, 3)) | \(r.wallSeconds.map(formatDuration) ?? "–") |")
        }
        return lines.joined(separator: "\n") + "\n\n![\(search.metric.label)](heatmap.svg)\n"
    }
}

/// The search metric (validation co-bps by default) as a heatmap: the grid's first axis across, its second down, one panel
/// per combination of the remaining axes (mass × damping, a panel per coupling, by default).
struct SearchHeatmap {
    let grid: SearchGrid
    let records: [TrialRecord]
    let best: Int?
    var metric: SearchMetric = .coBps

    static let viridis: [(Double, Double, Double)] = [(68, 1, 84), (59, 82, 139), (33, 145, 140), (94, 201, 98), (253, 231, 37)]

    static func color(_ t: Double) -> String {
        let x = min(max(t, 0), 1) * Double(viridis.count - 1)
        let i = min(Int(x), viridis.count - 2), f = x - Double(i)
        let (a, b) = (viridis[i], viridis[i + 1])
        return String(format: "#%02x%02x%02x", Int((a.0 + (b.0 - a.0) * f).rounded()), Int((a.1 + (b.1 - a.1) * f).rounded()),
                      Int((a.2 + (b.2 - a.2) * f).rounded()))
    }

    static func escape(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(of: ">", with: "&gt;")
    }

    func svg() -> String {
        let axes = grid.axes
        let xAxis = axes[0]
        let yAxis = axes.count > 1 ? axes[1] : SearchAxis(field: "", values: [""])
        let panelAxes = Array(axes.dropFirst(2))
        let panels = panelAxes.reduce(1) { $0 * $1.values.count }
        let cellW = 74.0, cellH = 40.0, left = 90.0, top = 70.0, gap = 50.0, barW = 16.0
        let panelW = cellW * Double(xAxis.values.count), panelH = cellH * Double(yAxis.values.count)
        let width = left + Double(panels) * (panelW + gap) + 70, height = top + panelH + 60
        let values = records.filter { $0.status == .complete }.compactMap(metric.value).filter(\.isFinite)
        let low = values.min() ?? 0, high = values.max() ?? 1
        // Bright is better whichever way the metric runs.
        func t(_ v: Double) -> Double {
            let u = high > low ? (v - low) / (high - low) : 0.5
            return metric.higherIsBetter ? u : 1 - u
        }

        var out = [
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(width))\" height=\"\(Int(height))\" font-family=\"Helvetica, Arial, sans-serif\" font-size=\"12\">",
            "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>",
            "<text x=\"\(left)\" y=\"24\" font-size=\"16\" font-weight=\"bold\">\(Self.escape(metric.label.prefix(1).uppercased() + metric.label.dropFirst())) over \(Self.escape(xAxis.field))\(yAxis.field.isEmpty ? "" : " × " + Self.escape(yAxis.field))</text>",
        ]
        for panel in 0..<panels {
            // Panel coordinates in the remaining axes, last axis fastest (grid order).
            var rest = panel, coordinates: [Int] = Array(repeating: 0, count: panelAxes.count)
            for (k, axis) in panelAxes.enumerated().reversed() { coordinates[k] = rest % axis.values.count; rest /= axis.values.count }
            let x0 = left + Double(panel) * (panelW + gap)
            let title = zip(panelAxes, coordinates).map { "\($0.field) = \($0.values[$1])" }.joined(separator: ", ")
            if !title.isEmpty { out.append("<text x=\"\(x0 + panelW / 2)\" y=\"\(top - 24)\" text-anchor=\"middle\" font-weight=\"bold\">\(Self.escape(title))</text>") }
            for (yi, yValue) in yAxis.values.enumerated() {
                for (xi, xValue) in xAxis.values.enumerated() {
                    // Index in grid order: first axis slowest.
                    var index = xi
                    if axes.count > 1 { index = index * yAxis.values.count + yi }
                    for (k, axis) in panelAxes.enumerated() { index = index * axis.values.count + coordinates[k] }
                    let record = records[index]
                    let x = x0 + Double(xi) * cellW, y = top + Double(yi) * cellH
                    let fill: String, label: String, ink: String
                    switch (record.status, metric.value(record)) {
                    case (.complete, let v?) where v.isFinite:
                        fill = Self.color(t(v)); label = String(format: "%.4f", v); ink = t(v) < 0.55 ? "white" : "black"
                    case (.failed, _): fill = "#bdbdbd"; label = "failed"; ink = "#333333"
                    default: fill = "#f0f0f0"; label = record.status.rawValue; ink = "#777777"
                    }
                    out.append("<rect x=\"\(x)\" y=\"\(y)\" width=\"\(cellW)\" height=\"\(cellH)\" fill=\"\(fill)\" stroke=\"white\"><title>\(Self.escape(record.name)): \(label)</title></rect>")
                    out.append("<text x=\"\(x + cellW / 2)\" y=\"\(y + cellH / 2 + 4)\" text-anchor=\"middle\" fill=\"\(ink)\">\(label)</text>")
                    if index == best {
                        out.append("<rect x=\"\(x + 1.5)\" y=\"\(y + 1.5)\" width=\"\(cellW - 3)\" height=\"\(cellH - 3)\" fill=\"none\" stroke=\"#d62728\" stroke-width=\"3\"/>")
                    }
                    if yi == yAxis.values.count - 1 {
                        out.append("<text x=\"\(x + cellW / 2)\" y=\"\(top + panelH + 16)\" text-anchor=\"middle\">\(Self.escape(xValue))</text>")
                    }
                    if xi == 0 && panel == 0 && !yAxis.field.isEmpty {
                        out.append("<text x=\"\(x0 - 8)\" y=\"\(y + cellH / 2 + 4)\" text-anchor=\"end\">\(Self.escape(yValue))</text>")
                    }
                }
            }
            out.append("<text x=\"\(x0 + panelW / 2)\" y=\"\(top + panelH + 36)\" text-anchor=\"middle\">\(Self.escape(xAxis.field))</text>")
        }
        if !yAxis.field.isEmpty {
            out.append("<text x=\"20\" y=\"\(top + panelH / 2)\" text-anchor=\"middle\" transform=\"rotate(-90 20 \(top + panelH / 2))\">\(Self.escape(yAxis.field))</text>")
        }
        // Colour bar.
        let barX = width - 60
        out.append("<defs><linearGradient id=\"scale\" x1=\"0\" y1=\"1\" x2=\"0\" y2=\"0\">" +
                   (0...10).map { "<stop offset=\"\(Double($0) / 10)\" stop-color=\"\(Self.color(Double($0) / 10))\"/>" }.joined() +
                   "</linearGradient></defs>")
        out.append("<rect x=\"\(barX)\" y=\"\(top)\" width=\"\(barW)\" height=\"\(panelH)\" fill=\"url(#scale)\"/>")
        out.append("<text x=\"\(barX + barW / 2)\" y=\"\(top - 8)\" text-anchor=\"middle\">\(values.isEmpty ? "–" : String(format: "%.4f", metric.higherIsBetter ? high : low))</text>")
        out.append("<text x=\"\(barX + barW / 2)\" y=\"\(top + panelH + 16)\" text-anchor=\"middle\">\(values.isEmpty ? "–" : String(format: "%.4f", metric.higherIsBetter ? low : high))</text>")
        out.append("</svg>")
        return out.joined(separator: "\n") + "\n"
    }
}
