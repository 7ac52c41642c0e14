import Checkpoint
import Data
import Distributed
import Foundation
import Model
import RunFiles
import RunReport
import Support
import Training

// Search: searches over configs across MPI groups. One engine (`Search`) runs the jobs a
// strategy (grid, ASHA, PBT: `SearchStrategy`) decides, each an ordinary TrainingRun, and keeps
// one record per job, one manifest and one set of results. Search never reaches into the trainer.

/// A strategy with the config its jobs start from: what `Search` runs. Made on every rank in
/// `search`'s preflight, so every setting is refused before anything runs.
public struct SearchSetup {
    let strategy: SearchStrategy
    /// The config every job starts from (ASHA and PBT: one resumable checkpoint per run).
    public let base: Config
    public var name: String { strategy.name }
    /// ASHA's grace (given or chosen).
    public var graceEpochs: Int? { (strategy as? ASHAStrategy)?.graceEpochs }

    /// Every point of `grid` to the config's epochs; `metric` ranks them.
    public static func grid(_ grid: SearchGrid, base: Config, metric: SearchMetric) throws -> SearchSetup {
        SearchSetup(strategy: try GridStrategy(grid: grid, base: base, metric: metric), base: base)
    }

    /// ASHA over `grid`'s points; without `graceEpochs`, `ASHAStrategy.grace`.
    public static func asha(_ grid: SearchGrid, base: Config, graceEpochs: Int?, reductionFactor: Int, synchronous: Bool,
                            metric: SearchMetric) throws -> SearchSetup {
        let base = try adaptive(base, strategy: "asha")
        let grace = try graceEpochs ?? ASHAStrategy.grace(trials: grid.points(base: base).count, reductionFactor: reductionFactor,
                                                          maxEpochs: base.train.epochs)
        return SearchSetup(strategy: try ASHAStrategy(grid: grid, base: base, graceEpochs: grace, reductionFactor: reductionFactor,
                                                      synchronous: synchronous, metric: metric), base: base)
    }

    /// PBT of `members` exploring `space`.
    public static func pbt(members: Int, generationEpochs: Int, burnInEpochs: Int, space: SearchSpace, sampleInitial: Bool,
                           patience: Int, minImprovement: Double, base: Config) throws -> SearchSetup {
        let base = try adaptive(base, strategy: "pbt")
        return SearchSetup(strategy: try PBTStrategy(members: members, generationEpochs: generationEpochs, burnInEpochs: burnInEpochs,
                                                     space: space, sampleInitial: sampleInitial, patience: patience,
                                                     minImprovement: minImprovement, base: base), base: base)
    }

    /// ASHA's and PBT's base config: one resumable checkpoint per run (the disk bound; it does
    /// not change the trajectory). Refuses what cannot be exact: a wall-clock budget (epochs are
    /// the resource and the clock).
    static func adaptive(_ base: Config, strategy: String) throws -> Config {
        guard base.run.maxMinutes == 0 else {
            throw SearchError("--strategy \(strategy) counts its budget in epochs, so that a killed search decides the same: drop maxMinutes and set epochs (the longest a trial trains)")
        }
        var config = base
        config.run.keepCheckpoints = 1
        return config
    }
}

/// A search over configs across the ranks of one MPI job.
///
/// The world splits into groups of `ranksPerTrial` consecutive ranks (MPI_Comm_split). The
/// strategy's policy decides the jobs in a `VirtualSchedule`, a function of the finished jobs'
/// results (`jobs/j<id>.json`, written once, atomically), which every group computes alike; a
/// free group claims the first decided job no group has (a file created with O_EXCL in
/// `claims/`: a shared filesystem is assumed, as for checkpoints) and trains it with
/// `TrainingRun` on its own sub-communicator, in the job's run directory. So a job's result is
/// the computation `train` does with its config at world size `ranksPerTrial`, whichever group
/// trains it, and a search killed at any moment and started again with the same command ends
/// with bitwise the same table and weights: world rank 0 clears the claims at start, jobs with
/// a result are kept, and a job that was running resumes from its own checkpoint.
public final class Search {
    let strategy: SearchStrategy
    public let base: Config
    public let tensors: NLBTensors
    public let dataPath: String
    public let run: RunDirectory
    public let datasetName: String?
    public let world: Communicator
    public let ranksPerTrial: Int
    /// Train failed jobs again (the grid's --retry-failed; a restarted search keeps them failed).
    public let retryFailed: Bool
    let say: (String) -> Void

