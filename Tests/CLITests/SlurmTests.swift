import Foundation
import Testing

/// A throwaway single-node SLURM cluster (Launch/slurm-cluster.sh: munged, slurmctld and slurmd
/// as root, everything in one directory), so the real Launch/*.sbatch scripts run under real
/// SLURM daemons and are preempted the ways SLURM preempts.
struct SlurmCluster {
    static let script = CLI.packageRoot + "/Launch/slurm-cluster.sh"

    /// Why a SLURM cluster cannot run here, or nil when it can.
    static let unavailable: String? = {
        guard getuid() == 0 else { return "needs root to run munged, slurmctld and slurmd" }
        for tool in ["munged", "slurmctld", "slurmd", "sbatch", "srun", "scontrol"] where shell("command -v \(tool)").status != 0 {
            return "\(tool) is not installed (apt-get install slurm-wlm munge)"
        }
        let probe = NSTemporaryDirectory() + "lflow-slurm-probe-\(getpid())"
        let started = shell("bash \(script) start \(probe)")
        shell("bash \(script) stop \(probe)")
        guard started.status == 0 else {
            let reason = started.output.split(separator: "\n").last { $0.contains("FAILED") } ?? "unknown reason"
            return "a single-node SLURM cluster does not start here: \(reason)"
        }
        return nil
    }()

    let directory: String

    init() throws {
        directory = CLI.temporaryDirectory() + "/slurm"
        let started = shell("bash \(Self.script) start \(directory)")
        guard started.status == 0 else { throw CLIError("slurm-cluster start failed: \(started.output)") }
    }

    /// Kills the daemons and every job process, and removes the directory.
    func stop() { shell("bash \(Self.script) stop \(directory)") }

    /// Runs a SLURM client command against this cluster, from the package root.
    @discardableResult
    func client(_ command: String) -> (status: Int32, output: String) {
        shell("cd '\(CLI.packageRoot)' && SLURM_CONF='\(directory)/slurm.conf' \(command)")
    }

    /// Submits with sbatch (the test's binary as LFLOW_DIST); returns the job id.
    func sbatch(_ arguments: String, output: String) throws -> Int {
        let r = client("LFLOW_DIST='\(CLI.binary)' sbatch --parsable --output='\(output)' \(arguments)")
        guard r.status == 0, let id = Int(r.output.split(separator: "\n").last?.split(separator: ";").first ?? "") else {
            throw CLIError("sbatch failed: \(r.output)")
        }
        return id
    }

    /// A field of `scontrol show job` (JobState, Reason, Restarts, ExitCode…).
    func field(_ job: Int, _ name: String) -> String? {
        client("scontrol show job -o \(job)").output.split(separator: " ")
            .first { $0.hasPrefix(name + "=") }.map { String($0.dropFirst(name.count + 1)).trimmingCharacters(in: .whitespacesAndNewlines) }
    }

    /// Waits until the job has ended for good (not pending, running, completing or requeued);
    /// returns its final state, or nil after `timeout` seconds.
    func waitForEnd(_ job: Int, timeout: TimeInterval) -> String? {
        var state: String?
        let ended = waitUntil(timeout: timeout) {
            state = field(job, "JobState")
            guard let state else { return false }
            return !["PENDING", "RUNNING", "COMPLETING", "REQUEUED", "CONFIGURING", "SUSPENDED"].contains(state)
        }
        return ended ? state : nil
    }

    func waitForState(_ job: Int, _ wanted: String, timeout: TimeInterval) -> Bool {
        waitUntil(timeout: timeout) { field(job, "JobState") == wanted }
    }
}

@Suite("SLURM: the Launch scripts under real slurmctld and slurmd, preempted the ways SLURM does", .serialized,
       .enabled(if: SlurmCluster.unavailable == nil, Comment(rawValue: SlurmCluster.unavailable ?? "")))
struct SlurmTests {
    /// A run of `epochs` epochs on its own data, with `tasks` ranks, and its final state from an
    /// uninterrupted `mpirun -n tasks` (the same world size as the job's tasks). The reference
    /// trains in the background while the SLURM job runs: `reference()` waits for it.
    struct Workload {
        let data: String
        let epochs: Int
        let tasks: Int
        let referenceRun: String
        let referenceJob: BackgroundJob

