import Foundation
import Model
import Recipes
import Report
import Support

/// An adaptive search's outputs, rewritten by world rank 0 as jobs finish: results.csv and
/// results.md (one row per job: ASHA's rungs, PBT's members and generations with their
/// lineage), best.yaml, PBT's best-schedule.yaml, and report.html (the scores over epochs and,
/// for PBT, every explored value over the generations).
struct AdaptiveResults {
    let search: AdaptiveSearch
    let results: [JobResult]

    /// ASHA's answer: the best complete job at the highest rung any trial reached.
    static func bestASHA(_ results: [JobResult], rungs: [Int], metric: SearchMetric) -> JobResult? {
        let complete = results.filter { $0.status == .complete && ($0.metric?.isFinite ?? false) }
        guard let top = complete.map(\.job.stage).max() else { return nil }
        let sign = metric.higherIsBetter ? 1.0 : -1.0
        return complete.filter { $0.job.stage == top }.max { (sign * $0.metric!, -$0.job.trial) < (sign * $1.metric!, -$1.job.trial) }
    }

    /// PBT: each member's smoothed metric after each generation it finished (nil where the
    /// generation is incomplete).
    func smoothed() -> [Int: Double] {
        guard case let .pbt(members, _, _, _, _, _, _) = search.strategy else { return [:] }
        var jobs = [[SearchJob]](repeating: [], count: members), rows = [[JobResult]](repeating: [], count: members)
        for r in results.sorted(by: { $0.job.id < $1.job.id }) { jobs[r.job.trial].append(r.job); rows[r.job.trial].append(r) }
        let complete = rows.map(\.count).min() ?? 0
        var out: [Int: Double] = [:]
        for g in 0..<complete {
            let s = PBTPolicy.smoothed(through: g, jobs: jobs.map { Array($0.prefix(g + 1)) }, results: rows.map { Array($0.prefix(g + 1)) })
            for m in 0..<members { out[jobs[m][g].id] = s[m] }
        }
        return out
    }

    func write() throws {
        let dir = search.runDirectory
        try write(csv(), to: dir + "/results.csv")
        try write(markdown(), to: dir + "/results.md")
        switch search.strategy {
        case let .asha(_, grace, eta, _):
            if let best = Self.bestASHA(results, rungs: ASHAPolicy.rungs(graceEpochs: grace, reductionFactor: eta, maxEpochs: search.base.epochs),
                                        metric: search.metric) {
                let point = search.points[best.job.trial]
                var config = point.config
                config.epochs = search.base.epochs
                let header = """
                # The best trial of the ASHA search in \(dir) by \(search.metric.label): \(point.name)
                # (\(point.label)), \(String(format: "%.4f", best.metric ?? .nan)) after \(best.job.toEpoch) epochs; its weights: \(search.directory(best.job))/best.h5
                # Train it to the full \(search.base.epochs) epochs with: lflow-dist train --config \(dir)/best.yaml --data \(search.dataPath)

                """
                try write(header + ConfigFile.yaml(config), to: dir + "/best.yaml")
            }
        case .pbt:
            if let best = search.bestMember(), let config = try? search.config(best.job) {
                let header = """
                # The best member of the PBT search in \(dir): member \(best.job.trial) after generation \(best.job.stage)
                # (smoothed validation \(search.base.validationMetric.rawValue) \(String(format: "%.5f", best.smoothed))); its weights: \(search.directory(best.job))/best.h5
                # These are its explored values at the end. They are one step of a schedule (best-schedule.yaml):
                # training from scratch with them is a different model. Use the weights: lflow-dist predict --checkpoint \(search.directory(best.job))/best.h5

                """
                try write(header + ConfigFile.yaml(config), to: dir + "/best.yaml")
                try write(schedule(best.job), to: dir + "/best-schedule.yaml")
            }
        }
        try write(AdaptiveReport(search: search, results: results, smoothed: smoothed()).html(), to: dir + "/report.html")
    }

