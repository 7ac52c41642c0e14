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
