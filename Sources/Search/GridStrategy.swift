import Foundation
import Model
import Recipes
import Report
import RunFiles
import Support
import Training

/// Every point of the grid trained to the config's epochs, one job each: ASHA with a single
/// rung. Jobs need no results to be decided, so the whole grid is issued at once and a free
/// group takes the next point as soon as it is done.
struct GridPolicy: SchedulePolicy {
    let trials: Int
    let epochs: Int
    var decidesOnResults: Bool { false }

    func next(known: [Int: JobResult], issued: [SearchJob]) -> SearchJob? {
        issued.count < trials ? SearchJob(id: 0, trial: issued.count, stage: 0, fromEpoch: 0, toEpoch: epochs) : nil
    }
}

struct GridStrategy: SearchStrategy {
    let grid: SearchGrid
    let points: [SearchPoint]
    let metric: SearchMetric
    let epochs: Int

    init(grid: SearchGrid, base: Config, metric: SearchMetric) throws {
        self.grid = grid
        points = try grid.points(base: base)
        self.metric = metric
        epochs = base.train.epochs
    }

    var name: String { "grid" }
    /// The grid alone: another --metric re-ranks a finished search without retraining.
    var identity: String { "grid " + grid.axes.map { "\($0.field)=\($0.values.joined(separator: ","))" }.joined(separator: " ") }
    var policy: SchedulePolicy { GridPolicy(trials: points.count, epochs: epochs) }

    func describe(groups: Int, ranksPerTrial: Int) -> String {
        var lines = ["search: \(points.count) grid points over \(grid.axes.map { "\($0.field) (\($0.values.joined(separator: ", ")))" }.joined(separator: " × ")); \(groups) group\(groups == 1 ? "" : "s") of \(ranksPerTrial) rank\(ranksPerTrial == 1 ? "" : "s")"]
        if groups > points.count { lines.append("note: \(groups - points.count) group(s) will have no grid point to train; fewer ranks would do") }
        if let distinct = distinctDynamics(), distinct < points.count {
            lines.append("note: mass and coupling enter the model only as coupling/mass (the force term is Δt·κ·A(Ŵ)z/m), so this grid has \(distinct) distinct models among its \(points.count) points; points with the same ratio train identically")
        }
        return lines.joined(separator: "\n")
    }

    /// The number of distinct models when the grid sweeps both mass and coupling, which act
    /// only through their ratio; nil otherwise.
    func distinctDynamics() -> Int? {
        let fields = Set(grid.axes.map(\.field))
        guard fields.contains("mass") && fields.contains("coupling") else { return nil }
        return Set(points.map { point -> String in
            var config = point.config
            config.model.coupling /= config.model.mass
            config.model.mass = 1
            return config.json()
        }).count
    }

    func directory(_ job: SearchJob, in run: RunDirectory) -> RunDirectory { run.trial(points[job.trial].name) }
    func config(_ job: SearchJob) throws -> Config { points[job.trial].config }
    func metric(_ result: JobResult) -> Double? { metric.value(result) }
    func label(_ job: SearchJob) -> String { points[job.trial].label }

    func outcome(_ r: JobResult) -> String {
        guard r.status == .complete else { return "FAILED: " + (r.reason ?? "unknown reason") }
        return String(format: "complete  co-bps %.4f%@  best epoch %d/%d  %@", r.coBps ?? .nan,
                      r.latentR2.map { String(format: "  latent R² %.3f", $0) } ?? "", r.bestEpoch ?? 0, r.epochs ?? 0,
                      formatDuration(r.wallSeconds ?? 0))
    }

    func session(_ job: SearchJob) -> (group: String, values: [SearchParameter])? { (points[job.trial].name, points[job.trial].parameters) }
    var hparamsFields: [(name: String, values: [String])] { grid.axes.map { ($0.field, $0.values) } }

    /// Each point's result (nil: not finished), in grid order.
    func byPoint(_ results: [JobResult]) -> [JobResult?] {
        var out = [JobResult?](repeating: nil, count: points.count)
        for r in results { out[r.job.trial] = r }
        return out
    }