    /// The best member's lineage: for each generation, the member whose weights it carried
    /// and the explored values it trained with.
    func schedule(_ last: SearchJob) -> String {
        var byKey: [String: SearchJob] = [:]
        for r in results { byKey["\(r.job.trial)/\(r.job.stage)"] = r.job }
        var chain: [SearchJob] = []
        var member = last.trial
        for g in stride(from: last.stage, through: 0, by: -1) {
            guard let job = byKey["\(member)/\(g)"] else { break }
            chain.insert(job, at: 0)
            member = job.parent ?? member
        }
        var lines = ["# The lineage of the PBT search's best member: per generation, the epochs, the member whose",
                     "# weights it carried and the explored values it trained with. It is a schedule, not a point:",
                     "# the weights came from other members along the way (exploit), so no single `train` replays",
                     "# it; `train --config` cannot take it. Use the best member's weights (best.yaml says where).",
                     "generations:"]
        for job in chain {
            lines.append("  - {generation: \(job.stage), epochs: [\(job.fromEpoch), \(job.toEpoch)], member: \(job.trial)"
                         + (job.parent.map { $0 == job.trial ? "" : ", copied from member \($0)" } ?? "")
                         + job.values.map { ", \($0.field): \($0.value)" }.joined() + "}")
        }
        return lines.joined(separator: "\n") + "\n"
    }

    func write(_ text: String, to path: String) throws {
        do { try Data(text.utf8).write(to: URL(fileURLWithPath: path), options: .atomic) } catch {
            throw SearchError("cannot write '\(path)': \(error.localizedDescription). Free some space or fix the permissions; the jobs' own files are unaffected.")
        }
    }

    var explored: [String] {
        if case let .pbt(_, _, _, space, _, _, _) = search.strategy { return space.fields.map(\.field) }
        if case let .asha(grid, _, _, _) = search.strategy { return grid.axes.map(\.field) }
        return []
    }

    func values(_ r: JobResult) -> [String] {
        switch search.strategy {
        case .asha: return search.points[r.job.trial].parameters.map(\.value)
        case .pbt: return explored.map { f in r.job.values.first { $0.field == f }?.value ?? "" }
        }
    }

    /// One row per job, in schedule order; wall time last (the one column that differs
    /// between two runs of the same search).
    func csv() -> String {
        func n(_ v: Double?) -> String { v.map { "\($0)" } ?? "" }
        func quote(_ s: String) -> String {
            s.contains(where: { ",\"\n".contains($0) }) ? "\"" + s.replacingOccurrences(of: "\"", with: "\"\"") + "\"" : s
        }
        let smoothed = smoothed()
        let pbt = search.strategy.isPBT
        var header = ["job", pbt ? "member" : "trial", pbt ? "generation" : "rung", "from_epoch", "to_epoch"]
        if pbt { header.append("parent") }
        header += explored + ["status", "metric"] + (pbt ? ["smoothed"] : []) + ["best_valid_metric", "valid_co_bps", "valid_fp_bps",
                                                                                   "valid_vel_r2", "valid_psth_r2", "valid_latent_r2", "reason", "wall_seconds"]
        var lines = [header.joined(separator: ",")]
        for r in results.sorted(by: { $0.job.id < $1.job.id }) {
            var row = ["\(r.job.id)", pbt ? "\(r.job.trial)" : search.points[r.job.trial].name, "\(r.job.stage)", "\(r.job.fromEpoch)", "\(r.job.toEpoch)"]
            if pbt { row.append(r.job.parent.map(String.init) ?? "") }
            row += values(r) + [r.status.rawValue, n(r.metric)] + (pbt ? [n(smoothed[r.job.id])] : [])
            row += [n(r.bestValidMetric), n(r.coBps), n(r.fpBps), n(r.velR2), n(r.psthR2), n(r.latentR2), quote(r.reason ?? ""),
                    r.wallSeconds.map { String(format: "%.1f", $0) } ?? ""]
            lines.append(row.joined(separator: ","))
        }
        return lines.joined(separator: "\n") + "\n"
    }

