import Foundation
import Testing

/// The report of a real (tiny) training run, written by `train` itself, read as a person would:
/// rendered in headless Chromium, every figure present, no label over another, no console error.
@Suite("The run report", .serialized)
struct RunReportTests {
    /// The lflow-dist binary beside the test bundle (built because ReportTests depends on it).
    static let binary = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        .deletingLastPathComponent().appendingPathComponent("lflow-dist").path
    static let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent().path

    static func run(_ arguments: [String]) throws -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = arguments
        process.currentDirectoryURL = URL(fileURLWithPath: packageRoot)
        var environment = ProcessInfo.processInfo.environment
        environment["OPENBLAS_NUM_THREADS"] = "1"
        process.environment = environment
        let log = NSTemporaryDirectory() + "lflow-report-\(UUID().uuidString).log"
        FileManager.default.createFile(atPath: log, contents: nil)
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
        process.standardOutput = handle
        process.standardError = handle
        try process.run()
        process.waitUntilExit()
        return (process.terminationStatus, (try? String(contentsOfFile: log, encoding: .utf8)) ?? "")
    }

    /// A tiny run on Lorenz data with ground truth (conditions, true rates and latents).
    static let tinyRun: String = {
        let dir = NSTemporaryDirectory() + "lflow-report-\(UUID().uuidString)"
        try! FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        _ = try? run(["synth", "--out", "\(dir)/data.h5", "--conditions", "4", "--trials-per-condition", "6",
                      "--bins", "12", "--forward-bins", "3", "--neurons", "12", "--held-out", "4"])
        _ = try? run(["train", "--config", "Configs/tiny.yaml", "--data", "\(dir)/data.h5", "--run-dir", "\(dir)/run",
                      "--set", "epochs=6", "--set", "hidden=16"])
        return "\(dir)/run"
    }()

    @Test("train ends by writing report.html: every section, one figure per view, self-contained")
    func written() throws {
        let page = try String(contentsOfFile: Self.tinyRun + "/report.html", encoding: .utf8)
        for section in ["Training", "Validation metrics", "Latent trajectories", "Rates and spikes", "The learned coupling",
                        "Inferred and true latents"] {
            #expect(page.contains("<h2>\(section)</h2>"), "missing section \(section)")
        }
        // 4 training curves and the latent R² curve, 2 trajectories (z, v) and z over time, 2
        // rasters, kernel and force matrix, 3 true latents.
        #expect(page.components(separatedBy: "class=\"figure\"").count - 1 == 15)
        #expect(page.contains("Latent R² over training") && page.contains("z motion"), "the latent probe's curve (synth data has truth)")
        #expect(page.contains("Position z over the trial"))
        #expect(page.contains("coloured by condition"), "conditions from the ground truth colour the trajectories")
        #expect(!page.contains("<script") && !page.contains("src=\"http") && !page.contains("href=\"http") && !page.contains("url(http"))
        #expect(!page.lowercased().contains(">nan<") && !page.contains("NaN"))
    }

    @Test("report --run-dir writes the same page again, and names what is missing")
    func command() throws {
        let again = try Self.run(["report", "--run-dir", Self.tinyRun, "--out", Self.tinyRun + "/again.html"])
        #expect(again.status == 0, "\(again.output)")
        #expect(FileManager.default.fileExists(atPath: Self.tinyRun + "/again.html"))
        let missing = try Self.run(["report", "--run-dir", NSTemporaryDirectory() + "no-such-run"])
        #expect(missing.status != 0 && missing.output.contains("metrics.jsonl"), "\(missing.output)")
    }

    @Test("Rendered in headless Chromium: 15 figures, no overlapping or clipped labels, no console errors",
          .enabled(if: HeadlessChromium.unavailable == nil, Comment(rawValue: HeadlessChromium.unavailable ?? "")))
    func rendered() throws {
        let shot = NSTemporaryDirectory() + "lflow-report-\(UUID().uuidString).png"
        let check = try HeadlessChromium.check(html: Self.tinyRun + "/report.html", screenshot: shot)
        #expect(check.figures == 15)
        #expect(check.overlaps.isEmpty, "overlapping labels: \(check.overlaps)")
        #expect(check.clipped.isEmpty, "clipped labels: \(check.clipped)")
        #expect(check.consoleErrors.isEmpty, "console: \(check.consoleErrors)")
        #expect(check.externalResources.isEmpty && check.missingResources.isEmpty)
        let size = (try FileManager.default.attributesOfItem(atPath: shot)[.size] as? Int) ?? 0
        #expect(size > 50_000, "screenshot \(shot) is \(size) bytes")
        try? FileManager.default.removeItem(atPath: "/tmp/lflow-report-tiny.png")
        try? FileManager.default.copyItem(atPath: shot, toPath: "/tmp/lflow-report-tiny.png")
    }
}