    /// Jobs world rank 0 has announced, and when the search started.
    var announced = Set<Int>()
    var finishedThisSession = 0
    let started = Date()

    public init(_ setup: SearchSetup, tensors: NLBTensors, dataPath: String, run: RunDirectory, datasetName: String?,
                world: Communicator, ranksPerTrial: Int, retryFailed: Bool = false, say: @escaping (String) -> Void) throws {
        try Self.checkLayout(worldSize: world.size, ranksPerTrial: ranksPerTrial)
        strategy = setup.strategy
        base = setup.base
        self.tensors = tensors
        self.dataPath = dataPath
        self.run = run
        self.datasetName = datasetName
        self.world = world
        self.ranksPerTrial = ranksPerTrial
        self.retryFailed = retryFailed
        self.say = say
    }

    /// Refuses a world that does not split into whole groups: idle ranks would waste the
    /// allocation, and a trial on fewer ranks would not be comparable.
    public static func checkLayout(worldSize: Int, ranksPerTrial: Int) throws {
        guard ranksPerTrial >= 1 else { throw SearchError("--ranks-per-trial must be >= 1 (got \(ranksPerTrial))") }
        guard ranksPerTrial <= worldSize else {
            throw SearchError("--ranks-per-trial \(ranksPerTrial) needs at least \(ranksPerTrial) ranks, but the job has \(worldSize). Start it with mpirun -n \(ranksPerTrial) (or a multiple), or lower --ranks-per-trial.")
        }
        guard worldSize % ranksPerTrial == 0 else {
            let lower = worldSize / ranksPerTrial * ranksPerTrial
            throw SearchError("\(worldSize) ranks do not split into groups of --ranks-per-trial \(ranksPerTrial) (\(worldSize % ranksPerTrial) would sit idle). Use mpirun -n \(lower) or -n \(lower + ranksPerTrial), or a --ranks-per-trial that divides \(worldSize).")
        }
    }

    public var groups: Int { world.size / ranksPerTrial }
    public var strategyName: String { strategy.name }
    var jobsDirectory: String { run.jobs }
    var claimsDirectory: String { run.path + "/claims" }
    func resultPath(_ id: Int) -> String { run.job(id) }
    func result(_ id: Int) -> JobResult? { JSON.read(JobResult.self, from: resultPath(id)) }
    func schedule() -> VirtualSchedule { VirtualSchedule.simulate(workers: groups, policy: strategy.policy, result: result) }
    /// The results of every decided job that has one, in schedule order.
    func results() -> [JobResult] { schedule().issued.compactMap { result($0.id) } }

    /// The context a job's run has: this search's data, the job's directory, the group's ranks.
    func context(in directory: RunDirectory, comm: Communicator, log: @escaping (String) -> Void) -> RunContext {
        RunContext(tensors: tensors, dataPath: dataPath, run: directory, comm: comm, log: log, datasetName: datasetName,
                   cacheDirectory: run.path)
    }

    // MARK: - Running

    /// Runs the search to its end. Throws `Preempted` on every rank after SIGTERM/SIGUSR1; the
    /// same command continues.
    @discardableResult
    public func runSearch() throws -> [JobResult] {
        try Self.agreeOnRoot(world) { try prepareRunDirectory() }
        Preemption.share(through: run.preemptedMarker)
        let groupIndex = world.rank / ranksPerTrial
        let group = try world.split(color: groupIndex, key: world.rank)
        group.deadline = world.deadline
        if world.isRoot {
            HParamsLog.experiment(runDirectory: run.path, fields: strategy.hparamsFields)
            say(strategy.describe(groups: groups, ranksPerTrial: ranksPerTrial))
            let done = results()
            if !done.isEmpty { say("\(done.count) job(s) already finished, kept") }
            for r in done { announced.insert(r.job.id) }
        }
        var preempted = false
        while true {
            // The group's rank 0 decides: a job id, -1 done, -2 preempted, -3 nothing to take yet.
            var choice = [-1.0]
            if group.isRoot { choice[0] = Preemption.requested ? -2 : try nextJob() }
            try group.broadcast(&choice, count: 1, root: 0)
            if choice[0] == -2 { preempted = true; break }
            if choice[0] == -1 { break }
            if choice[0] == -3 {
                if world.isRoot { announce() }
                Thread.sleep(forTimeInterval: 0.5)
                continue
            }
            do {
                try train(schedule().issued[Int(choice[0])], group: group)
            } catch is Preempted {
                preempted = true
                break
            }
            if world.isRoot { announce() }
        }
        // Idle groups wait here while others train; world rank 0 keeps reporting. No deadline:
        // other groups' jobs may take hours (their own collectives have the watchdog).
        try world.barrier(pollingEvery: 0.5) { if world.isRoot { announce() } }
        let anyPreempted = try world.sum([preempted || Preemption.requested ? 1 : 0])[0] > 0
        if anyPreempted {
            if world.isRoot {
                announce()
                try? SearchResults(search: self, strategy: strategy, results: results()).write()
                say("\nsearch preempted: run the same command again to continue (finished jobs are kept, running ones resume from their checkpoints).")
            }
            throw Preempted(checkpoint: run.path + "/{trials,members}/*/ckpt-*.h5")
        }
        try strategy.finish(search: self)
        let final = results()
        if world.isRoot {
            announce()
            try SearchResults(search: self, strategy: strategy, results: final).write()
            summarise(final)
        }
        if let failure = strategy.failure(final, search: self) {
            throw AgreedFailure(reason: world.isRoot ? SearchError(failure) : nil)
        }
        return final
    }

