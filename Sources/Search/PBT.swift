import Checkpoint
import Distributed
import Foundation
import Kernels
import Model
import Report
import RunFiles
import Support
import Training

/// Population-based training (Jaderberg et al. 2017) as AutoLFADS runs it (Keshtkaran et al.
/// 2022): `members` models train together in generations of `generationEpochs` epochs (the
/// first ending after the burn-in, which covers the KL and weight-decay warm-ups). At each
/// generation's end the members are paired at random; in each pair the one with the worse
/// exponentially smoothed validation metric copies the other's weights, Adam moments, weight
/// average and schedule state (exploit) and its explored values, each multiplied by 1 ± u,
/// u ~ U(0.002·w, w), within bounds (explore). A member that failed (NaN) always copies a
/// winner. The search stops at the config's epochs, or when the best smoothed metric has
/// improved by less than `minImprovement` over `patience` generations.
///
/// Every draw is keyed by (seed, generation, member), so the schedule is a function of the
/// results alone: exact under any kill and restart.
struct PBTPolicy: SchedulePolicy {
    let members: Int
    /// Epochs at which generations end, increasing; the last is the config's epochs.
    let boundaries: [Int]
    let space: SearchSpace
    let base: Config
    let seed: Int
    /// Generation 0's explored values of each member.
    let initial: [[SearchParameter]]
    /// Weight of the newest generation in the smoothed metric.
    static let smoothing = 0.3
    let patience: Int
    let minImprovement: Double

    static func boundaries(burnIn: Int, generationEpochs: Int, maxEpochs: Int) -> [Int] {
        var out: [Int] = []
        var e = max(burnIn, generationEpochs)
        while e < maxEpochs { out.append(e); e += generationEpochs }
        out.append(maxEpochs)
        return out
    }

    /// Uniform draws for (generation, member), keyed; `count` of them.
    func draws(generation: Int, member: Int, count: Int) -> [Double] {
        let buffer = Buffer<Double>(count: max(count, 1))
        NoiseStream(seed: UInt64(seed), purpose: .search, epoch: generation).fillUniform(trial: member, into: buffer.ptr, count: count)
        return (0..<count).map { buffer[$0] }
    }

    /// Generation 0's values: the config's for every member (`sample: false`), or drawn within
    /// the bounds (log-uniform across decades).
    static func initialValues(members: Int, space: SearchSpace, base: Config, seed: Int, sample: Bool) -> [[SearchParameter]] {
        let policy = PBTPolicy(members: members, boundaries: [1], space: space, base: base, seed: seed, initial: [], patience: 0, minImprovement: 0)
        return (0..<members).map { m in
            let u = policy.draws(generation: -1, member: m, count: space.fields.count)
            return space.fields.enumerated().map { i, f in
                let current = Double(Config.field(named: f.field)!.get(base)) ?? f.lower
                let v = !sample ? current
                    : f.logScale ? exp(log(f.lower) + u[i] * (log(f.upper) - log(f.lower))) : f.lower + u[i] * (f.upper - f.lower)
                return SearchParameter(field: f.field, value: SearchSpace.text(f.field, v, base: base) ?? "\(v)")
            }
        }
    }

    /// The tournament after generation `g`: for every member, whose checkpoint it continues and
    /// with which values; and every member's smoothed metric. `results[m][j]`: member m's result
    /// of generation j ≤ g.
    func tournament(after g: Int, jobs: [[SearchJob]], results: [[JobResult]]) -> (plan: [(parent: Int, values: [SearchParameter])], smoothed: [Double]) {
        let smoothed = Self.smoothed(through: g, jobs: jobs, results: results)
        let order = seededOrder(generation: g)
        var plan = (0..<members).map { m in (parent: m, values: jobs[m][g].values) }
        func worse(_ a: Int, _ b: Int) -> Bool { (smoothed[a], a) > (smoothed[b], b) }
        let best = (0..<members).min { (smoothed[$0], $0) < (smoothed[$1], $1) }!
        for pair in stride(from: 0, to: order.count - 1, by: 2) {
            let a = order[pair], b = order[pair + 1]
            let (loser, winner) = worse(a, b) ? (a, b) : (b, a)
            // A winner that failed too (both NaN) cannot be copied: take the population's best.
            let source = smoothed[winner].isFinite ? winner : best
            plan[loser] = (source, explore(jobs[source][g].values, generation: g + 1, member: loser))
        }
        // A failed member never continues itself, whatever its pair (an odd one out, or the
        // "winner" of two failures): it copies the population's best.
        for m in 0..<members where !smoothed[m].isFinite && plan[m].parent == m {
            plan[m] = (best, explore(jobs[best][g].values, generation: g + 1, member: m))
        }
        return (plan, smoothed)
    }

