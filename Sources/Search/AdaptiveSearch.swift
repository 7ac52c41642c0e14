import Checkpoint
import Data
import Distributed
import Evaluation
import Inference
import Foundation
import Model
import Recipes
import RunFiles
import Support
import Training

/// What an adaptive search does with its groups: successive halving over a grid, or a
/// population trained in generations.
public enum AdaptiveStrategy: Sendable, Equatable {
    /// ASHA over the grid's points: rungs from `graceEpochs`, ×`reductionFactor`, to the config's epochs;
    /// `synchronous`: a rung promotes only once every trial that entered it has its result there.
    case asha(grid: SearchGrid, graceEpochs: Int, reductionFactor: Int, synchronous: Bool)
    /// PBT: `members`, generations of `generationEpochs` after `burnInEpochs`, exploring `space`;
    /// generation 0 samples the space (`sampleInitial`) or starts every member from the config.
    case pbt(members: Int, generationEpochs: Int, burnInEpochs: Int, space: SearchSpace, sampleInitial: Bool,
             patience: Int, minImprovement: Double)

    var name: String {
        switch self { case .asha: return "asha"; case .pbt: return "pbt" }
    }
}

/// ASHA and PBT over the ranks of one MPI job: the world splits into groups of
/// `ranksPerTrial` (MPI_Comm_split) and each group trains the jobs a `VirtualSchedule` gives it,
/// each an ordinary `TrainingRun` on the group's sub-communicator. Every decision is a
/// function of the finished jobs' results (`jobs/j<id>.json`, written once, atomically), so a
/// search killed at any moment and started again with the same command ends with bitwise the
/// same table and weights; a job that was running resumes from its own checkpoint.
///
/// Disk stays bounded: every run keeps one resumable checkpoint; PBT removes a generation's
/// checkpoints once every member of the next generation has finished (the next generation
/// starts from them), so at most two per member are on disk, besides best.h5 of each run.
public final class AdaptiveSearch {
    public let strategy: AdaptiveStrategy
    public let base: Config
    public let tensors: NLBTensors
    public let dataPath: String
    public let runDirectory: String
    public let datasetName: String?
    public let world: Communicator
    public let ranksPerTrial: Int
    public let metric: SearchMetric
    let say: (String) -> Void
    let policy: SchedulePolicy
    /// ASHA: the grid's points; PBT: none (members are numbered).
    let points: [SearchPoint]
    /// PBT: generation boundaries in epochs.
    let boundaries: [Int]
    /// Writes the search's report.html from its tables (world rank 0).
    public var overview: ((AdaptiveSearch, [JobResult]) -> Void)?

    var announced = Set<Int>()
    let started = Date()

    public init(strategy: AdaptiveStrategy, base: Config, tensors: NLBTensors, dataPath: String, runDirectory: String,
                datasetName: String?, world: Communicator, ranksPerTrial: Int, metric: SearchMetric,
                say: @escaping (String) -> Void) throws {
        try Search.checkLayout(worldSize: world.size, ranksPerTrial: ranksPerTrial)
        try Self.check(strategy: strategy, base: base)
        self.strategy = strategy
        // Every run keeps one resumable checkpoint (the disk bound); it does not change the trajectory.
        var config = base
        config.keepCheckpoints = 1
        self.base = config
        self.tensors = tensors
        self.dataPath = dataPath
        self.runDirectory = runDirectory
        self.datasetName = datasetName
        self.world = world
        self.ranksPerTrial = ranksPerTrial
        self.metric = metric
        self.say = say
        switch strategy {
        case let .asha(grid, grace, eta, synchronous):
            points = try grid.points(base: config)
            boundaries = []
            var asha = ASHAPolicy(trials: points.count, graceEpochs: grace, reductionFactor: eta, maxEpochs: config.epochs,
                                  higherIsBetter: metric.higherIsBetter, synchronous: synchronous)
            asha.order = seededPermutation(points.count, seed: config.seed, purpose: .search, key: 0)
            policy = asha
        case let .pbt(members, generation, burnIn, space, sample, patience, minImprovement):
            points = []
            boundaries = PBTPolicy.boundaries(burnIn: burnIn, generationEpochs: generation, maxEpochs: config.epochs)
            policy = PBTPolicy(members: members, boundaries: boundaries, space: space, base: config, seed: config.seed,
                               initial: PBTPolicy.initialValues(members: members, space: space, base: config, seed: config.seed, sample: sample),
                               patience: patience, minImprovement: minImprovement)
        }
    }