    /// Group rank 0: the next job this group trains (its id), claimed against the other
    /// groups: decided jobs without a result, those that were running (a checkpoint in their
    /// directory) first; -1 when nothing is or will be left, -3 to wait for a decision.
    func nextJob() throws -> Double {
        let schedule = schedule()
        let open = schedule.issued.filter { result($0.id) == nil }
        let running = open.filter { !RunCheckpoints(strategy.directory($0, in: run)).paths().isEmpty }
        for job in running + open.filter({ j in !running.contains { $0.id == j.id } }) where try claim(job.id) {
            return Double(job.id)
        }
        return schedule.complete ? -1 : -3
    }

    /// Claims job `id` for this group; false when another group has it.
    func claim(_ id: Int) throws -> Bool {
        let fd = open(claimsDirectory + "/" + String(id), O_CREAT | O_EXCL | O_WRONLY, 0o644)
        if fd >= 0 { close(fd); return true }
        guard errno == EEXIST else {
            throw SearchError("cannot claim job \(id) in '\(claimsDirectory)': \(String(cString: strerror(errno))). Check that the run directory is writable by every rank.")
        }
        return false
    }

    /// Trains one job on the group and writes its result (group rank 0). A job that fails the
    /// same way on every rank of the group (a NaN loss, an impossible setting) is a result too:
    /// the grid records it failed, ASHA never promotes it, PBT replaces the member by a copy of a
    /// winner. Anything else ends the job, as in `train`.
    func train(_ job: SearchJob, group: Communicator) throws {
        let directory = strategy.directory(job, in: run)
        var logFile: FileHandle?
        if group.isRoot {
            try FileManager.default.createDirectory(atPath: directory.path, withIntermediateDirectories: true)
            if !FileManager.default.fileExists(atPath: directory.log) { FileManager.default.createFile(atPath: directory.log, contents: nil) }
            logFile = try FileHandle(forWritingTo: URL(fileURLWithPath: directory.log))
            try logFile?.seekToEnd()
            if let session = strategy.session(job), !FileManager.default.fileExists(atPath: directory.metrics) {
                HParamsLog.session(directory: directory.path, group: session.group, values: session.values)
            }
        }
        defer { try? logFile?.close() }
        let log: (String) -> Void = { line in logFile?.write(Data((line + "\n").utf8)) }
        let afterEpoch: ((EpochRecord) -> Void)? = world.isRoot ? { [unowned self] _ in self.announce() } : nil
        var result = JobResult(job: job, status: .failed)
        do {
            let outcome = try TrainingRun.run(config: try strategy.config(job), context: context(in: directory, comm: group, log: log),
                                              afterEpoch: afterEpoch, warmStart: try strategy.warmStart(job, in: run),
                                              evaluate: strategy.evaluates(job))
            result = outcome.record(job)
            result.metric = strategy.metric(result)
        } catch let error as TrainingError {
            log("failed: \(error)")
            result.status = .failed
            result.reason = error.description
        } catch let error as ConfigError {
            result.status = .failed
            result.reason = error.description
        }
        guard group.isRoot else { return }
        if result.status == .complete && strategy.evaluates(job) {
            _ = try? RunReport.write(runDirectory: directory.path, dataPath: dataPath)
        }
        try FileManager.default.createDirectory(atPath: jobsDirectory, withIntermediateDirectories: true)
        try JSON.write(result, to: resultPath(job.id))
        HParamsLog.sessionEnd(directory: directory.path, success: result.status == .complete)
        strategy.cleanUp(after: job, search: self)
    }