    func best(_ results: [JobResult]) -> JobResult? {
        let sign = metric.higherIsBetter ? 1.0 : -1.0
        return results.filter { $0.status == .complete && (metric.value($0)?.isFinite ?? false) }
            .max { (sign * metric.value($0)!, -$0.job.trial) < (sign * metric.value($1)!, -$1.job.trial) }
    }

    /// One row per point, in grid order.
    func table(_ results: [JobResult], base: Config) -> ResultsTable {
        let fields = grid.axes.map(\.field)
        let rows = byPoint(results)
        let best = self.best(results)?.job.trial
        let csv = points.map { p -> [String] in
            let r = rows[p.index]
            return [p.name] + p.parameters.map(\.value) + [r?.status.rawValue ?? TrialStatus.pending.rawValue, Cell.number(r?.epochs),
                Cell.number(r?.bestEpoch), Cell.number(r?.bestValidMetric), Cell.number(r?.coBps), Cell.number(r?.fpBps),
                Cell.number(r?.velR2), Cell.number(r?.psthR2), Cell.number(r?.latentR2), Cell.quote(r?.reason ?? ""), Cell.wall(r)]
        }
        let metricName = "held-out NLL"
        let markdown = points.map { p -> [String] in
            let r = rows[p.index]
            return ["\(p.name)\(p.index == best ? " ★" : "")"] + p.parameters.map(\.value) + [r.map(Cell.status) ?? "pending",
                Cell.number(r?.epochs), Cell.fixed(r?.bestValidMetric, 5), Cell.fixed(r?.coBps), Cell.fixed(r?.fpBps), Cell.fixed(r?.velR2),
                Cell.fixed(r?.psthR2), Cell.fixed(r?.latentR2, 3), r?.wallSeconds.map(formatDuration) ?? "–"]
        }
        return ResultsTable(
            csvHeader: ["trial"] + fields + ["status", "epochs", "best_epoch", "best_valid_metric", "valid_co_bps", "valid_fp_bps",
                                             "valid_vel_r2", "valid_psth_r2", "valid_latent_r2", "reason", "wall_seconds"],
            csvRows: csv, title: "Search results",
            intro: "\(points.count) grid points. Validation metrics of each trial's best weights on its validation split; best valid \(metricName) is the value the trainer selects on (lower is better); latent R² is that of the validation trials' [z, v] against the true latents (synthetic data only). ★ marks the best by \(metric.label) (`--metric \(metric.rawValue)`, best.yaml).",
            markdownHeader: ["trial"] + fields + ["status", "epochs", "best valid \(metricName)", "co-bps", "fp-bps", "vel R²", "PSTH R²", "latent R²", "wall"],
            markdownRows: markdown, links: points.map { "trials/\($0.name)" })
    }

    func answer(_ results: [JobResult], search: Search) -> SearchAnswer? {
        guard let best = best(results) else { return nil }
        let point = points[best.job.trial]
        return SearchAnswer(
            result: best, config: point.config,
            header: ["The best point of the search in \(search.run) by \(metric.label): trial \(point.name)",
                     "(\(point.label)), \(metric.label) \(metric.value(best).map { String(format: "%.4f", $0) } ?? "-"), validation co-bps \(best.coBps.map { String(format: "%.4f", $0) } ?? "-").",
                     "Train it with: lflow-dist train --config \(search.run.path)/best.yaml --data \(search.dataPath)"],
            line: String(format: "best by %@: %@  %@ %.4f  → %@", metric.rawValue, point.label, metric.label, metric.value(best) ?? .nan,
                         search.run.path + "/best.yaml"))
    }

    func heatmap(_ results: [JobResult], answer: SearchAnswer?) -> String? {
        SearchHeatmap(grid: grid, results: byPoint(results), best: answer?.result.job.trial, names: points.map(\.name), metric: metric).svg()
    }

    func figures(_ results: [JobResult], base: Config) -> [String] { [] }

    func summary(_ results: [JobResult], base: Config) -> [String] {
        let complete = results.filter { $0.status == .complete }.count, failed = results.filter { $0.status == .failed }.count
        return ["\(complete) complete, \(failed) failed, \(points.count - complete - failed) not finished, of \(points.count)"]
    }
}
