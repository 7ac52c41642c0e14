import Data
import Distributed
import Evaluation
import Foundation
import Inference
import Model
import RunFiles
import Support

/// `train` with `ensemble` > 1: the members, trained one after another on the whole
/// communicator, each an ordinary `TrainingRun` in `<run>/member-<k>` with seed `seed + k − 1`
/// (and, with splitSeed −1, its own validation split), then the submission as the mean of
/// their rates (`Submission.average`, the arithmetic of `Predictor.ensemble`). Each member is a
/// job with the search's record (`JobResult` in `jobs/j<k>.json`: job k, trial k, its seed as
/// the job's value), written when the member is done.
///
/// Resuming: a member with its job record is done and kept; the one that was running resumes
/// from its own checkpoint, bit for bit as any run; the members after it start. Under
/// `maxMinutes` member k gets (maxMinutes − the minutes of members 1…k−1) / (members left), read
/// from the finished members' validation.json, so a member that stops early (early stopping)
/// leaves its time to the later ones, and the same split is computed again on a restart.
public enum EnsembleRun {
    public struct Outcome {
        /// Rank 0 only (empty elsewhere): the members' records, in order.
        public let members: [JobResult]
        public let submissionPath: String
        /// The first member's run: what the report draws.
        public let firstMember: RunDirectory
    }

    /// Shares left under which no further member starts (the budget is spent).
    static let minimumMinutes = 0.05

    /// Member k's job: the whole run, with its own seed.
    static func job(_ k: Int, config: Config) -> SearchJob {
        SearchJob(id: k, trial: k, stage: 0, fromEpoch: 0, toEpoch: config.train.epochs,
                  values: [SearchParameter(field: "seed", value: "\(config.model.seed + k - 1)")])
    }

    public static func run(config: Config, context: RunContext) throws -> Outcome {
        precondition(config.run.ensemble > 1)
        let comm = context.comm, run = context.run, log = context.log
        if comm.isRoot {
            try FileManager.default.createDirectory(atPath: run.jobs, withIntermediateDirectories: true)
            try config.yaml().write(toFile: run.config, atomically: true, encoding: .utf8)
        }
        var used = 0.0
        var trained = 0
        for k in 1...config.run.ensemble {
            let directory = run.member(k)
            // Rank 0 reads the run directory and every rank follows its answer: done, and minutes used.
            var known = [0.0, 0.0]
            if comm.isRoot, let record = JSON.read(JobResult.self, from: run.job(k)), record.status == .complete {
                guard let report = JSON.read(ValidationScores.self, from: directory.validation) else {
                    throw TrainingError("ensemble member \(k): '\(directory.validation)' is missing or unreadable, though '\(run.job(k))' says the member is done; remove that record to train the member again")
                }
                known = [1, report.minutes ?? 0]
            }
            try comm.broadcast(&known, count: 2, root: 0)
            // A member's config is the ensemble's with its seed and share of the budget (its
            // `ensemble` field, which only `train` reads, says what it belongs to).
            var member = config
            member.model.seed = config.model.seed + k - 1
            if config.run.maxMinutes > 0 {
                let share = (config.run.maxMinutes - used) / Double(config.run.ensemble - k + 1)
                guard known[0] > 0 || share >= minimumMinutes || k == 1 else {
                    log("ensemble: the budget of \(formatDuration(config.run.maxMinutes * 60)) is spent after \(k - 1) of \(config.run.ensemble) members; averaging those")
                    break
                }
                member.run.maxMinutes = share
            }
            if known[0] > 0 {
                log("ensemble member \(k) of \(config.run.ensemble) (seed \(member.model.seed)): done, kept (\(directory))")
            } else {
                log("\nensemble member \(k) of \(config.run.ensemble): seed \(member.model.seed)" + (config.run.maxMinutes > 0 ? ", a budget of \(formatDuration(member.run.maxMinutes * 60)) (an equal share of the \(formatDuration((config.run.maxMinutes - used) * 60)) left)" : "") + ", in \(directory)")
                let outcome = try TrainingRun.run(config: member, context: context.in(directory))
                if let report = outcome.report {
                    known[1] = report.minutes ?? 0
                    try JSON.write(outcome.record(job(k, config: config)), to: run.job(k))
                }
                try comm.broadcast(&known, count: 2, root: 0)
            }
            used += known[1]
            trained = k
        }
        let submission = run.submission
        guard comm.isRoot else { return Outcome(members: [], submissionPath: submission, firstMember: run.member(1)) }
        var members: [JobResult] = []
        for k in 1...trained {
            guard let record = JSON.read(JobResult.self, from: run.job(k)) else {
                throw TrainingError("ensemble member \(k): '\(run.job(k))' is missing or unreadable; run the same command again to redo that member's evaluation")
            }
            members.append(record)
        }
        try Submission.average((1...trained).map { run.member($0).submission }, into: submission)
        return Outcome(members: members, submissionPath: submission, firstMember: run.member(1))
    }
}