    // MARK: - Run directory

    /// The search's identity: a restarted search must be the same search.
    struct Manifest: Codable, Equatable {
        var strategy: String
        var config: String
        var dataFingerprint: String
        /// The number of groups, when the schedule depends on it (ASHA, PBT).
        var groups: Int?
    }

    /// World rank 0: refuses a run directory of another search; writes search.json; clears the
    /// claims of an earlier session (and, with `retryFailed`, its failed results).
    func prepareRunDirectory() throws {
        let fm = FileManager.default
        try fm.createDirectory(atPath: jobsDirectory, withIntermediateDirectories: true)
        try? fm.removeItem(atPath: run.preemptedMarker)     // of a preempted session
        let manifest = Manifest(strategy: strategy.identity, config: base.json(), dataFingerprint: try dataFingerprint(path: tensors.path),
                                groups: strategy.policy.decidesOnResults ? groups : nil)
        let path = run.path + "/search.json"
        if fm.fileExists(atPath: path) {
            guard let old = JSON.read(Manifest.self, from: path) else {
                throw SearchError("'\(path)' cannot be read as a search manifest (a search of an lflow-dist before the one search engine keeps its results in trials/*/status.json and jobs/; its trials' run directories are ordinary runs that `predict` and `report` read). Move it away, or use another --run-dir.")
            }
            guard old == manifest else {
                let what = [old.strategy != manifest.strategy ? "the strategy or its settings (\(old.strategy) then)" : nil,
                            old.config != manifest.config ? "the config" : nil,
                            old.dataFingerprint != manifest.dataFingerprint ? "the data" : nil,
                            old.groups != manifest.groups ? "the number of groups (\(old.groups.map(String.init) ?? "–") then, \(manifest.groups.map(String.init) ?? "–") now: the schedule depends on it)" : nil]
                    .compactMap { $0 }
                throw SearchError("'\(run)' holds another search (\(what.joined(separator: " and ")) differ). Run the same command, at the same world size and --ranks-per-trial, to continue it, or use another --run-dir.")
            }
        } else {
            try JSON.write(manifest, to: path)
        }
        if retryFailed {
            for job in schedule().issued where result(job.id)?.status == .failed { try? fm.removeItem(atPath: resultPath(job.id)) }
        }
        try? fm.removeItem(atPath: claimsDirectory)
        try fm.createDirectory(atPath: claimsDirectory, withIntermediateDirectories: true)
    }

    /// Runs `body` on world rank 0 only; every rank throws `AgreedFailure` if it failed there
    /// (rank 0's carries the reason, so the message is printed once).
    static func agreeOnRoot(_ world: Communicator, _ body: () throws -> Void) throws {
        var failure: Error?
        if world.isRoot { do { try body() } catch { failure = error } }
        let failed = try world.sum([failure == nil ? 0 : 1])[0] > 0
        if failed { throw AgreedFailure(reason: failure) }
    }

    // MARK: - Progress (world rank 0)

    /// Prints a line for every job that finished since the last call and rewrites the results,
    /// so a long search can be followed (and read) while it runs.
    func announce() {
        let schedule = schedule()
        let all = schedule.issued.compactMap { result($0.id) }
        let fresh = all.filter { !announced.contains($0.job.id) }
        guard !fresh.isEmpty else { return }
        for r in fresh {
            announced.insert(r.job.id)
            finishedThisSession += 1
            let elapsed = Date().timeIntervalSince(started)
            let position: String, eta: String
            if schedule.complete {
                // Every job is decided: count them, and the time per finished job (the groups in
                // parallel) gives the rest.
                let remaining = schedule.issued.count - announced.count
                position = "[\(announced.count)/\(schedule.issued.count)]"
                eta = remaining == 0 ? "" : "  ETA " + formatDuration(elapsed / Double(finishedThisSession) * Double(remaining))
            } else {
                position = "[job \(r.job.id)]"
                eta = ""
            }
            say("\(position) \(strategy.label(r.job))  \(strategy.outcome(r))  (\(formatDuration(elapsed)))\(eta)")
        }
        try? SearchResults(search: self, strategy: strategy, results: all).write()
    }

    func summarise(_ results: [JobResult]) {
        say("\nsearch finished: " + strategy.summary(results, base: base).joined(separator: "; ") + "  (\(formatDuration(Date().timeIntervalSince(started))))")
        if let answer = strategy.answer(results, search: self) { say(answer.line) }
        say("results: \(run.path)/results.md, results.csv, report.html")
    }
}