        init(epochs: Int, tasks: Int = 2, in dir: String) throws {
            data = try ResumeTests.data(in: dir)
            self.epochs = epochs
            self.tasks = tasks
            referenceRun = "\(dir)/reference"
            referenceJob = try BackgroundJob("/usr/bin/env", ["mpirun", "--oversubscribe", "-n", "\(tasks)", CLI.binary]
                                             + Self.train(data: data, epochs: epochs, run: referenceRun), output: "\(dir)/reference.log")
        }

        func reference() throws -> [String: [Float]] {
            let status = referenceJob.wait(timeout: 600)
            #expect(status == 0, "\(referenceJob.output)")
            return try ResumeTests.finalState(referenceRun)
        }

        static func train(data: String, epochs: Int, run: String) -> [String] {
            ["train", "--config", "Configs/tiny.yaml", "--data", data, "--run-dir", run, "--set", "epochs=\(epochs)", "--set", "batchSize=10"]
        }

        /// The sbatch arguments of Launch/slurm.sbatch for this workload.
        func sbatch(run: String, options: String = "") -> String {
            "-n \(tasks) \(options) Launch/slurm.sbatch Configs/tiny.yaml '\(data)' '\(run)' --set epochs=\(epochs) --set batchSize=10"
        }
    }

    /// Submits the workload, lets `preempt` act on the running job, and checks that the job
    /// checkpointed, exited 75, was requeued, resumed and ended equal to the uninterrupted run.
    static func preempted(_ name: String, epochs: Int, tasks: Int = 2, options: String = "", timeout: TimeInterval,
                          preempt: (SlurmCluster, Int, String) -> Void) throws {
        let cluster = try SlurmCluster()
        defer { cluster.stop() }
        let dir = CLI.temporaryDirectory()
        let workload = try Workload(epochs: epochs, tasks: tasks, in: dir)
        let run = "\(dir)/run", log = "\(dir)/\(name).out"
        let started = Date()
        let job = try cluster.sbatch(workload.sbatch(run: run, options: options), output: log)
        preempt(cluster, job, run)
        let state = cluster.waitForEnd(job, timeout: timeout)
        let output = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
        print("SLURM \(name): job \(job) ended \(state ?? "never") after \(Int(Date().timeIntervalSince(started))) s, \(cluster.field(job, "Restarts") ?? "?") restart(s)")
        #expect(state == "COMPLETED", "\(name): \(state ?? "still running"): \(output)")
        #expect(output.contains("preempted at epoch"), "\(name): \(output)")
        #expect(output.contains("requeueing job \(job)") || output.contains("SLURM has requeued the job itself"), "\(name): \(output)")
        #expect(output.contains("resuming from \(run)/ckpt-"), "\(name): \(output)")
        #expect(Int(cluster.field(job, "Restarts") ?? "0") ?? 0 >= 1)
        #expect(try ResumeTests.finalState(run) == workload.reference(), "\(name): the requeued job's final state differs from the uninterrupted run")
    }

    @Test("scancel --signal=USR1: the ranks checkpoint, exit 75, the job is requeued and finishes bitwise equal to an uninterrupted run")
    func scancelUSR1() throws {
        try Self.preempted("scancel-usr1", epochs: 250, timeout: 240) { cluster, job, run in
            #expect(waitUntil(timeout: 120) { CLI.epochsLogged(run) >= 20 })
            cluster.client("scancel --signal=USR1 \(job)")
        }
    }

    @Test("The time warning (sbatch --signal=USR1 at N s before the limit): checkpoint, 75, requeue, resume, same final state")
    func timeWarning() throws {
        // With --time=1, SLURM sends USR1@50 at its first 30-s check after 10 s (at most 40 s
        // after the start; the run takes about 80 s on one core, its reference on the other). Once the job has
        // been requeued its time limit is raised, so the warning does not come again.
        try Self.preempted("time-warning", epochs: 4000, tasks: 1, options: "--time=1 --signal=USR1@50", timeout: 360) { cluster, job, _ in
            #expect(waitUntil(timeout: 120) { Int(cluster.field(job, "Restarts") ?? "0") ?? 0 >= 1 }, "no time warning within 120 s")
            cluster.client("scontrol update JobId=\(job) TimeLimit=30")
        }
    }