    /// Smoothed metrics through generation `g` along each member's lineage (a copied member
    /// takes over its parent's history); +∞ for a failed generation.
    static func smoothed(through g: Int, jobs: [[SearchJob]], results: [[JobResult]]) -> [Double] {
        var s: [Double] = []
        for j in 0...g {
            s = (0..<jobs.count).map { m in
                let v = results[m][j].status == .complete ? (results[m][j].metric ?? .infinity) : .infinity
                guard v.isFinite else { return .infinity }
                guard j > 0, let parent = jobs[m][j].parent, s[parent].isFinite else { return v }
                return smoothing * v + (1 - smoothing) * s[parent]
            }
        }
        return s
    }

    func seededOrder(generation g: Int) -> [Int] {
        let u = draws(generation: g, member: members, count: members)
        return (0..<members).sorted { (u[$0], $0) < (u[$1], $1) }
    }

    /// Each explored value times 1 ± u within its bounds; a value the config refuses (an
    /// unstable dt, say) keeps the parent's.
    func explore(_ values: [SearchParameter], generation: Int, member: Int) -> [SearchParameter] {
        let u = draws(generation: generation, member: member, count: 2 * space.fields.count)
        return space.fields.enumerated().map { i, f in
            let current = Double(values.first { $0.field == f.field }?.value ?? "") ?? f.lower
            let sign = u[2 * i] < 0.5 ? -1.0 : 1.0
            let factor = 1 + sign * (0.002 * f.weight + u[2 * i + 1] * (f.weight - 0.002 * f.weight))
            let v = min(max(current * factor, f.lower), f.upper)
            return SearchParameter(field: f.field, value: SearchSpace.text(f.field, v, base: base) ?? values.first { $0.field == f.field }!.value)
        }
    }

    /// True when generation `g` should not be trained: the best smoothed metric of the last
    /// `patience` generations before it improved on the one before them by less than
    /// `minImprovement`.
    func stopped(before g: Int, jobs: [[SearchJob]], results: [[JobResult]]) -> Bool {
        guard patience > 0, g > patience else { return false }
        let recent = Self.smoothed(through: g - 1, jobs: jobs, results: results).min() ?? .infinity
        let earlier = Self.smoothed(through: g - 1 - patience, jobs: jobs, results: results).min() ?? .infinity
        return !(earlier - recent >= minImprovement)
    }

    func next(known: [Int: JobResult], issued: [SearchJob]) -> SearchJob? {
        var jobs = [[SearchJob]](repeating: [], count: members)
        for job in issued { jobs[job.trial].append(job) }
        for g in 0..<boundaries.count {
            for m in 0..<members where jobs[m].count == g {
                let from = g == 0 ? 0 : boundaries[g - 1]
                if g == 0 { return SearchJob(id: 0, trial: m, stage: 0, fromEpoch: 0, toEpoch: boundaries[0], values: initial[m]) }
                // Every member's previous generation must be known.
                var results: [[JobResult]] = []
                for member in 0..<members {
                    guard jobs[member].count >= g else { return nil }
                    var row: [JobResult] = []
                    for j in 0..<g {
                        guard let r = known[jobs[member][j].id] else { return nil }
                        row.append(r)
                    }
                    results.append(row)
                }
                if stopped(before: g, jobs: jobs, results: results) { return nil }
                // Nothing to copy when every member failed.
                if results.allSatisfy({ $0[g - 1].status != .complete }) { return nil }
                let plan = tournament(after: g - 1, jobs: jobs, results: results).plan[m]
                return SearchJob(id: 0, trial: m, stage: g, fromEpoch: from, toEpoch: boundaries[g], parent: plan.parent, values: plan.values)
            }
        }
        return nil
    }
}

/// PBT (see `PBTPolicy`): a run directory per member and generation, each generation continuing
/// its parent's checkpoint with the member's explored values; jobs end after training (scored on
/// their validation metric), and the best member is scored on the validation split at the end.
/// Disk stays bounded: a generation's checkpoints go once every member of the next has finished.
struct PBTStrategy: SearchStrategy {
    let members: Int
    let generationEpochs: Int
    let burnInEpochs: Int
    let space: SearchSpace
    let sampleInitial: Bool
    let patience: Int
    let minImprovement: Double
    let base: Config
    let boundaries: [Int]

