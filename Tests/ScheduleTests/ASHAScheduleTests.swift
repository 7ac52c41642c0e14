import Testing
@testable import Search
import RunFiles

/// ASHA's promotion rules on the virtual schedule alone, with made-up results (no training):
/// what each rule promotes and when.
@Suite("ASHA promotion")
struct ASHAScheduleTests {
    /// Runs a schedule to its end as a search does: every issued job gets its result from
    /// `metric(trial, stage)` (higher is better), and the schedule is computed again.
    static func run(_ policy: ASHAPolicy, workers: Int, metric: (Int, Int) -> Double) -> VirtualSchedule {
        var results: [Int: JobResult] = [:]
        while true {
            let schedule = VirtualSchedule.simulate(workers: workers, policy: policy) { results[$0] }
            if schedule.complete { return schedule }
            for job in schedule.issued where results[job.id] == nil {
                results[job.id] = JobResult(job: job, status: .complete, metric: metric(job.trial, job.stage))
            }
        }
    }

    /// 9 points, rungs 1, 3, 9. Trial 0 starts first and leads rung 0 among the first results,
    /// but trials 6, 7, 8 (started last) are the best at every rung.
    static func metric(_ trial: Int, _ stage: Int) -> Double {
        trial == 0 ? 0.45 : Double(trial) / 10 + Double(stage)
    }

    static func policy(synchronous: Bool) -> ASHAPolicy {
        ASHAPolicy(trials: 9, graceEpochs: 1, reductionFactor: 3, maxEpochs: 9, higherIsBetter: true, synchronous: synchronous)
    }

    @Test("sync: a rung promotes only when it is full, exactly its top third, and the top rung gets the best")
    func synchronous() {
        let s = Self.run(Self.policy(synchronous: true), workers: 2, metric: Self.metric)
        let first = s.issued.firstIndex { $0.stage == 1 }!
        #expect(s.issued[..<first].filter { $0.stage == 0 }.count == 9, "\(s.issued)")
        #expect(Set(s.issued.filter { $0.stage == 1 }.map(\.trial)) == [6, 7, 8])
        #expect(s.issued.filter { $0.stage == 2 }.map(\.trial) == [8])
        // 9×1 + 3×2 + 1×6 epochs.
        #expect(s.issued.reduce(0) { $0 + $1.cost } == 21)
    }

    @Test("async: the first good early result is promoted before the rung is full")
    func asynchronous() {
        let s = Self.run(Self.policy(synchronous: false), workers: 2, metric: Self.metric)
        let first = s.issued.firstIndex { $0.stage == 1 }!
        #expect(s.issued[..<first].filter { $0.stage == 0 }.count < 9, "\(s.issued)")
        #expect(s.issued.filter { $0.stage == 1 }.map(\.trial).contains(0))
    }

    @Test("sync: a failed trial is never promoted, and the rung still fills")
    func failed() {
        var results: [Int: JobResult] = [:]
        let policy = Self.policy(synchronous: true)
        var schedule: VirtualSchedule
        repeat {
            schedule = VirtualSchedule.simulate(workers: 3, policy: policy) { results[$0] }
            for job in schedule.issued where results[job.id] == nil {
                results[job.id] = job.trial == 8
                    ? JobResult(job: job, status: .failed, metric: nil)
                    : JobResult(job: job, status: .complete, metric: Self.metric(job.trial, job.stage))
            }
        } while !schedule.complete
        #expect(Set(schedule.issued.filter { $0.stage == 1 }.map(\.trial)) == [5, 6, 7])
        #expect(schedule.issued.filter { $0.stage == 2 }.map(\.trial) == [7])
    }
}
