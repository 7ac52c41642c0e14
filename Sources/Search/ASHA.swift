import Foundation
import Inference
import Kernels
import Model
import Report
import RunFiles
import Support
import Training

/// Asynchronous successive halving (Li et al. 2020, Ray Tune's ASHA) over a grid's points:
/// rungs at `grace`, `grace·η`, `grace·η²`, … epochs up to `maxEpochs`; a free group promotes
/// the best not-yet-promoted trial among the top 1/η of the highest rung that has one, and
/// otherwise starts the next grid point (in a seeded random order) at the first rung. A trial stopped at a rung keeps its
/// checkpoint, so a later promotion continues it from there.
///
/// `synchronous` (successive halving, `--promotion sync`): a rung promotes only once every trial
/// that entered it has its result there, so its top 1/η are the final top 1/η. Asynchronous
/// promotion sends the first good early result upwards before the rung is full; with many
/// points close together and a short grace, that result is often a fast starter rather than
/// the best (docs/search.md, "ASHA and PBT"). The virtual schedule waits either way, so both
/// are exact; synchronous promotion leaves a group idle only at a rung's end.
struct ASHAPolicy: SchedulePolicy {
    let trials: Int
    /// The order new trials start in: a seeded permutation of the grid (a grid in sorted order
    /// would start from one corner, and every better trial after it would be promoted).
    var order: [Int]
    let rungs: [Int]
    let reductionFactor: Int
    let higherIsBetter: Bool
    let synchronous: Bool

    init(trials: Int, graceEpochs: Int, reductionFactor: Int, maxEpochs: Int, higherIsBetter: Bool, synchronous: Bool = false) {
        self.trials = trials
        self.synchronous = synchronous
        order = Array(0..<trials)
        self.reductionFactor = reductionFactor
        self.higherIsBetter = higherIsBetter
        var rungs: [Int] = []
        var r = graceEpochs
        while r < maxEpochs {
            rungs.append(r)
            r *= reductionFactor
        }
        rungs.append(maxEpochs)
        self.rungs = rungs
    }

    /// Rungs of a search: grace·η^k below the maximum, then the maximum.
    static func rungs(graceEpochs: Int, reductionFactor: Int, maxEpochs: Int) -> [Int] {
        ASHAPolicy(trials: 0, graceEpochs: graceEpochs, reductionFactor: reductionFactor, maxEpochs: maxEpochs, higherIsBetter: true).rungs
    }

    /// How many of `trials` points can reach each rung: a rung takes at most the top
    /// ⌊n/η⌋ of the one below (`next`'s promotion rule).
    static func reaching(trials: Int, rungs: Int, reductionFactor: Int) -> [Int] {
        (0..<rungs).map { k in (0..<k).reduce(trials) { n, _ in n / reductionFactor } }
    }

    func next(known: [Int: JobResult], issued: [SearchJob]) -> SearchJob? {
        // Failed jobs rank last; ties go to the lower trial index.
        func score(_ r: JobResult) -> Double {
            guard r.status == .complete, let m = r.metric, m.isFinite else { return -.infinity }
            return higherIsBetter ? m : -m
        }
        // The trials of rung k that go on: the top ⌊n/η⌋ of its n results, failed ones never.
        func top(_ k: Int) -> [Int] {
            let done = known.values.filter { $0.job.stage == k }
                .sorted { (score($0), -$0.job.trial) > (score($1), -$1.job.trial) }
            return done.prefix(done.count / reductionFactor).filter { score($0) > -.infinity }.map(\.job.trial)
        }
        func promoted(_ k: Int) -> Set<Int> { Set(issued.filter { $0.stage == k }.map(\.trial)) }
        // Synchronous: rung k is full when every trial that will enter it has its result there.
        var full = [Bool](repeating: false, count: rungs.count)
        if synchronous {
            for k in 0..<(rungs.count - 1) {
                let entered = k == 0 ? Set(0..<trials) : Set(top(k - 1))
                full[k] = (k == 0 || full[k - 1]) && promoted(k) == entered
                    && known.values.filter { $0.job.stage == k }.count == entered.count
            }
        }
        for k in stride(from: rungs.count - 2, through: 0, by: -1) where !synchronous || full[k] {
            let going = promoted(k + 1)
            if let trial = top(k).first(where: { !going.contains($0) }) {
                return SearchJob(id: 0, trial: trial, stage: k + 1, fromEpoch: rungs[k], toEpoch: rungs[k + 1])
            }
        }
        let started = Set(issued.map(\.trial))
        if let fresh = order.first(where: { !started.contains($0) }) {
            return SearchJob(id: 0, trial: fresh, stage: 0, fromEpoch: 0, toEpoch: rungs[0])
        }
        return nil
    }
}

/// ASHA over a grid's points (see `ASHAPolicy`): a trial's run directory is continued from rung
/// to rung, and each rung ends as `train` does (its metric is the validation score of the best
/// weights so far).
struct ASHAStrategy: SearchStrategy {
    let grid: SearchGrid
    let points: [SearchPoint]
    let graceEpochs: Int
    let reductionFactor: Int
    let synchronous: Bool
    let metric: SearchMetric
    let maxEpochs: Int
    let seed: Int

