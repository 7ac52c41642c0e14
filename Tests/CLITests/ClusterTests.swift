import Foundation
import Testing
import HDF5

/// A pretend cluster: `Launch/netns-cluster.sh` makes each host a network namespace on one
/// bridge, and OpenMPI reaches them through its rsh agent, so the ranks talk TCP between
/// distinct network stacks as on real nodes. Traffic stays on the cluster's own 10.77.X.0/24.
struct PretendCluster {
    static let script = CLI.packageRoot + "/Launch/netns-cluster.sh"

    /// Why the pretend cluster cannot run here, or nil when it can (root, iproute2, namespaces).
    static let unavailable: String? = {
        guard getuid() == 0 else { return "needs root to make network namespaces" }
        let probe = "lfprobe\(getpid() % 10000)"
        let made = shell("ip netns add \(probe) && ip netns del \(probe)")
        guard made.status == 0 else { return "cannot make a network namespace here: \(made.output.trimmingCharacters(in: .whitespacesAndNewlines))" }
        return nil
    }()

    let name: String
    let hosts: [String]
    let subnet: String

    init(hosts count: Int) throws {
        name = "lf\(getpid() % 10000)\(Int.random(in: 10...99))"
        let up = shell("bash \(Self.script) up \(name) \(count)")
        guard up.status == 0 else {
            shell("bash \(Self.script) down \(name)")
            throw CLIError("netns-cluster up failed: \(up.output)")
        }
        hosts = up.output.split(separator: "\n").map(String.init)
        subnet = shell("bash \(Self.script) subnet \(name)").output.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// Kills everything in the namespaces and removes them, the veths and the bridge.
    func down() { shell("bash \(Self.script) down \(name)") }
    func linkDown(_ host: Int) { shell("bash \(Self.script) link-down \(name) \(host)") }
    func linkUp(_ host: Int) { shell("bash \(Self.script) link-up \(name) \(host)") }

    /// mpirun options for TCP between these hosts, `slots` ranks on host 1, 2, …
    func mpirunOptions(slots: [Int]) -> [String] {
        let hostList = zip(hosts, slots).filter { $0.1 > 0 }.map { "\($0.0):\($0.1)" }.joined(separator: ",")
        return ["--mca", "plm_rsh_agent", CLI.packageRoot + "/Launch/netns-rsh.sh",
                "--mca", "btl", "tcp,self", "--mca", "btl_tcp_if_include", subnet, "--mca", "oob_tcp_if_include", subnet,
                "--host", hostList, "-x", "OPENBLAS_NUM_THREADS=1", "-n", "\(slots.reduce(0, +))"]
    }

    /// Processes inside host `index`'s namespace.
    func processes(onHost index: Int) -> [Int32] {
        shell("ip netns pids \(name)-h\(index)").output.split(separator: "\n").compactMap { Int32($0) }
    }
}

struct CLIError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// Launchers for the pretend cluster: plain mpirun, and the supervised Launch/mpirun-cluster.sh.
extension CLI {
    static func mpirun(_ options: [String], _ arguments: [String]) throws -> Result {
        try runProcess("/usr/bin/env", ["mpirun", "--oversubscribe"] + options + [binary] + arguments)
    }

    static func clusterJob(_ options: [String], _ arguments: [String], output: String,
                           environment: [String: String] = [:]) throws -> BackgroundJob {
        try BackgroundJob("/bin/bash", [packageRoot + "/Launch/mpirun-cluster.sh", "--oversubscribe"] + options + [binary] + arguments,
                          environment: environment, output: output)
    }
}

@Suite("Across hosts: TCP between network namespaces", .serialized,
       .enabled(if: PretendCluster.unavailable == nil, Comment(rawValue: PretendCluster.unavailable ?? "")))
struct ClusterTests {
    static let trainArgs = ["train", "--config", "Configs/tiny.yaml", "--set", "epochs=2", "--set", "batchSize=10"]