    func markdown() -> String {
        func f(_ v: Double?, _ d: Int = 4) -> String { v.map { String(format: "%.\(d)f", $0) } ?? "–" }
        let pbt = search.strategy.isPBT
        let smoothed = smoothed()
        var lines = ["# Search results (\(search.strategy.name.uppercased()))", ""]
        if pbt {
            lines.append("One row per member and generation. `from` is the member whose weights, Adam moments, weight average and schedule state the generation continued (itself unless it lost its tournament). The metric is the last epoch's validation \(search.base.validationMetric.rawValue) (lower is better); tournaments compare its exponential smoothing along each lineage.")
        } else {
            lines.append("One row per job: a trial trained to a rung. The metric is the validation \(search.metric.label) of the trial's best weights so far; the top 1/\(search.reductionFactor) of each rung go on.")
        }
        lines.append("")
        let head = pbt ? ["job", "member", "gen.", "epochs", "from"] : ["job", "trial", "rung", "epochs"]
        lines.append("| " + (head + explored + ["status", "metric"] + (pbt ? ["smoothed"] : []) + ["co-bps", "wall"]).joined(separator: " | ") + " |")
        lines.append("|" + String(repeating: "---|", count: head.count + explored.count + (pbt ? 5 : 4)))
        for r in results.sorted(by: { $0.job.id < $1.job.id }) {
            var row = ["\(r.job.id)", pbt ? "\(r.job.trial)" : search.points[r.job.trial].name, "\(r.job.stage)", "\(r.job.fromEpoch)→\(r.job.toEpoch)"]
            if pbt { row.append(r.job.parent.map(String.init) ?? "–") }
            let status = r.status == .failed ? "failed: " + (r.reason ?? "").replacingOccurrences(of: "|", with: "\\|").replacingOccurrences(of: "\n", with: " ") : r.status.rawValue
            // Four significant digits for reading; results.csv keeps the exact values.
            row += values(r).map { v in Double(v).map { String(format: "%.4g", $0) } ?? v }
            row += [status, f(r.metric, 5)]
            if pbt { row.append(f(smoothed[r.job.id], 5)) }
            row += [f(r.coBps), r.wallSeconds.map(formatDuration) ?? "–"]
            lines.append("| " + row.joined(separator: " | ") + " |")
        }
        return lines.joined(separator: "\n") + "\n"
    }
}

/// report.html of an adaptive search: the scores over epochs per trial or member and, for PBT,
/// each explored value over the generations per member, then the table.
struct AdaptiveReport {
    let search: AdaptiveSearch
    let results: [JobResult]
    let smoothed: [Int: Double]

    func html() -> String {
        let sorted = results.sorted { $0.job.id < $1.job.id }
        let pbt = search.strategy.isPBT
        let byTrial = Dictionary(grouping: sorted.filter { $0.status == .complete && ($0.metric?.isFinite ?? false) }, by: \.job.trial)
        let name: (Int) -> String = { pbt ? "member \($0)" : search.points[$0].label }
        var figures: [String] = []
        let scoreSeries = byTrial.keys.sorted().map { t in
            Series(name: name(t), x: byTrial[t]!.map { Double($0.job.toEpoch) }, y: byTrial[t]!.map { $0.metric! })
        }
        figures.append(Plots.lines(title: pbt ? "Validation \(search.base.validationMetric.rawValue) per member" : "\(search.metric.label) per trial",
                                   subtitle: pbt ? "at the end of each generation (lower is better)" : "at each rung reached",
                                   xLabel: "epoch", yLabel: pbt ? search.base.validationMetric.rawValue : search.metric.label, series: scoreSeries))
        if pbt, case let .pbt(_, _, _, space, _, _, _) = search.strategy {
            for field in space.fields {
                let series = byTrial.keys.sorted().map { t -> Series in
                    let rows = sorted.filter { $0.job.trial == t }
                    return Series(name: name(t), x: rows.map { Double($0.job.stage) },
                                  y: rows.map { r in Double(r.job.values.first { $0.field == field.field }?.value ?? "") ?? .nan })
                }
                figures.append(Plots.lines(title: field.field, subtitle: "explored within [\(field.lower), \(field.upper)]",
                                           xLabel: "generation", yLabel: field.field, series: series, logY: field.logScale))
            }
        }
        let table = AdaptiveResults(search: search, results: results).markdown().split(separator: "\n").filter { $0.hasPrefix("|") && !$0.hasPrefix("|---") }
        let rows = table.enumerated().map { i, line -> String in
            let cells = line.split(separator: "|", omittingEmptySubsequences: false).dropFirst().dropLast().map { $0.trimmingCharacters(in: .whitespaces) }
            let tag = i == 0 ? "th" : "td"
            return "<tr>" + cells.map { "<\(tag)>\(SVG.escape($0))</\(tag)>" }.joined() + "</tr>"
        }.joined()
        return """
        <!DOCTYPE html>
        <html lang="en"><head><meta charset="utf-8"><title>lflow-dist search: \(SVG.escape(search.runDirectory))</title>
        <style>body{font-family:system-ui,sans-serif;margin:24px 32px;color:#222;background:#fafafa}
        table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ddd;padding:3px 8px;text-align:right}
        th{background:#f0f0f0} svg{background:#fff;border:1px solid #e4e4e4}</style></head><body>
        <h1 style="font-size:20px">\(search.strategy.name.uppercased()) search: \(SVG.escape(search.runDirectory))</h1>
        \(Plots.grid(figures, columns: 2))
        <h2 style="font-size:16px">Jobs</h2>
        <table>\(rows)</table>
        </body></html>
        """
    }
}
