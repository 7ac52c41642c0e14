import Foundation

// The record of one job of a run: a search's trial (or a stage of one) or an ensemble's member.
// Searches and ensembles write it and read it; it names what ran and what it scored.

/// One field = value of a grid point.
public struct SearchParameter: Codable, Equatable, Sendable {
    public let field: String
    public let value: String
    public init(field: String, value: String) { self.field = field; self.value = value }
}

/// Where a search job stands.
public enum TrialStatus: String, Codable, Sendable { case pending, running, complete, failed }

/// One unit of work a group trains: trial (grid, ASHA: a grid point; PBT: a member) `trial` from
/// epoch `fromEpoch` to `toEpoch`. PBT jobs also say where the weights come from and with which
/// explored values.
public struct SearchJob: Codable, Equatable, Sendable {
    /// Position in the schedule (the order jobs were decided in).
    public var id: Int
    public var trial: Int
    /// Grid: 0; ASHA: the rung the job ends at; PBT: the generation.
    public var stage: Int
    public var fromEpoch: Int
    public var toEpoch: Int
    /// PBT: the member whose checkpoint (end of the previous generation) this job continues,
    /// itself unless it lost its tournament; nil for a fresh start.
    public var parent: Int?
    /// PBT: the explored fields' values (canonical text, as `--set` takes them).
    public var values: [SearchParameter] = []

    public var cost: Int { toEpoch - fromEpoch }

    public init(id: Int, trial: Int, stage: Int, fromEpoch: Int, toEpoch: Int, parent: Int? = nil, values: [SearchParameter] = []) {
        self.id = id; self.trial = trial; self.stage = stage; self.fromEpoch = fromEpoch; self.toEpoch = toEpoch
        self.parent = parent; self.values = values
    }
}

/// What a finished job left, `jobs/j<id>.json` (`RunDirectory.job`): written once, atomically,
/// by the ranks that trained it. The one record of every search strategy's results and of an
/// ensemble's members.
public struct JobResult: Codable, Equatable, Sendable {
    public var job: SearchJob
    public var status: TrialStatus
    public var reason: String?
    /// The value the strategy ranks on (grid, ASHA: the --metric; PBT: the last epoch's
    /// validation metric, lower is better). nil when the job failed.
    public var metric: Double?
    public var validMetric: Double?
    public var bestValidMetric: Double?
    public var coBps: Double?
    public var fpBps: Double?
    public var velR2: Double?
    public var psthR2: Double?
    public var latentR2: Double?
    public var epochs: Int?
    public var bestEpoch: Int?
    /// Seconds of the epochs trained in this job (resumed epochs not counted twice) and its
    /// evaluation; the one field that differs between two runs of the same search.
    public var wallSeconds: Double?

    public init(job: SearchJob, status: TrialStatus, metric: Double? = nil) { self.job = job; self.status = status; self.metric = metric }
}
