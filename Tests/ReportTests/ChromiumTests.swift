import Foundation
import Testing
@testable import Report

/// A demo report page with one figure of each kind, rendered in real headless Chromium.
@Suite(.enabled(if: HeadlessChromium.unavailable == nil, Comment(rawValue: HeadlessChromium.unavailable ?? "")))
struct ChromiumTests {
    static func demoPage() -> String {
        // Training curves over 300 epochs with a best-epoch marker.
        let epochs = (1...300).map(Double.init)
        let train = epochs.map { 1.2 * exp(-$0 / 45) + 0.31 + 0.01 * sin($0 / 3) }
        let valid = epochs.map { 1.25 * exp(-$0 / 40) + 0.36 + 0.00035 * max(0, $0 - 180) + 0.012 * sin($0 / 2.3) }
        let best = valid.indices.min { valid[$0] < valid[$1] }!
        let curves = Plots.lines(title: "Training curves", subtitle: "Poisson NLL per bin",
                                 xLabel: "epoch", yLabel: "loss",
                                 series: [Series(name: "train", x: epochs, y: train),
                                          Series(name: "validation", x: epochs, y: valid, dashed: true)],
                                 marker: (x: epochs[best], label: "best epoch \(Int(epochs[best]))"))
        // A 280×280 symmetric force matrix.
        let n = 280
        var m = [Double](repeating: 0, count: n * n)
        for i in 0..<n {
            for j in i..<n {
                let d = Double(j - i)
                let v = 0.8 * exp(-d / 18) * cos(d / 9) * (i == j ? 0 : 1) + 0.15 * sin(Double(i + j) / 31)
                m[i * n + j] = v
                m[j * n + i] = v
            }
        }
        let heat = Plots.heatmap(title: "Pairwise force matrix", values: m, rows: n, columns: n,
                                 rowLabel: "latent i", columnLabel: "latent j", valueLabel: "force", diverging: true)
        // 24 trajectories in 6 groups.
        var paths: [[(x: Double, y: Double)]] = []
        var groups: [Int] = []
        for k in 0..<24 {
            let g = k % 6
            let angle = Double(g) * .pi / 3
            let jitter = Double(k / 6) * 0.15
            paths.append((0..<40).map { t in
                let s = Double(t) / 39
                let r = 3 * sin(s * .pi) + jitter
                return (x: r * cos(angle + s * 1.2) + 0.2 * jitter, y: r * sin(angle + s * 1.2) - 0.1 * jitter)
            })
            groups.append(g)
        }
        let traj = Plots.trajectories(title: "Latent trajectories", subtitle: "PC1 vs PC2, 24 trials",
                                      xLabel: "PC1", yLabel: "PC2", paths: paths, groups: groups,
                                      groupNames: ["reach 0°", "reach 60°", "reach 120°", "reach 180°", "reach 240°", "reach 300°"])
        // A raster of 4 neurons × 45 bins with rates and truth.
        let bins = 45
        let truth = (0..<4).map { nn in (0..<bins).map { b in max(0.05, 1.2 + 1.1 * sin(Double(b) / 5 + Double(nn) * 1.3)) } }
        let rates = truth.enumerated().map { nn, row in row.enumerated().map { b, v in max(0.02, v * 0.92 + 0.08 * cos(Double(b + nn))) } }
        var state: UInt64 = 12345
        func uniform() -> Double {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return Double(state >> 11) / Double(1 << 53)
        }
        func poisson(_ lambda: Double) -> Double {
            var k = 0.0, p = 1.0
            let l = exp(-lambda)
            repeat { k += 1; p *= uniform() } while p > l
            return k - 1
        }
        let spikes = truth.map { $0.map(poisson) }
        let raster = Plots.raster(title: "Spikes and inferred rates", subtitle: "held-out trial 7",
                                  spikes: spikes, rates: rates, truth: truth, binMs: 20)
        // True vs inferred latent.
        let xs = (0..<300).map { sin(Double($0) / 7) * 2 + cos(Double($0) / 3) }
        let ys = xs.enumerated().map { i, v in 0.92 * v + 0.15 * sin(Double(i) * 1.7) + 0.05 }
        let scatter = Plots.scatter(title: "Latent recovery", subtitle: "R² = 0.97", xLabel: "true latent",
                                    yLabel: "inferred latent", x: xs, y: ys, identityLine: true)
        return """
        <!DOCTYPE html>
        <html lang="en"><head><meta charset="utf-8"><title>Demo run report</title>
        <style>body{font-family:system-ui,-apple-system,'Segoe UI',Helvetica,Arial,sans-serif;margin:24px;color:#222;background:#fafafa}
        h1{font-size:18px;font-weight:600}.figure-grid>div{background:#fff;border:1px solid #e3e3e3;border-radius:4px;padding:6px}</style>
        </head><body><h1>Demo run report</h1>
        \(Plots.grid([curves, heat, traj, raster, scatter], columns: 2))
        </body></html>
        """
    }

    @Test("A demo report renders with 5 figures, no overlapping text, no console errors")
    func demoReport() throws {
        let dir = NSTemporaryDirectory() + "report-demo-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let html = dir + "/report.html"
        try Self.demoPage().write(toFile: html, atomically: true, encoding: .utf8)
        let png = dir + "/report.png"
        let check = try HeadlessChromium.check(html: html, screenshot: png)
        #expect(check.figures == 5)
        #expect(check.overlaps.isEmpty, "\(check.overlaps)")
        #expect(check.clipped.isEmpty, "\(check.clipped)")
        #expect(check.consoleErrors.isEmpty, "\(check.consoleErrors)")
        #expect(check.missingResources.isEmpty, "\(check.missingResources)")
        #expect(check.externalResources.isEmpty, "\(check.externalResources)")
        let size = (try FileManager.default.attributesOfItem(atPath: png)[.size] as? NSNumber)?.intValue ?? 0
        #expect(size > 20_000, "screenshot is \(size) bytes")
        let head = try Data(contentsOf: URL(fileURLWithPath: png)).prefix(8)
        #expect(head == Data([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]))
        // Kept for people to look at.
        try? FileManager.default.removeItem(atPath: "/tmp/report-demo.png")
        try? FileManager.default.copyItem(atPath: png, toPath: "/tmp/report-demo.png")
        try? FileManager.default.removeItem(atPath: "/tmp/report-demo.html")
        try? FileManager.default.copyItem(atPath: html, toPath: "/tmp/report-demo.html")
    }

    @Test("The checker itself sees console errors, overlaps and missing images")
    func checkerFindsProblems() throws {
        let dir = NSTemporaryDirectory() + "report-bad-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let html = dir + "/bad.html"
        try """
        <!DOCTYPE html><html><head><meta charset="utf-8"></head><body>
        <svg class="figure" width="200" height="100"><title>bad</title>
        <text x="10" y="50">overlapping one</text><text x="20" y="52">overlapping two</text></svg>
        <img src="missing.png" alt="x"><script>console.error("boom");</script>
        </body></html>
        """.write(toFile: html, atomically: true, encoding: .utf8)
        let check = try HeadlessChromium.check(html: html, screenshot: dir + "/bad.png", width: 400)
        #expect(check.figures == 1)
        #expect(check.overlaps.count == 1)
        #expect(check.consoleErrors.contains { $0.contains("boom") })
        #expect(check.missingResources.contains { $0.contains("missing.png") })
    }
}