    var rungs: [Int] { ASHAPolicy.rungs(graceEpochs: graceEpochs, reductionFactor: reductionFactor, maxEpochs: maxEpochs) }

    init(grid: SearchGrid, base: Config, graceEpochs: Int, reductionFactor: Int, synchronous: Bool, metric: SearchMetric) throws {
        self.grid = grid
        points = try grid.points(base: base)
        self.graceEpochs = graceEpochs
        self.reductionFactor = reductionFactor
        self.synchronous = synchronous
        self.metric = metric
        maxEpochs = base.train.epochs
        seed = base.model.seed
        try check(base: base)
    }

    /// The grace whose rungs, ×η each, let at least one of `trials` points reach `maxEpochs`
    /// (the longest first rung that does), for a search that gives none.
    static func grace(trials: Int, reductionFactor: Int, maxEpochs: Int) -> Int {
        var rungs = 1
        while ASHAPolicy.reaching(trials: trials, rungs: rungs + 1, reductionFactor: reductionFactor).last! > 0 { rungs += 1 }
        let span = (1..<rungs).reduce(1) { p, _ in p * reductionFactor }
        return max(1, (maxEpochs + span - 1) / span)
    }

    func check(base: Config) throws {
        guard graceEpochs >= 1, graceEpochs < base.train.epochs else { throw SearchError("--grace-epochs must be at least 1 and below epochs (\(base.train.epochs)), got \(graceEpochs)") }
        guard reductionFactor >= 2 else { throw SearchError("--reduction-factor must be at least 2, got \(reductionFactor)") }
        // Each rung promotes the top floor(n/η) of the one below: with too few points for the
        // rungs, no trial ever trains the config's epochs.
        let reaching = ASHAPolicy.reaching(trials: points.count, rungs: rungs.count, reductionFactor: reductionFactor)
        if reaching.last! == 0 {
            let reachable = reaching.lastIndex { $0 > 0 }! + 1
            let suggested = Self.grace(trials: points.count, reductionFactor: reductionFactor, maxEpochs: base.train.epochs)
            guard suggested < base.train.epochs else {
                throw SearchError("ASHA needs at least --reduction-factor (\(reductionFactor)) grid points for a trial to reach a second rung; this grid has \(points.count). Use --strategy grid, a smaller --reduction-factor, or more points.")
            }
            throw SearchError("with \(points.count) grid points and --reduction-factor \(reductionFactor), at most \(reaching.map(String.init).joined(separator: ", ")) trials reach the rungs at \(rungs.map(String.init).joined(separator: ", ")) epochs: none would train the full \(base.train.epochs). Use --grace-epochs \(suggested) (\(reachable) rungs), or leave it out (the search then picks it), a smaller --reduction-factor, or more grid points.")
        }
    }

    var name: String { "asha" }
    var identity: String {
        "asha " + grid.axes.map { "\($0.field)=\($0.values.joined(separator: ","))" }.joined(separator: " ")
            + " grace \(graceEpochs) eta \(reductionFactor) \(synchronous ? "sync" : "async") metric \(metric.rawValue)"
    }
    var policy: SchedulePolicy {
        var asha = ASHAPolicy(trials: points.count, graceEpochs: graceEpochs, reductionFactor: reductionFactor, maxEpochs: maxEpochs,
                              higherIsBetter: metric.higherIsBetter, synchronous: synchronous)
        asha.order = seededPermutation(points.count, seed: seed, purpose: .search, key: 0)
        return asha
    }

    func describe(groups: Int, ranksPerTrial: Int) -> String {
        "search (ASHA): \(points.count) grid points over \(grid.axes.map(\.field).joined(separator: " × ")); rungs at \(rungs.map(String.init).joined(separator: ", ")) epochs, the top 1/\(reductionFactor) promoted by \(metric.label)\(synchronous ? " once the rung is full (--promotion sync)" : ""); \(groups) group\(groups == 1 ? "" : "s") of \(ranksPerTrial) rank\(ranksPerTrial == 1 ? "" : "s"); a full grid would train \(points.count * maxEpochs) epochs"
    }

    func directory(_ job: SearchJob, in run: RunDirectory) -> RunDirectory { run.trial(points[job.trial].name) }

    func config(_ job: SearchJob) throws -> Config {
        var c = points[job.trial].config
        c.train.epochs = job.toEpoch
        return c
    }

    func metric(_ result: JobResult) -> Double? { metric.value(result) }
    func label(_ job: SearchJob) -> String { "\(points[job.trial].label) rung \(job.stage) (epochs \(job.fromEpoch)→\(job.toEpoch))" }

    func outcome(_ r: JobResult) -> String {
        r.status == .complete ? String(format: "%@ %.4f", metric.label, r.metric ?? .nan) : "FAILED: " + (r.reason ?? "unknown reason")
    }