    /// Refuses, before anything trains, what cannot be exact or cannot work: a wall-clock budget
    /// (epochs are the resource and the clock), a cosine schedule (its shape depends on the
    /// total epochs, which a rung or a generation does not know), bounds the config refuses.
    public static func check(strategy: AdaptiveStrategy, base: Config) throws {
        guard base.maxMinutes == 0 else {
            throw SearchError("--strategy \(strategy.name) counts its budget in epochs, so that a killed search decides the same: drop maxMinutes and set epochs (the longest a trial trains)")
        }
        guard base.lrSchedule == .plateau else {
            throw SearchError("--strategy \(strategy.name) continues runs in steps of epochs; the cosine schedule depends on the total, so use lrSchedule: plateau")
        }
        switch strategy {
        case let .asha(grid, grace, eta, _):
            guard grace >= 1, grace < base.epochs else { throw SearchError("--grace-epochs must be at least 1 and below epochs (\(base.epochs)), got \(grace)") }
            guard eta >= 2 else { throw SearchError("--reduction-factor must be at least 2, got \(eta)") }
            // Each rung promotes the top floor(n/η) of the one below: with too few points for the
            // rungs, no trial ever trains the config's epochs.
            let rungs = ASHAPolicy.rungs(graceEpochs: grace, reductionFactor: eta, maxEpochs: base.epochs)
            let count = try grid.points(base: base).count
            let reaching = ASHAPolicy.reaching(trials: count, rungs: rungs.count, reductionFactor: eta)
            if reaching.last! == 0 {
                let reachable = reaching.lastIndex { $0 > 0 }! + 1
                // The grace whose rungs, ×η each, reach epochs in `reachable` steps.
                let span = (1..<reachable).reduce(1) { p, _ in p * eta }
                let suggested = (base.epochs + span - 1) / span
                throw SearchError("with \(count) grid points and --reduction-factor \(eta), at most \(reaching.map(String.init).joined(separator: ", ")) trials reach the rungs at \(rungs.map(String.init).joined(separator: ", ")) epochs: none would train the full \(base.epochs). Use --grace-epochs \(suggested) (\(reachable) rungs), a smaller --reduction-factor, or more grid points.")
            }
        case let .pbt(members, generation, burnIn, space, _, patience, minImprovement):
            guard members >= 2 else { throw SearchError("--population must be at least 2 (a tournament needs a pair), got \(members)") }
            guard generation >= 1, max(burnIn, generation) < base.epochs else {
                throw SearchError("--generation-epochs \(generation) and --burn-in-epochs \(burnIn) leave no generation after the first within epochs \(base.epochs); raise epochs or shorten them")
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
                    if let problem = LangevinStability.problem(probe, steps: 60) {
                        throw SearchError("--explore \(f.field)=\(f.lower):\(f.upper): at \(f.field) = \(v) \(problem)")
                    }
                }
            }
        }
    }

    public var groups: Int { world.size / ranksPerTrial }
    var jobsDirectory: String { runDirectory + "/jobs" }
    func resultPath(_ id: Int) -> String { jobsDirectory + String(format: "/j%05d.json", id) }
    func readResult(_ id: Int) -> JobResult? { JSON.read(JobResult.self, from: resultPath(id)) }

    /// The run directory of a job: ASHA: the trial's own (continued rung to rung); PBT: one per
    /// member and generation.
    public func directory(_ job: SearchJob) -> String {
        switch strategy {
        case .asha: return runDirectory + "/trials/" + points[job.trial].name
        case .pbt: return runDirectory + String(format: "/members/m%02d/g%03d", job.trial, job.stage)
        }
    }

    /// The config a job trains with.
    func config(_ job: SearchJob) throws -> Config {
        switch strategy {
        case .asha:
            var c = points[job.trial].config
            c.epochs = job.toEpoch
            return c
        case .pbt:
            var c = base
            for p in job.values { try c.set(p.field, p.value, source: "PBT") }
            // Members draw their own noise but validate on the same trials.
            c.seed = base.seed + job.trial
            c.splitSeed = base.validationSplitSeed
            c.epochs = job.toEpoch
            try c.validate()
            return c
        }
    }

    func schedule() -> VirtualSchedule {
        VirtualSchedule.simulate(workers: groups, policy: policy, result: readResult)
    }

    // MARK: - Running

    /// Runs the search to its end. Throws `Preempted` on every rank after SIGTERM/SIGUSR1;
    /// the same command continues.
    @discardableResult
    public func run() throws -> [JobResult] {
        try Search.agreeOnRoot(world) { try prepareRunDirectory() }
        Preemption.share(through: RunDirectory(runDirectory).preemptedMarker)
        let groupIndex = world.rank / ranksPerTrial
        let group = try world.split(color: groupIndex, key: world.rank)
        group.deadline = world.deadline
        if world.isRoot {
            describe()
            switch strategy {
            case let .asha(grid, _, _, _): HParamsLog.experiment(runDirectory: runDirectory, fields: grid.axes.map { ($0.field, $0.values) })
            case let .pbt(members, _, _, space, _, _, _):
                HParamsLog.experiment(runDirectory: runDirectory, fields: [("member", (0..<members).map(String.init))]
                                      + space.fields.map { ($0.field, ["\($0.lower)", "\($0.upper)"]) })
            }
        }
        var preempted = false
        while true {
            // The group's rank 0 decides: a job id, -1 done, -2 preempted, -3 not decidable yet.
            var choice = [-1.0]
            if group.isRoot {
                if Preemption.requested {
                    choice[0] = -2
                } else {
                    let schedule = schedule()
                    if let job = schedule.assignments[groupIndex].first(where: { readResult($0.id) == nil }) {
                        choice[0] = Double(job.id)
                    } else {
                        choice[0] = schedule.complete ? -1 : -3
                    }
                }
            }
            try group.broadcast(&choice, count: 1, root: 0)
            if choice[0] == -2 { preempted = true; break }
            if choice[0] == -1 { break }
            if choice[0] == -3 {
                if world.isRoot { announce() }
                Thread.sleep(forTimeInterval: 0.5)
                continue
            }
            let job = schedule().issued[Int(choice[0])]
            do {
                try train(job, group: group)
            } catch is Preempted {
                preempted = true
                break
            }
            if world.isRoot { announce() }
        }
        try world.barrier(pollingEvery: 0.5) { if world.isRoot { announce() } }
        let anyPreempted = try world.sum([preempted || Preemption.requested ? 1 : 0])[0] > 0
        if anyPreempted { throw Preempted(checkpoint: runDirectory + "/{trials,members}/*/ckpt-*.h5") }
        // A kill between a generation's last result and its clean-up leaves the generation before
        // it on disk, and no later job removes it: sweep every spent generation at the end.
        if world.isRoot, case .pbt = strategy {
            for g in Set(schedule().issued.map(\.stage)).sorted() { removeSpentCheckpoints(after: g) }
        }
        // The end: PBT scores its best member on the validation split, over every rank.
        if case .pbt = strategy { try evaluateBestMember() }
        var results: [JobResult] = []
        if world.isRoot {
            announce()
            results = schedule().issued.compactMap { readResult($0.id) }
            try AdaptiveResults(search: self, results: results).write()
            overview?(self, results)
            summarise(results)
        }
        if case .pbt = strategy, bestMember() == nil {
            throw AgreedFailure(reason: world.isRoot ? SearchError("every PBT member failed in the same generation, so no member was left to copy and the search stopped (the reasons are in \(runDirectory)/results.md). Narrow the explored bounds (a learning rate that high diverges) or lower the initial values (--initial config).") : nil)
        }
        return results
    }

    /// Trains one job on the group and writes its result (group rank 0). A job that fails the
    /// same way on every rank (a NaN loss, an unstable setting) is a result too: ASHA never
    /// promotes it, PBT replaces the member by a copy of a winner.
    func train(_ job: SearchJob, group: Communicator) throws {
        let directory = directory(job)
        var logFile: FileHandle?
        if group.isRoot {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            let logPath = RunDirectory(directory).log
            if !FileManager.default.fileExists(atPath: logPath) { FileManager.default.createFile(atPath: logPath, contents: nil) }
            logFile = try FileHandle(forWritingTo: URL(fileURLWithPath: logPath))
            try logFile?.seekToEnd()
        }
        defer { try? logFile?.close() }
        let log: (String) -> Void = { line in logFile?.write(Data((line + "\n").utf8)) }
        let afterEpoch: ((EpochRecord) -> Void)? = world.isRoot ? { _ in self.announce() } : nil
        var result = JobResult(job: job, status: .failed)
        if group.isRoot && (job.stage == 0 || strategy.isPBT) && !FileManager.default.fileExists(atPath: RunDirectory(directory).metrics) {
            let values = strategy.isPBT ? [SearchParameter(field: "member", value: "\(job.trial)")] + job.values : points[job.trial].parameters
            HParamsLog.session(directory: directory, group: strategy.isPBT ? "member \(job.trial)" : points[job.trial].name, values: values)
        }
        do {
            let config = try config(job)
            var warmStart: WarmStart?
            if case let .pbt(_, _, _, space, _, _, _) = strategy, job.stage > 0, let parent = job.parent {
                var source = job
                source.trial = parent
                source.stage = job.stage - 1
                guard let path = RunCheckpoints(RunDirectory(self.directory(source))).paths().first else {
                    throw TrainingError("PBT: the checkpoint of member \(parent) at the end of generation \(job.stage - 1) is missing from \(self.directory(source)); the search directory was altered. Start the search again in a new run directory.")
                }
                warmStart = WarmStart(checkpoint: path, adjustable: Set(space.fields.map(\.field)).union(["seed"]))
            }
            let evaluate: Bool
            if case .asha = strategy { evaluate = true } else { evaluate = false }
            let context = RunContext(tensors: tensors, dataPath: dataPath, run: RunDirectory(directory), comm: group, log: log,
                                     datasetName: datasetName, cacheDirectory: runDirectory)
            let outcome = try TrainingRun.run(config: config, context: context, afterEpoch: afterEpoch, warmStart: warmStart,
                                              evaluate: evaluate)
            let trainer = outcome.trainer
            result.status = .complete
            result.epochs = trainer.history.last.map { $0.epoch + 1 }
            result.bestEpoch = trainer.bestEpoch + 1
            result.bestValidMetric = trainer.bestValidMetric
            result.validMetric = trainer.history.last?.validMetric
            result.wallSeconds = trainer.history.reduce(0) { $0 + $1.seconds } + outcome.evaluationSeconds
            if let report = outcome.report {
                result.coBps = report.coBps
                result.fpBps = report.fpBps
                result.velR2 = report.velR2
                result.psthR2 = report.psthR2
                result.latentR2 = report.latentR2ZV
            }
            switch strategy {
            case .asha:
                result.metric = metric == .validation ? trainer.bestValidMetric : (metric == .coBps ? result.coBps : result.latentR2)
            case .pbt:
                result.metric = result.validMetric
            }
        } catch let error as TrainingError {
            log("failed: \(error)")
            result.status = .failed
            result.reason = error.description
        } catch let error as ConfigError {
            result.status = .failed
            result.reason = error.description
        }
        guard group.isRoot else { return }
        try FileManager.default.createDirectory(atPath: jobsDirectory, withIntermediateDirectories: true)
        try JSON.write(result, to: resultPath(job.id))
        HParamsLog.sessionEnd(directory: directory, success: result.status == .complete)
        if case .pbt = strategy { removeSpentCheckpoints(after: job.stage) }
    }

    /// PBT: once every member has finished generation g, generation g − 1's checkpoints and
    /// weights are no longer needed by anyone (generation g started from them); remove them,
    /// keeping the logs and metrics.
    func removeSpentCheckpoints(after g: Int) {
        guard g >= 1, case let .pbt(members, _, _, _, _, _, _) = strategy else { return }
        let generation = schedule().issued.filter { $0.stage == g }
        guard generation.count == members, generation.allSatisfy({ readResult($0.id) != nil }) else { return }
        for m in 0..<members {
            let old = directory(SearchJob(id: 0, trial: m, stage: g - 1, fromEpoch: 0, toEpoch: 1))
            let spent = RunCheckpoints(RunDirectory(old)).paths() + [RunDirectory(old).best, RunDirectory(old).last]
            for path in spent { try? FileManager.default.removeItem(atPath: path) }
        }
    }

    /// PBT's end, on every rank: the member with the best smoothed metric after the last
    /// generation is evaluated on the validation split (co-bps and the rest) and writes the
    /// submission, as `train` does at its end; its run directory is the search's answer.
    func evaluateBestMember() throws {
        guard let best = bestMember() else { return }
        let config = try config(best.job)
        if world.isRoot { say("scoring the best member (\(best.job.trial)) on the validation split and writing its submission…") }
        _ = try TrainingRun.run(config: config, context: RunContext(tensors: tensors, dataPath: dataPath, run: RunDirectory(directory(best.job)),
                                                                    comm: world, log: { _ in }, datasetName: datasetName,
                                                                    cacheDirectory: runDirectory))
    }

    /// PBT: the last generation's member with the best smoothed metric, and that metric.
    func bestMember() -> (job: SearchJob, smoothed: Double)? {
        guard case let .pbt(members, _, _, _, _, _, _) = strategy else { return nil }
        let issued = schedule().issued
        var jobs = [[SearchJob]](repeating: [], count: members)
        for job in issued { jobs[job.trial].append(job) }
        let g = jobs.map(\.count).min() ?? 0
        guard g > 0 else { return nil }
        let results = jobs.map { row in row.prefix(g).compactMap { readResult($0.id) } }
        guard results.allSatisfy({ $0.count == g }) else { return nil }
        let smoothed = PBTPolicy.smoothed(through: g - 1, jobs: jobs, results: results)
        guard let m = (0..<members).filter({ smoothed[$0].isFinite }).min(by: { (smoothed[$0], $0) < (smoothed[$1], $1) }) else { return nil }
        return (jobs[m][g - 1], smoothed[m])
    }

    // MARK: - Run directory

    struct Manifest: Codable, Equatable {
        var strategy: String
        var config: String
        var dataFingerprint: String
        var groups: Int
    }

    /// World rank 0: refuses a run directory of another search; writes search.json.
    func prepareRunDirectory() throws {
        try FileManager.default.createDirectory(atPath: jobsDirectory, withIntermediateDirectories: true)
        try? FileManager.default.removeItem(atPath: RunDirectory(runDirectory).preemptedMarker)     // of a preempted session
        let manifest = Manifest(strategy: "\(strategy)", config: base.json(), dataFingerprint: try dataFingerprint(path: tensors.path),
                                groups: groups)
        let path = runDirectory + "/search.json"
        if FileManager.default.fileExists(atPath: path) {
            guard let old = JSON.read(Manifest.self, from: path) else {
                throw SearchError("'\(path)' cannot be read as a search manifest. Move it away, or use another --run-dir.")
            }
            guard old == manifest else {
                let what = [old.strategy != manifest.strategy ? "the strategy or its settings" : nil, old.config != manifest.config ? "the config" : nil,
                            old.dataFingerprint != manifest.dataFingerprint ? "the data" : nil,
                            old.groups != manifest.groups ? "the number of groups (\(old.groups) then, \(manifest.groups) now: the schedule depends on it)" : nil].compactMap { $0 }
                throw SearchError("'\(runDirectory)' holds another search (\(what.joined(separator: " and ")) differ). Run the same command, at the same world size and --ranks-per-trial, to continue it, or use another --run-dir.")
            }
        } else {
            try JSON.write(manifest, to: path)
        }
    }

    // MARK: - Progress (world rank 0)

    func describe() {
        switch strategy {
        case let .asha(grid, grace, eta, synchronous):
            let rungs = ASHAPolicy.rungs(graceEpochs: grace, reductionFactor: eta, maxEpochs: base.epochs)
            say("search (ASHA): \(points.count) grid points over \(grid.axes.map(\.field).joined(separator: " × ")); rungs at \(rungs.map(String.init).joined(separator: ", ")) epochs, the top 1/\(eta) promoted by \(metric.label)\(synchronous ? " once the rung is full (--promotion sync)" : ""); \(groups) group\(groups == 1 ? "" : "s") of \(ranksPerTrial) rank\(ranksPerTrial == 1 ? "" : "s"); a full grid would train \(points.count * base.epochs) epochs")
        case let .pbt(members, _, _, space, sample, _, _):
            say("search (PBT): \(members) members over \(groups) group\(groups == 1 ? "" : "s") of \(ranksPerTrial) rank\(ranksPerTrial == 1 ? "" : "s"); generations end at \(boundaries.map(String.init).joined(separator: ", ")) epochs; exploring \(space.fields.map { "\($0.field) [\($0.lower), \($0.upper)]" }.joined(separator: ", ")); members start \(sample ? "from values drawn within the bounds" : "from the config"); tournaments on the smoothed validation \(base.validationMetric.rawValue)")
        }
        let done = schedule().issued.filter { readResult($0.id) != nil }
        if !done.isEmpty { say("\(done.count) job(s) already finished, kept") }
        for job in done { announced.insert(job.id) }
    }

    func label(_ job: SearchJob) -> String {
        switch strategy {
        case .asha: return "\(points[job.trial].label) rung \(job.stage) (epochs \(job.fromEpoch)→\(job.toEpoch))"
        case .pbt: return String(format: "member %d generation %d (epochs %d→%d%@)", job.trial, job.stage, job.fromEpoch, job.toEpoch,
                                 job.parent.map { $0 == job.trial ? "" : ", copied from member \($0)" } ?? "")
        }
    }

    /// Prints a line for every job that finished since the last call, and rewrites the tables.
    func announce() {
        let schedule = schedule()
        let fresh = schedule.issued.filter { !announced.contains($0.id) }.compactMap { job in readResult(job.id).map { (job, $0) } }
        guard !fresh.isEmpty else { return }
        for (job, result) in fresh {
            announced.insert(job.id)
            let what = result.status == .complete
                ? String(format: "%@ %.4f", strategy.isPBT ? "valid \(base.validationMetric.rawValue)" : metric.label, result.metric ?? .nan)
                : "FAILED: " + (result.reason ?? "unknown reason")
            say("[job \(job.id)] \(label(job))  \(what)  (\(formatDuration(Date().timeIntervalSince(started))))")
        }
        let results = schedule.issued.compactMap { readResult($0.id) }
        try? AdaptiveResults(search: self, results: results).write()
        overview?(self, results)
    }

    func summarise(_ results: [JobResult]) {
        let epochs = results.reduce(0) { $0 + $1.job.cost }
        let failed = results.filter { $0.status == .failed }.count
        say("\nsearch finished: \(results.count) jobs, \(epochs) epochs trained, \(failed) failed  (\(formatDuration(Date().timeIntervalSince(started))))")
        switch strategy {
        case .asha:
            if let best = AdaptiveResults.bestASHA(results, rungs: ASHAPolicy.rungs(graceEpochs: graceEpochs, reductionFactor: reductionFactor, maxEpochs: base.epochs), metric: metric) {
                say(String(format: "best by %@: %@ at %d epochs, %@ %.4f → %@", metric.rawValue, points[best.job.trial].label, best.job.toEpoch,
                           metric.label, best.metric ?? .nan, runDirectory + "/best.yaml"))
                say("a full grid would train \(points.count * base.epochs) epochs; ASHA trained \(epochs) (\(Int((100 * Double(epochs) / Double(max(points.count * base.epochs, 1))).rounded()))%)")
            }
        case .pbt:
            if let best = bestMember() {
                let scores = JSON.read(ValidationScores.self, from: RunDirectory(directory(best.job)).validation)
                say(String(format: "best member: %d (smoothed validation %@ %.5f)%@ → %@", best.job.trial, base.validationMetric.rawValue, best.smoothed,
                           scores.map { String(format: ", validation co-bps %.4f", $0.coBps) } ?? "", directory(best.job)))
            }
        }
        say("results: \(runDirectory)/results.md, results.csv, report.html")
    }

    var graceEpochs: Int { if case let .asha(_, g, _, _) = strategy { return g } else { return 0 } }
    var reductionFactor: Int { if case let .asha(_, _, e, _) = strategy { return e } else { return 0 } }
}

extension AdaptiveStrategy {
    var isPBT: Bool { if case .pbt = self { return true } else { return false } }
}