    @Test("train on 2 hosts × 1 and 4 hosts × 2 ranks over TCP equals the single-host run at the same world size, bitwise; search groups span hosts")
    func equalsSingleHost() throws {
        let cluster = try PretendCluster(hosts: 4)
        defer { cluster.down() }
        let dir = CLI.temporaryDirectory()
        let data = try ResumeTests.data(in: dir)
        for slots in [[1, 1], [2, 2, 2, 2]] {
            let ranks = slots.reduce(0, +)
            let local = try CLI.run(Self.trainArgs + ["--data", data, "--run-dir", "\(dir)/local\(ranks)"], ranks: ranks)
            #expect(local.status == 0, "\(local.output)")
            let remote = try CLI.mpirun(cluster.mpirunOptions(slots: slots), Self.trainArgs + ["--data", data, "--run-dir", "\(dir)/hosts\(ranks)"])
            #expect(remote.status == 0, "\(remote.output)")
            #expect(remote.stdout.contains("bit-identical on all \(ranks) ranks"), "\(remote.stdout)")
            // overlapAllreduce: auto overlaps across hosts and not on one: the same bits either way.
            #expect(remote.stdout.contains("overlapped with the backward, on a communication thread (overlapAllreduce: auto, the ranks on more than one host)"),
                    "\(remote.stdout)")
            #expect(local.stdout.contains("after the backward (overlapAllreduce: auto, the ranks on one host)"), "\(local.stdout)")
            #expect(try ResumeTests.finalState("\(dir)/hosts\(ranks)") == ResumeTests.finalState("\(dir)/local\(ranks)"),
                    "\(slots.count) hosts differ from one host at \(ranks) ranks")
        }
        // A search whose groups of 2 ranks each span two hosts (--map-by node: ranks 0 and 2 on
        // host 1, ranks 1 and 3 on host 2) gives the single-host table.
        let search = ["search", "--config", "Configs/tiny.yaml", "--set", "epochs=2", "--ranks-per-trial", "2",
                      "--grid", "mass=0.5,1", "--grid", "damping=0.3,0.8", "--data", data]
        let local = try CLI.run(search + ["--run-dir", "\(dir)/search-local"], ranks: 4)
        #expect(local.status == 0, "\(local.output)")
        let remote = try CLI.mpirun(cluster.mpirunOptions(slots: [2, 2]) + ["--map-by", "node"], search + ["--run-dir", "\(dir)/search-hosts"])
        #expect(remote.status == 0, "\(remote.output)")
        #expect(try SearchTests.table("\(dir)/search-hosts") == SearchTests.table("\(dir)/search-local"))
    }

    /// Starts a 2-host training run under Launch/mpirun-cluster.sh and waits until it has
    /// trained `epochs` epochs (and so has checkpoints).
    func startTwoHostRun(_ cluster: PretendCluster, data: String, run: String, timeout: Double, log: String) throws -> BackgroundJob {
        let job = try CLI.clusterJob(cluster.mpirunOptions(slots: [1, 1]),
                                     ["train", "--config", "Configs/tiny.yaml", "--data", data, "--run-dir", run,
                                      "--set", "epochs=600", "--set", "collectiveTimeoutSeconds=\(Int(timeout))"],
                                     output: log)
        let trained = waitUntil(timeout: 60) {
            ((try? String(contentsOfFile: "\(run)/metrics.jsonl", encoding: .utf8)) ?? "").split(separator: "\n").count >= 30
        }
        #expect(trained, "the 2-host run did not get going: \(job.output)")
        return job
    }

    @Test("A lost link ends the job by itself within collectiveTimeoutSeconds + 30 s (status 69, the watchdog's message); the remaining host resumes and finishes")
    func lostLink() throws {
        let cluster = try PretendCluster(hosts: 2)
        defer { cluster.down() }
        let dir = CLI.temporaryDirectory()
        let data = try CLI.smallData(in: dir)
        let run = "\(dir)/run", timeout = 10.0
        let job = try startTwoHostRun(cluster, data: data, run: run, timeout: timeout, log: "\(dir)/job.log")
        defer { job.kill() }
        cluster.linkDown(2)
        let cut = Date()
        let status = job.wait(timeout: timeout + 30)
        let took = Date().timeIntervalSince(cut)
        #expect(status == 69, "status \(String(describing: status)) after \(took) s: \(job.output)")
        #expect(took <= timeout + 30)
        #expect(job.output.contains("collective watchdog: rank 0 of 2") && job.output.contains("the newest checkpoint is \(run)/ckpt-"),
                "\(job.output)")
        // No rank of the job is left, on either host (host 2's cut-off rank timed out by itself).
        #expect(waitUntil(timeout: 5) { Processes.matching(run).isEmpty }, "left: \(Processes.matching(run).map { Processes.commandLine($0) ?? "?" })")
        // The same command on the remaining host resumes from the newest checkpoint and finishes.
        let rest = try CLI.clusterJob(cluster.mpirunOptions(slots: [1]),
                                      ["train", "--config", "Configs/tiny.yaml", "--data", data, "--run-dir", run,
                                       "--set", "epochs=600", "--set", "collectiveTimeoutSeconds=\(Int(timeout))"],
                                      output: "\(dir)/rest.log")
        #expect(rest.wait(timeout: 120) == 0, "\(rest.output)")
        #expect(rest.output.contains("resuming from") && rest.output.contains("written by 2 ranks, continuing on 1"), "\(rest.output)")
        #expect(FileManager.default.fileExists(atPath: "\(run)/submission.h5"))
        cluster.linkUp(2)
        #expect(waitUntil(timeout: 20) { cluster.processes(onHost: 1).isEmpty && cluster.processes(onHost: 2).isEmpty },
                "left on the hosts after the link came back: \(cluster.processes(onHost: 1)) \(cluster.processes(onHost: 2))")
    }

    @Test("SIGTERM while partitioned ends the job within the deadline; the newest checkpoint loads")
    func sigtermWhilePartitioned() throws {
        let cluster = try PretendCluster(hosts: 2)
        defer { cluster.down() }
        let dir = CLI.temporaryDirectory()
        let data = try CLI.smallData(in: dir)
        let run = "\(dir)/run", timeout = 40.0
        let job = try startTwoHostRun(cluster, data: data, run: run, timeout: timeout, log: "\(dir)/job.log")
        defer { job.kill() }
        cluster.linkDown(2)
        Thread.sleep(forTimeInterval: 1)
        // What SLURM does at a time limit: SIGTERM to every task, on both sides of the cut.
        let ranks = Processes.matching(run).filter { Processes.commandLine($0)?.hasPrefix(CLI.binary) == true }
        #expect(ranks.count == 2)
        let signalled = Date()
        Processes.signal(ranks, SIGTERM)
        let status = job.wait(timeout: timeout)
        #expect(status != nil && status != 0, "still running \(timeout) s after SIGTERM: \(job.output)")
        #expect(waitUntil(timeout: timeout - Date().timeIntervalSince(signalled)) { Processes.matching(run).isEmpty },
                "left after \(timeout) s: \(Processes.matching(run).map { Processes.commandLine($0) ?? "?" })")
        #expect(Date().timeIntervalSince(signalled) <= timeout)
        let checkpoints = try FileManager.default.contentsOfDirectory(atPath: run).filter { $0.hasPrefix("ckpt-") }.sorted()
        let newest = try #require(checkpoints.last)
        let file = try H5File.open("\(run)/\(newest)")
        #expect(try file.readFloats("model/readout.weight").values.allSatisfy(\.isFinite))
        let resumed = try CLI.run(["train", "--config", "Configs/tiny.yaml", "--data", data, "--run-dir", run,
                                   "--set", "epochs=1", "--resume"])
        #expect(resumed.stdout.contains("resuming from \(run)/\(newest)"), "\(resumed.output)")
    }
}
