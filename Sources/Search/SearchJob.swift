import Foundation
import RunFiles

// The schedule that decides a search's work, what every strategy shares. The unit of work and
// its record (SearchJob, JobResult) are RunFiles'.

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