    @Test("scontrol requeue: SIGTERM, checkpoint, 75; SLURM requeues, the job resumes, same final state")
    func scontrolRequeue() throws {
        try Self.preempted("scontrol-requeue", epochs: 250, timeout: 240) { cluster, job, run in
            #expect(waitUntil(timeout: 120) { CLI.epochsLogged(run) >= 20 })
            cluster.client("scontrol requeue \(job)")
        }
    }

    @Test("scancel without --signal cancels for good: the ranks checkpoint, the job is not requeued")
    func userCancel() throws {
        let cluster = try SlurmCluster()
        defer { cluster.stop() }
        let dir = CLI.temporaryDirectory()
        let data = try ResumeTests.data(in: dir)
        let run = "\(dir)/run", log = "\(dir)/cancel.out"
        let job = try cluster.sbatch("-n 2 Launch/slurm.sbatch Configs/tiny.yaml '\(data)' '\(run)' --set epochs=5000", output: log)
        #expect(waitUntil(timeout: 120) { CLI.epochsLogged(run) >= 10 })
        cluster.client("scancel \(job)")
        #expect(cluster.waitForEnd(job, timeout: 60) == "CANCELLED")
        let output = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
        #expect(output.contains("not requeueing"), "\(output)")
        #expect(cluster.field(job, "Restarts") == "0")
        #expect(try FileManager.default.contentsOfDirectory(atPath: run).contains { $0.hasPrefix("ckpt-") })
    }

    @Test("search.sbatch preempted by scancel --signal=USR1 is requeued and finishes with the uninterrupted table")
    func search() throws {
        let cluster = try SlurmCluster()
        defer { cluster.stop() }
        let dir = CLI.temporaryDirectory()
        let data = try ResumeTests.data(in: dir)
        let grid = ["--grid", "mass=0.5,1", "--grid", "damping=0.3,0.8"]
        let reference = try CLI.run(["search", "--config", "Configs/tiny.yaml", "--data", data, "--run-dir", "\(dir)/reference",
                                     "--ranks-per-trial", "1", "--set", "epochs=60"] + grid, ranks: 2)
        #expect(reference.status == 0, "\(reference.output)")
        let run = "\(dir)/search", log = "\(dir)/search.out"
        let job = try cluster.sbatch("-n 2 --export=ALL,RANKS_PER_TRIAL=1 Launch/search.sbatch Configs/tiny.yaml '\(data)' '\(run)' --set epochs=60 "
                                     + grid.joined(separator: " "), output: log)
        // Preempt once a trial has a checkpoint to resume from.
        #expect(waitUntil(timeout: 120) {
            ((try? FileManager.default.contentsOfDirectory(atPath: "\(run)/trials")) ?? []).contains { trial in
                ((try? FileManager.default.contentsOfDirectory(atPath: "\(run)/trials/\(trial)")) ?? []).contains { $0.hasPrefix("ckpt-") }
            }
        })
        cluster.client("scancel --signal=USR1 \(job)")
        let state = cluster.waitForEnd(job, timeout: 240)
        let output = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
        #expect(state == "COMPLETED", "\(state ?? "still running"): \(output)")
        #expect(output.contains("search preempted") && output.contains("requeueing job \(job)"), "\(output)")
        #expect(try SearchTests.table(run) == SearchTests.table("\(dir)/reference"))
    }
}

/// The time limit waits for SLURM's own clock (a minute at least), so it runs beside the other
/// SLURM tests, on a cluster of its own.
@Suite("SLURM: a time limit", .enabled(if: SlurmCluster.unavailable == nil, Comment(rawValue: SlurmCluster.unavailable ?? "")))
struct SlurmTimeLimitTests {
    @Test("A time limit: SIGTERM at the limit, checkpoint, 75, requeue, resume, same final state")
    func timeLimit() throws {
        // --signal=CONT@1 replaces the script's USR1@120, so nothing warns before the limit
        // (enforced 60–90 s after the start; the run takes about 140 s on one core). One task,
        // so the job and its reference, training beside it, each have a core. The requeued
        // job gets a longer limit.
        try SlurmTests.preempted("time-limit", epochs: 7000, tasks: 1, options: "--time=1 --signal=CONT@1", timeout: 480) { cluster, job, _ in
            #expect(waitUntil(timeout: 150) { Int(cluster.field(job, "Restarts") ?? "0") ?? 0 >= 1 }, "the time limit did not end the job within 150 s")
            cluster.client("scontrol update JobId=\(job) TimeLimit=30")
        }
    }
}
