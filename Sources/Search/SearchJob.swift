import Foundation

// The search's unit of work and its record, and the schedule that decides the work: what every
// strategy shares.

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
}

/// What a finished job left, `jobs/j<id>.json`: written once, atomically, by the group that
/// trained it. The one record of every strategy's results.
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
}

/// How a strategy picks work: from the jobs decided so far and the results known at the moment
/// a group is free, the next job, or nil when none can be decided now.
protocol SchedulePolicy {
    /// `known`: results of the jobs that have finished by now (in the schedule's virtual time),
    /// keyed by job id; `issued`: every job decided so far, in order.
    func next(known: [Int: JobResult], issued: [SearchJob]) -> SearchJob?
    /// Whether a decision needs the results due by its virtual time (ASHA, PBT). A grid's does
    /// not: its whole schedule is decided at once, and free groups take its jobs in order.
    var decidesOnResults: Bool { get }
}

extension SchedulePolicy {
    var decidesOnResults: Bool { true }
}

/// The schedule of a search as a deterministic simulation in virtual time, the
/// epoch: G workers (the groups) start at 0; a job of c epochs keeps its worker busy for c;
/// whenever a worker is free, the policy decides its next job from the results of the jobs
/// finished by then. Every group computes the same schedule from the same result files, so no
/// coordinator is needed, a search killed at any moment decides the same jobs when started
/// again, and its table and weights are those of the uninterrupted search, bit for bit.
///
/// The price of exactness: a decision waits for the results it needs. Trials of equal cost
/// per epoch finish in real time about when they do in virtual time, so a group rarely waits.
struct VirtualSchedule {
    /// Every worker's jobs, in order, as far as they can be decided now.
    var assignments: [[SearchJob]]
    /// Every job decided so far, in order.
    var issued: [SearchJob]
    /// True when the schedule is complete: nothing more will ever be decided.
    var complete: Bool

    static func simulate(workers: Int, policy: SchedulePolicy, result: (Int) -> JobResult?) -> VirtualSchedule {
        var free = [Int](repeating: 0, count: workers)          // virtual time each worker is free
        var retired = [Bool](repeating: false, count: workers)
        var assignments = [[SearchJob]](repeating: [], count: workers)
        var issued: [SearchJob] = []
        var finish: [Int: Int] = [:]                            // job id → virtual finish time
        while true {
            // The free worker with the earliest time (lowest index on ties).
            guard let w = (0..<workers).filter({ !retired[$0] }).min(by: { (free[$0], $0) < (free[$1], $1) }) else {
                return VirtualSchedule(assignments: assignments, issued: issued, complete: true)
            }
            let t = free[w]
            var known: [Int: JobResult] = [:]
            for job in issued where finish[job.id]! <= t {
                // A decision at t needs every result due by t; without it the schedule stops here.
                guard let r = result(job.id) else {
                    guard !policy.decidesOnResults else { return VirtualSchedule(assignments: assignments, issued: issued, complete: false) }
                    continue
                }
                known[job.id] = r
            }
            if var job = policy.next(known: known, issued: issued) {
                job.id = issued.count
                issued.append(job)
                assignments[w].append(job)
                precondition(job.cost > 0, "a search job must train at least one epoch")
                finish[job.id] = t + job.cost
                free[w] = t + job.cost
            } else if let later = issued.compactMap({ finish[$0.id]! > t ? finish[$0.id]! : nil }).min() {
                free[w] = later                                 // wait (virtually) for the next result
            } else {
                retired[w] = true                               // nothing running, nothing to decide
            }
        }
    }
}
