import Foundation
import Kernels
import Model

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
