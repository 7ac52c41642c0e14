import Data
import Distributed
import Foundation
import Model
import RunFiles
import Support
import Training

// Search: searches over configs across MPI groups: the grid, claims, trial records, the results
// tables and the heatmap. Each trial is an ordinary TrainingRun; Search never reaches into the
// trainer.

/// Where one trial of a search stands, kept in `<trial>/status.json`.
public enum TrialStatus: String, Codable, Sendable { case pending, running, complete, failed }

/// What ranks a search's trials (best.yaml, the ★, the heatmap's colours).
public enum SearchMetric: String, CaseIterable, Sendable {
    /// Validation co-bps (the NLB ranking metric); higher is better.
    case coBps
    /// R² of a linear map from the validation trials' mean-path [z, v] to the true latents
    /// (synthetic data only); higher is better.
    case latentR2
    /// The best value of the validation metric the trainer selects on (`validationMetric`:
    /// the held-out Poisson NLL by default); lower is better.
    case validation

    public var label: String {
        switch self { case .coBps: return "validation co-bps"; case .latentR2: return "latent R² [z, v]"; case .validation: return "best validation metric" }
    }
    public var higherIsBetter: Bool { self != .validation }
    public func value(_ r: TrialRecord) -> Double? {
        switch self { case .coBps: return r.coBps; case .latentR2: return r.latentR2; case .validation: return r.bestValidMetric }
    }
}

/// One trial's `status.json`: its parameters, status and, once complete, its results.
public struct TrialRecord: Codable, Equatable, Sendable {
    public var index: Int
    public var name: String
    public var parameters: [SearchParameter]
    public var status: TrialStatus
    /// Why a trial failed (the trainer's message).
    public var reason: String?
    /// Sessions that trained it (more than one after a resume).
    public var sessions = 0
    public var group: Int?
    public var epochs: Int?
    public var bestEpoch: Int?
    /// The best value of the validation metric (`validationMetric`, heldOut NLL by default).
    public var bestValidMetric: Double?
    public var coBps: Double?
    public var fpBps: Double?
    public var velR2: Double?
    public var psthR2: Double?
    /// R² of the validation trials' [z, v] against the true latents (synthetic data only).
    public var latentR2: Double?
    /// Seconds of the epochs that count towards the result (resumed epochs are not counted
    /// twice), plus the final evaluation.
    public var wallSeconds: Double?

    public var finished: Bool { status == .complete || status == .failed }
}

/// A physics-parameter grid search over the ranks of one MPI job.
///
/// The world splits into groups of `ranksPerTrial` consecutive ranks (MPI_Comm_split). Each
/// group repeatedly claims the next unfinished grid point and trains it with the ordinary
/// data-parallel `TrainingRun` on its own sub-communicator, in the trial's own directory, so
/// checkpoints, preemption and resume work per trial and a trial's result is the same
/// computation as `train` with that config at world size `ranksPerTrial`.
///
/// Claims are files created with O_EXCL in `<run>/claims/` (a shared filesystem is assumed, as
/// for checkpoints), so a group that finishes early takes the next point at once: groups stay
/// busy whatever the trials cost. Rank 0 of the world recreates the claims directory at start;
/// a restarted search therefore re-claims every unfinished point, running ones first, and
/// their trainers resume from their newest checkpoints. Complete and failed trials are skipped.
public final class Search {
    public let grid: SearchGrid
    public let points: [SearchPoint]
    public let base: Config
    public let tensors: NLBTensors
    public let dataPath: String
    public let runDirectory: String
    public let datasetName: String?
    public let world: Communicator
    public let ranksPerTrial: Int
    public let retryFailed: Bool
    public let metric: SearchMetric
    let say: (String) -> Void
    /// Writes a finished trial's report (given its directory), on its group's rank 0; and the
    /// search's overview page (given the records), on world rank 0. Set by the command, which
    /// knows the report module.
    public var trialReport: ((String) -> Void)?
    public var overview: (([TrialRecord]) -> Void)?

    /// Trials world rank 0 has already announced, and when the search started.
    var announced = Set<Int>()
    var finishedThisSession = 0
    let started = Date()

