import Foundation
import Model
import Recipes
import Support

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
        var lines = [(["trial"] + fields + ["status", "epochs", "best_epoch", "best_valid_metric", "valid_co_bps",
                                             "valid_fp_bps", "valid_vel_r2", "valid_psth_r2", "valid_latent_r2", "reason", "wall_seconds"]).joined(separator: ",")]
        for r in records {
            let row = [r.name] + r.parameters.map(\.value) + [
                r.status.rawValue, Self.number(r.epochs), Self.number(r.bestEpoch), Self.number(r.bestValidMetric),
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
                + " | \(status) | \(Self.number(r.epochs)) | \(f(r.bestValidMetric, 5)) | \(f(r.coBps)) | \(f(r.fpBps)) | \(f(r.velR2)) | \(f(r.psthR2)) | \(f(r.latentR2, 3)) | \(r.wallSeconds.map(formatDuration) ?? "–") |")
        }
        return lines.joined(separator: "\n") + "\n\n![\(search.metric.label)](heatmap.svg)\n"
    }
}