    func session(_ job: SearchJob) -> (group: String, values: [SearchParameter])? {
        job.stage == 0 ? (points[job.trial].name, points[job.trial].parameters) : nil
    }
    var hparamsFields: [(name: String, values: [String])] { grid.axes.map { ($0.field, $0.values) } }

    /// The best complete job at the highest rung any trial reached.
    func best(_ results: [JobResult]) -> JobResult? {
        let complete = results.filter { $0.status == .complete && ($0.metric?.isFinite ?? false) }
        guard let top = complete.map(\.job.stage).max() else { return nil }
        let sign = metric.higherIsBetter ? 1.0 : -1.0
        return complete.filter { $0.job.stage == top }.max { (sign * $0.metric!, -$0.job.trial) < (sign * $1.metric!, -$1.job.trial) }
    }

    /// One row per job, in schedule order.
    func table(_ results: [JobResult], base: Config) -> ResultsTable {
        let fields = grid.axes.map(\.field)
        let sorted = results.sorted { $0.job.id < $1.job.id }
        let csv = sorted.map { r -> [String] in
            ["\(r.job.id)", points[r.job.trial].name, "\(r.job.stage)", "\(r.job.fromEpoch)", "\(r.job.toEpoch)"] + points[r.job.trial].parameters.map(\.value)
                + [r.status.rawValue, Cell.number(r.metric), Cell.number(r.bestValidMetric), Cell.number(r.coBps), Cell.number(r.fpBps),
                   Cell.number(r.velR2), Cell.number(r.psthR2), Cell.number(r.latentR2), Cell.quote(r.reason ?? ""), Cell.wall(r)]
        }
        let markdown = sorted.map { r -> [String] in
            ["\(r.job.id)", points[r.job.trial].name, "\(r.job.stage)", "\(r.job.fromEpoch)→\(r.job.toEpoch)"]
                + points[r.job.trial].parameters.map { Double($0.value).map { String(format: "%.4g", $0) } ?? $0.value }
                + [Cell.status(r), Cell.fixed(r.metric, 5), Cell.fixed(r.coBps), r.wallSeconds.map(formatDuration) ?? "–"]
        }
        return ResultsTable(
            csvHeader: ["job", "trial", "rung", "from_epoch", "to_epoch"] + fields + ["status", "metric", "best_valid_metric", "valid_co_bps",
                                                                                  "valid_fp_bps", "valid_vel_r2", "valid_psth_r2", "valid_latent_r2", "reason", "wall_seconds"],
            csvRows: csv, title: "Search results (ASHA)",
            intro: "One row per job: a trial trained to a rung. The metric is the validation \(metric.label) of the trial's best weights so far; the top 1/\(reductionFactor) of each rung go on.",
            markdownHeader: ["job", "trial", "rung", "epochs"] + fields + ["status", "metric", "co-bps", "wall"],
            markdownRows: markdown, links: sorted.map { "trials/\(points[$0.job.trial].name)" })
    }

    func answer(_ results: [JobResult], search: Search) -> SearchAnswer? {
        guard let best = best(results) else { return nil }
        let point = points[best.job.trial]
        var config = point.config
        config.train.epochs = maxEpochs
        let weights = directory(best.job, in: search.run).best
        let epochs = results.reduce(0) { $0 + $1.job.cost }
        return SearchAnswer(
            result: best, config: config,
            header: ["The best trial of the ASHA search in \(search.run) by \(metric.label): \(point.name)",
                     "(\(point.label)), \(String(format: "%.4f", best.metric ?? .nan)) after \(best.job.toEpoch) epochs; its weights: \(weights)",
                     "Train it to the full \(maxEpochs) epochs with: lflow-dist train --config \(search.run.path)/best.yaml --data \(search.dataPath)"],
            line: String(format: "best by %@: %@ at %d epochs, %@ %.4f → %@", metric.rawValue, point.label, best.job.toEpoch, metric.label,
                         best.metric ?? .nan, search.run.path + "/best.yaml")
                + "\na full grid would train \(points.count * maxEpochs) epochs; ASHA trained \(epochs) (\(Int((100 * Double(epochs) / Double(max(points.count * maxEpochs, 1))).rounded()))%)")
    }

    func figures(_ results: [JobResult], base: Config) -> [String] {
        let byTrial = Dictionary(grouping: results.sorted { $0.job.id < $1.job.id }.filter { $0.status == .complete && ($0.metric?.isFinite ?? false) },
                                 by: \.job.trial)
        let series = byTrial.keys.sorted().map { t in
            Series(name: points[t].label, x: byTrial[t]!.map { Double($0.job.toEpoch) }, y: byTrial[t]!.map { $0.metric! })
        }
        return [Plots.lines(title: "\(metric.label) per trial", subtitle: "at each rung reached", xLabel: "epoch", yLabel: metric.label, series: series)]
    }

    func summary(_ results: [JobResult], base: Config) -> [String] {
        let epochs = results.reduce(0) { $0 + $1.job.cost }, failed = results.filter { $0.status == .failed }.count
        return ["\(results.count) jobs, \(epochs) epochs trained, \(failed) failed"]
    }
}