    public init(grid: SearchGrid, base: Config, tensors: NLBTensors, dataPath: String, runDirectory: String,
                datasetName: String?, world: Communicator, ranksPerTrial: Int, retryFailed: Bool = false,
                metric: SearchMetric = .coBps, say: @escaping (String) -> Void) throws {
        try Self.checkLayout(worldSize: world.size, ranksPerTrial: ranksPerTrial)
        self.grid = grid
        self.base = base
        points = try grid.points(base: base)
        self.tensors = tensors
        self.dataPath = dataPath
        self.runDirectory = runDirectory
        self.datasetName = datasetName
        self.world = world
        self.ranksPerTrial = ranksPerTrial
        self.retryFailed = retryFailed
        self.metric = metric
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
    var trialsDirectory: String { runDirectory + "/trials" }
    var claimsDirectory: String { runDirectory + "/claims" }
    func directory(_ point: SearchPoint) -> String { trialsDirectory + "/" + point.name }
    func statusPath(_ point: SearchPoint) -> String { directory(point) + "/status.json" }

    // MARK: - Running

    /// Runs every unfinished trial. Throws `Preempted` (on every rank) when SIGTERM/SIGUSR1
    /// stopped it; running the same command again continues.
    @discardableResult
    public func run() throws -> [TrialRecord] {
        try agreeOnRoot { try prepareRunDirectory() }
        Preemption.share(through: RunDirectory(runDirectory).preemptedMarker)
        let groupIndex = world.rank / ranksPerTrial
        let group = try world.split(color: groupIndex, key: world.rank)
        group.deadline = world.deadline
        if world.isRoot {
            HParamsLog.experiment(runDirectory: runDirectory, fields: grid.axes.map { ($0.field, $0.values) })
            let done = records().filter(\.finished).count
            say("search: \(points.count) grid points over \(grid.axes.map { "\($0.field) (\($0.values.joined(separator: ", ")))" }.joined(separator: " × ")); \(groups) group\(groups == 1 ? "" : "s") of \(ranksPerTrial) rank\(ranksPerTrial == 1 ? "" : "s")" + (done > 0 ? "; \(done) already finished, skipped" : ""))
            if groups > points.count { say("note: \(groups - points.count) group(s) will have no grid point to train; fewer ranks would do") }
            if let distinct = distinctDynamics(), distinct < points.count {
                say("note: mass and coupling enter the model only as coupling/mass (the force term is Δt·κ·A(Ŵ)z/m), so this grid has \(distinct) distinct models among its \(points.count) points; points with the same ratio train identically")
            }
            for record in records() where record.finished { announced.insert(record.index) }
        }

        var preempted = false
        while true {
            // The group's rank 0 claims; the group learns the choice by broadcast.
            var choice = [-1.0]
            if group.isRoot { choice[0] = Preemption.requested ? -2 : Double(try claimNext() ?? -1) }
            try group.broadcast(&choice, count: 1, root: 0)
            if choice[0] == -2 { preempted = true; break }
            guard choice[0] >= 0 else { break }
            let point = points[Int(choice[0])]
            do {
                try train(point, group: group, groupIndex: groupIndex)
            } catch is Preempted {
                preempted = true
                break
            }
            if world.isRoot { try announce() }
        }
        // Idle groups sleep here while others train; world rank 0 keeps reporting. No deadline:
        // the other groups' trials may take hours (their own collectives have the watchdog).
        try world.barrier(pollingEvery: 0.5) { if world.isRoot { try announce() } }
        let anyPreempted = try world.sum([preempted || Preemption.requested ? 1 : 0])[0] > 0
        var final: [TrialRecord] = []
        if world.isRoot {
            try announce()
            final = records()
            try SearchResults(search: self, records: final).write()
            overview?(final)
            summarise(final, preempted: anyPreempted)
        }
        if anyPreempted { throw Preempted(checkpoint: trialsDirectory + "/*/ckpt-*.h5") }
        return final
    }

    /// Trains one point on the group. A trial that fails the same way on every rank of the
    /// group (a NaN loss, an impossible dataset split) is recorded as failed and the search goes
    /// on; anything else ends the job, as in `train`.
    func train(_ point: SearchPoint, group: Communicator, groupIndex: Int) throws {
        let directory = directory(point)
        var record = readRecord(point) ?? TrialRecord(index: point.index, name: point.name, parameters: point.parameters, status: .pending)
        var logFile: FileHandle?
        if group.isRoot {
            record.status = .running
            record.reason = nil
            record.group = groupIndex
            record.sessions += 1
            try writeRecord(record, point)
            let logPath = RunDirectory(directory).log
            if !FileManager.default.fileExists(atPath: logPath) { FileManager.default.createFile(atPath: logPath, contents: nil) }
            logFile = try FileHandle(forWritingTo: URL(fileURLWithPath: logPath))
            try logFile?.seekToEnd()
        }
        defer { try? logFile?.close() }
        let log: (String) -> Void = { line in logFile?.write(Data((line + "\n").utf8)) }
        let afterEpoch: ((EpochRecord) -> Void)? = world.isRoot ? { _ in try? self.announce() } : nil
        if group.isRoot && record.sessions == 1 { HParamsLog.session(directory: directory, group: point.name, values: point.parameters) }
        do {
            let context = RunContext(tensors: tensors, dataPath: dataPath, run: RunDirectory(directory), comm: group, log: log,
                                     datasetName: datasetName, cacheDirectory: runDirectory)
            let outcome = try TrainingRun.run(config: point.config, context: context, afterEpoch: afterEpoch)
            guard group.isRoot, let report = outcome.report else { return }
            let trainer = outcome.trainer
            record.status = .complete
            record.epochs = trainer.history.count
            record.bestEpoch = trainer.bestEpoch + 1
            record.bestValidMetric = trainer.bestValidMetric
            record.coBps = report.coBps
            record.fpBps = report.fpBps
            record.velR2 = report.velR2
            record.psthR2 = report.psthR2
            record.latentR2 = report.latentR2ZV
            record.wallSeconds = trainer.history.reduce(0) { $0 + $1.seconds } + outcome.evaluationSeconds
            trialReport?(directory)
            try writeRecord(record, point)
            HParamsLog.sessionEnd(directory: directory, success: true)
        } catch let error as TrainingError {
            log("failed: \(error)")
            guard group.isRoot else { return }
            record.status = .failed
            record.reason = error.description
            try writeRecord(record, point)
            HParamsLog.sessionEnd(directory: directory, success: false)
        }
    }

    /// The next unfinished point, running ones (from an interrupted session) first, claimed
    /// atomically against the other groups; nil when none is left.
    func claimNext() throws -> Int? {
        let candidates = points.compactMap { point -> (Int, Int)? in
            let status = readRecord(point)?.status ?? .pending
            switch status {
            case .complete: return nil
            case .failed: return retryFailed ? (2, point.index) : nil
            case .running: return (0, point.index)
            case .pending: return (1, point.index)
            }
        }.sorted { $0 < $1 }
        for (_, index) in candidates {
            let fd = open(claimsDirectory + "/" + String(index), O_CREAT | O_EXCL | O_WRONLY, 0o644)
            if fd >= 0 { close(fd); return index }
            guard errno == EEXIST else {
                throw SearchError("cannot claim trial \(index) in '\(claimsDirectory)': \(String(cString: strerror(errno))). Check that the run directory is writable by every rank.")
            }
        }
        return nil
    }

    /// The number of distinct models in the grid when it sweeps both mass and coupling, which
    /// act only through their ratio; nil otherwise.
    func distinctDynamics() -> Int? {
        let fields = Set(grid.axes.map(\.field))
        guard fields.contains("mass") && fields.contains("coupling") else { return nil }
        let keys = Set(points.map { point -> String in
            var config = point.config
            config.coupling /= config.mass
            config.mass = 1
            return config.json()
        })
        return keys.count
    }

    // MARK: - Run directory

    /// The search's identity: a restarted search must be the same search.
    struct Manifest: Codable, Equatable {
        var grid: SearchGrid
        var config: String
        var dataFingerprint: String
    }

    /// World rank 0: checks the run directory holds this search (or nothing), writes
    /// `search.json` and a pending status for every new trial, and clears old claims.
    func prepareRunDirectory() throws {
        let fm = FileManager.default
        try fm.createDirectory(atPath: trialsDirectory, withIntermediateDirectories: true)
        try? fm.removeItem(atPath: RunDirectory(runDirectory).preemptedMarker)     // of a preempted session
        let manifest = Manifest(grid: grid, config: base.json(), dataFingerprint: try dataFingerprint(path: tensors.path))
        let manifestPath = runDirectory + "/search.json"
        if fm.fileExists(atPath: manifestPath) {
            guard let old = JSON.read(Manifest.self, from: manifestPath) else {
                throw SearchError("'\(manifestPath)' cannot be read as a search manifest. Move it away, or use another --run-dir.")
            }
            guard old == manifest else {
                var what: [String] = []
                if old.grid != manifest.grid { what.append("the grid") }
                if old.config != manifest.config { what.append("the config") }
                if old.dataFingerprint != manifest.dataFingerprint { what.append("the data") }
                throw SearchError("'\(runDirectory)' holds another search (\(what.joined(separator: " and ")) differ\(what.count == 1 ? "s" : "")). Run the same command to continue it, or use another --run-dir for a new search.")
            }
        } else {
            try JSON.write(manifest, to: manifestPath)
        }
        for point in points where readRecord(point) == nil {
            try fm.createDirectory(atPath: directory(point), withIntermediateDirectories: true)
            try writeRecord(TrialRecord(index: point.index, name: point.name, parameters: point.parameters, status: .pending), point)
        }
        try? fm.removeItem(atPath: claimsDirectory)
        try fm.createDirectory(atPath: claimsDirectory, withIntermediateDirectories: true)
    }

    func readRecord(_ point: SearchPoint) -> TrialRecord? {
        guard let data = FileManager.default.contents(atPath: statusPath(point)) else { return nil }
        return try? JSON.decoder().decode(TrialRecord.self, from: data)
    }

    func writeRecord(_ record: TrialRecord, _ point: SearchPoint) throws {
        try FileManager.default.createDirectory(atPath: directory(point), withIntermediateDirectories: true)
        try JSON.write(record, to: statusPath(point))
    }

    /// Every trial's record, in grid order (pending for a point without a readable status).
    public func records() -> [TrialRecord] {
        points.map { readRecord($0) ?? TrialRecord(index: $0.index, name: $0.name, parameters: $0.parameters, status: .pending) }
    }

    /// Runs `body` on world rank 0 only; every rank throws `AgreedFailure` if it failed there
    /// (rank 0's carries the reason, so the message is printed once).
    func agreeOnRoot(_ body: () throws -> Void) throws { try Self.agreeOnRoot(world, body) }

    static func agreeOnRoot(_ world: Communicator, _ body: () throws -> Void) throws {
        var failure: Error?
        if world.isRoot { do { try body() } catch { failure = error } }
        let failed = try world.sum([failure == nil ? 0 : 1])[0] > 0
        if failed { throw AgreedFailure(reason: failure) }
    }

    // MARK: - Progress (world rank 0)

    /// Prints a line for every trial that finished since the last call and rewrites the
    /// results table, so a long search can be followed (and read) while it runs.
    func announce() throws {
        let all = records()
        let fresh = all.filter { $0.finished && !announced.contains($0.index) }
        guard !fresh.isEmpty else { return }
        for record in fresh {
            announced.insert(record.index)
            finishedThisSession += 1
            let finished = announced.count
            let running = all.filter { $0.status == .running }.count
            let remaining = all.count - finished
            let elapsed = Date().timeIntervalSince(started)
            // Elapsed time per finished trial already reflects the groups training in parallel.
            let perTrial = elapsed / Double(finishedThisSession)
            let eta = remaining == 0 ? "" : "  ETA " + formatDuration(perTrial * Double(remaining))
            let what: String
            if record.status == .complete {
                what = String(format: "complete  co-bps %.4f%@  best epoch %d/%d  %@", record.coBps ?? .nan,
                              record.latentR2.map { String(format: "  latent R² %.3f", $0) } ?? "", record.bestEpoch ?? 0,
                              record.epochs ?? 0, formatDuration(record.wallSeconds ?? 0))
            } else {
                what = "FAILED: " + (record.reason ?? "unknown reason")
            }
            say("[\(finished)/\(all.count)] \(points[record.index].label)  \(what)  (running \(running), pending \(all.filter { $0.status == .pending }.count))\(eta)")
        }
        try SearchResults(search: self, records: all).write()
        overview?(all)
    }

    func summarise(_ records: [TrialRecord], preempted: Bool) {
        let complete = records.filter { $0.status == .complete }, failed = records.filter { $0.status == .failed }
        say("\nsearch \(preempted ? "preempted" : "finished"): \(complete.count) complete, \(failed.count) failed, \(records.count - complete.count - failed.count) not finished, of \(records.count)  (\(formatDuration(Date().timeIntervalSince(started))))")
        if let best = SearchResults.best(records, by: metric) {
            say(String(format: "best by %@: %@  %@ %.4f  → %@", metric.rawValue, points[best.index].label, metric.label,
                       metric.value(best) ?? .nan, runDirectory + "/best.yaml"))
        }
        say("results: \(runDirectory)/results.md, results.csv, heatmap.svg")
        if preempted { say("preempted: run the same command again to continue (complete trials are kept, running ones resume from their checkpoints).") }
    }
}