    init(members: Int, generationEpochs: Int, burnInEpochs: Int, space: SearchSpace, sampleInitial: Bool, patience: Int,
         minImprovement: Double, base: Config) throws {
        self.members = members
        self.generationEpochs = generationEpochs
        self.burnInEpochs = burnInEpochs
        self.space = space
        self.sampleInitial = sampleInitial
        self.patience = patience
        self.minImprovement = minImprovement
        self.base = base
        boundaries = PBTPolicy.boundaries(burnIn: burnInEpochs, generationEpochs: generationEpochs, maxEpochs: base.train.epochs)
        try check()
    }

    func check() throws {
        guard members >= 2 else { throw SearchError("--population must be at least 2 (a tournament needs a pair), got \(members)") }
        guard generationEpochs >= 1, max(burnInEpochs, generationEpochs) < base.train.epochs else {
            throw SearchError("--generation-epochs \(generationEpochs) and --burn-in-epochs \(burnInEpochs) leave no generation after the first within epochs \(base.train.epochs); raise epochs or shorten them")
        }
        guard !space.fields.isEmpty else { throw SearchError("PBT needs at least one explored field (--explore field=lower:upper)") }
        guard patience >= 0, minImprovement >= 0 else { throw SearchError("--patience-generations and --min-improvement must be >= 0") }
        for f in space.fields {
            for v in [f.lower, f.upper] {
                var probe = base
                try? probe.set(f.field, "\(v)")
                do { try probe.validate() } catch {
                    throw SearchError("--explore \(f.field)=\(f.lower):\(f.upper): the config refuses \(f.field) = \(v): \(error). Narrow the bounds.")
                }
                if let problem = LangevinStability.problem(probe.model, steps: 60) {
                    throw SearchError("--explore \(f.field)=\(f.lower):\(f.upper): at \(f.field) = \(v) \(problem)")
                }
            }
        }
    }

    var name: String { "pbt" }
    var identity: String {
        "pbt members \(members) generations \(generationEpochs) burn-in \(burnInEpochs) initial \(sampleInitial ? "sample" : "config") patience \(patience) min-improvement \(minImprovement) explore "
            + space.fields.map { "\($0.field)=\($0.lower):\($0.upper):\($0.weight)" }.joined(separator: " ")
    }
    var policy: SchedulePolicy {
        PBTPolicy(members: members, boundaries: boundaries, space: space, base: base, seed: base.model.seed,
                  initial: PBTPolicy.initialValues(members: members, space: space, base: base, seed: base.model.seed, sample: sampleInitial),
                  patience: patience, minImprovement: minImprovement)
    }

    func describe(groups: Int, ranksPerTrial: Int) -> String {
        "search (PBT): \(members) members over \(groups) group\(groups == 1 ? "" : "s") of \(ranksPerTrial) rank\(ranksPerTrial == 1 ? "" : "s"); generations end at \(boundaries.map(String.init).joined(separator: ", ")) epochs; exploring \(space.fields.map { "\($0.field) [\($0.lower), \($0.upper)]" }.joined(separator: ", ")); members start \(sampleInitial ? "from values drawn within the bounds" : "from the config"); tournaments on the smoothed validation heldOut"
    }

    func directory(_ job: SearchJob, in run: RunDirectory) -> RunDirectory { run.pbtMember(job.trial, generation: job.stage) }

    func config(_ job: SearchJob) throws -> Config {
        var c = base
        for p in job.values { try c.set(p.field, p.value, source: "PBT") }
        // Members draw their own noise but validate on the same trials.
        c.model.seed = base.model.seed + job.trial
        c.train.splitSeed = base.validationSplitSeed
        c.train.epochs = job.toEpoch
        try c.validate()
        return c
    }

    /// Generation g > 0 continues its parent's checkpoint of generation g − 1.
    func warmStart(_ job: SearchJob, in run: RunDirectory) throws -> WarmStart? {
        guard job.stage > 0, let parent = job.parent else { return nil }
        let source = run.pbtMember(parent, generation: job.stage - 1)
        guard let path = RunCheckpoints(source).paths().first else {
            throw TrainingError("PBT: the checkpoint of member \(parent) at the end of generation \(job.stage - 1) is missing from \(source); the search directory was altered. Start the search again in a new run directory.")
        }
        return WarmStart(checkpoint: path, adjustable: Set(space.fields.map(\.field)).union(["seed"]))
    }

    func evaluates(_ job: SearchJob) -> Bool { false }
    func metric(_ result: JobResult) -> Double? { result.validMetric }

    func label(_ job: SearchJob) -> String {
        String(format: "member %d generation %d (epochs %d→%d%@)", job.trial, job.stage, job.fromEpoch, job.toEpoch,
               job.parent.map { $0 == job.trial ? "" : ", copied from member \($0)" } ?? "")
    }

    func outcome(_ r: JobResult) -> String {
        r.status == .complete ? String(format: "valid %@ %.4f", "heldOut", r.metric ?? .nan) : "FAILED: " + (r.reason ?? "unknown reason")
    }

    func session(_ job: SearchJob) -> (group: String, values: [SearchParameter])? {
        ("member \(job.trial)", [SearchParameter(field: "member", value: "\(job.trial)")] + job.values)
    }
    var hparamsFields: [(name: String, values: [String])] {
        [("member", (0..<members).map(String.init))] + space.fields.map { ($0.field, ["\($0.lower)", "\($0.upper)"]) }
    }

    /// Each member's jobs, in order.
    func lineages(_ jobs: [SearchJob]) -> [[SearchJob]] {
        var out = [[SearchJob]](repeating: [], count: members)
        for job in jobs.sorted(by: { $0.id < $1.id }) { out[job.trial].append(job) }
        return out
    }

    /// Each member's smoothed metric after each generation it finished (by job id; only
    /// generations every member finished).
    func smoothed(_ results: [JobResult]) -> [Int: Double] {
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

    /// The last generation's member with the best smoothed metric, and that metric.
    func bestMember(_ results: [JobResult]) -> (result: JobResult, smoothed: Double)? {
        var rows = [[JobResult]](repeating: [], count: members)
        for r in results.sorted(by: { $0.job.id < $1.job.id }) { rows[r.job.trial].append(r) }
        let g = rows.map(\.count).min() ?? 0
        guard g > 0 else { return nil }
        let smoothed = PBTPolicy.smoothed(through: g - 1, jobs: rows.map { $0.prefix(g).map(\.job) }, results: rows.map { Array($0.prefix(g)) })
        guard let m = (0..<members).filter({ smoothed[$0].isFinite }).min(by: { (smoothed[$0], $0) < (smoothed[$1], $1) }) else { return nil }
        return (rows[m][g - 1], smoothed[m])
    }

    /// One row per member and generation, in schedule order.
    func table(_ results: [JobResult], base: Config) -> ResultsTable {
        let explored = space.fields.map(\.field)
        let smoothed = self.smoothed(results)
        let sorted = results.sorted { $0.job.id < $1.job.id }
        func values(_ r: JobResult) -> [String] { explored.map { f in r.job.values.first { $0.field == f }?.value ?? "" } }
        let csv = sorted.map { r -> [String] in
            ["\(r.job.id)", "\(r.job.trial)", "\(r.job.stage)", "\(r.job.fromEpoch)", "\(r.job.toEpoch)", r.job.parent.map(String.init) ?? ""]
                + values(r) + [r.status.rawValue, Cell.number(r.metric), Cell.number(smoothed[r.job.id]), Cell.number(r.bestValidMetric),
                               Cell.number(r.coBps), Cell.number(r.fpBps), Cell.number(r.velR2), Cell.number(r.psthR2), Cell.number(r.latentR2),
                               Cell.quote(r.reason ?? ""), Cell.wall(r)]
        }
        let markdown = sorted.map { r -> [String] in
            ["\(r.job.id)", "\(r.job.trial)", "\(r.job.stage)", "\(r.job.fromEpoch)→\(r.job.toEpoch)", r.job.parent.map(String.init) ?? "–"]
                + values(r).map { v in Double(v).map { String(format: "%.4g", $0) } ?? v }
                + [Cell.status(r), Cell.fixed(r.metric, 5), Cell.fixed(smoothed[r.job.id], 5), Cell.fixed(r.coBps), r.wallSeconds.map(formatDuration) ?? "–"]
        }
        return ResultsTable(
            csvHeader: ["job", "member", "generation", "from_epoch", "to_epoch", "parent"] + explored
                + ["status", "metric", "smoothed", "best_valid_metric", "valid_co_bps", "valid_fp_bps", "valid_vel_r2", "valid_psth_r2",
                   "valid_latent_r2", "reason", "wall_seconds"],
            csvRows: csv, title: "Search results (PBT)",
            intro: "One row per member and generation. `from` is the member whose weights, Adam moments, weight average and schedule state the generation continued (itself unless it lost its tournament). The metric is the last epoch's validation heldOut (lower is better); tournaments compare its exponential smoothing along each lineage.",
            markdownHeader: ["job", "member", "gen.", "epochs", "from"] + explored + ["status", "metric", "smoothed", "co-bps", "wall"],
            markdownRows: markdown, links: sorted.map { _ in nil })
    }

    func answer(_ results: [JobResult], search: Search) -> SearchAnswer? {
        guard let best = bestMember(results), let config = try? config(best.result.job) else { return nil }
        let weights = directory(best.result.job, in: search.run)
        let scores = JSON.read(ValidationScores.self, from: weights.validation)
        return SearchAnswer(
            result: best.result, config: config,
            header: ["The best member of the PBT search in \(search.run): member \(best.result.job.trial) after generation \(best.result.job.stage)",
                     "(smoothed validation heldOut \(String(format: "%.5f", best.smoothed))); its weights: \(weights.best)",
                     "These are its explored values at the end. They are one step of a schedule (best-schedule.yaml):",
                     "training from scratch with them is a different model. Use the weights: lflow-dist predict --checkpoint \(weights.best)"],
            line: String(format: "best member: %d (smoothed validation %@ %.5f)%@ → %@", best.result.job.trial, "heldOut",
                         best.smoothed, scores.map { String(format: ", validation co-bps %.4f", $0.coBps) } ?? "", weights.path),
            files: ["best-schedule.yaml": schedule(best.result.job, results: results)])
    }

    /// The best member's lineage: for each generation, the member whose weights it carried and
    /// the explored values it trained with.
    func schedule(_ last: SearchJob, results: [JobResult]) -> String {
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

    func figures(_ results: [JobResult], base: Config) -> [String] {
        let sorted = results.sorted { $0.job.id < $1.job.id }
        let byMember = Dictionary(grouping: sorted.filter { $0.status == .complete && ($0.metric?.isFinite ?? false) }, by: \.job.trial)
        var figures = [Plots.lines(title: "Validation heldOut per member", subtitle: "at the end of each generation (lower is better)",
                                   xLabel: "epoch", yLabel: "heldOut",
                                   series: byMember.keys.sorted().map { m in
                                       Series(name: "member \(m)", x: byMember[m]!.map { Double($0.job.toEpoch) }, y: byMember[m]!.map { $0.metric! })
                                   })]
        for field in space.fields {
            let series = byMember.keys.sorted().map { m -> Series in
                let rows = sorted.filter { $0.job.trial == m }
                return Series(name: "member \(m)", x: rows.map { Double($0.job.stage) },
                              y: rows.map { r in Double(r.job.values.first { $0.field == field.field }?.value ?? "") ?? .nan })
            }
            figures.append(Plots.lines(title: field.field, subtitle: "explored within [\(field.lower), \(field.upper)]",
                                       xLabel: "generation", yLabel: field.field, series: series, logY: field.logScale))
        }
        return figures
    }

    /// Once every member has finished generation g, generation g − 1's checkpoints and weights
    /// are no longer needed (generation g started from them); they go, the logs and metrics stay.
    func cleanUp(after job: SearchJob, search: Search) {
        let g = job.stage
        guard g >= 1 else { return }
        let generation = search.schedule().issued.filter { $0.stage == g }
        guard generation.count == members, generation.allSatisfy({ search.result($0.id) != nil }) else { return }
        for m in 0..<members {
            let old = search.run.pbtMember(m, generation: g - 1)
            for path in RunCheckpoints(old).paths() + [old.best, old.last] { try? FileManager.default.removeItem(atPath: path) }
        }
    }

    /// Every spent generation swept (a kill between a generation's last result and its clean-up
    /// leaves one), then the best member scored on the validation split over every rank, with
    /// its submission, as `train` ends.
    func finish(search: Search) throws {
        let results = search.results()
        if search.world.isRoot {
            for g in Set(results.map(\.job.stage)).sorted() {
                if let job = results.first(where: { $0.job.stage == g })?.job { cleanUp(after: job, search: search) }
            }
        }
        guard let best = bestMember(results) else { return }
        if search.world.isRoot { search.say("scoring the best member (\(best.result.job.trial)) on the validation split and writing its submission…") }
        _ = try TrainingRun.run(config: try config(best.result.job), context: search.context(in: directory(best.result.job, in: search.run), comm: search.world, log: { _ in }))
    }

    func summary(_ results: [JobResult], base: Config) -> [String] {
        let epochs = results.reduce(0) { $0 + $1.job.cost }, failed = results.filter { $0.status == .failed }.count
        return ["\(results.count) jobs, \(epochs) epochs trained, \(failed) failed"]
    }

    func failure(_ results: [JobResult], search: Search) -> String? {
        bestMember(results) == nil
            ? "every PBT member failed in the same generation, so no member was left to copy and the search stopped (the reasons are in \(search.run)/results.md). Narrow the explored bounds (a learning rate that high diverges) or lower the initial values (--initial config)."
            : nil
    }
}
