import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif
import Testing
@testable import Report

/// Parses an SVG string; collects element names, classes and text per class.
final class SVGProbe: NSObject, XMLParserDelegate {
    var elements: [String] = []
    var texts: [(cls: String, text: String)] = []
    var rootAttributes: [String: String] = [:]
    var error: String?
    private var currentClass: String?
    private var buffer = ""

    static func parse(_ svg: String) -> SVGProbe {
        let probe = SVGProbe()
        let parser = XMLParser(data: Data(svg.utf8))
        parser.delegate = probe
        if !parser.parse() && probe.error == nil {
            probe.error = parser.parserError.map { "\($0)" } ?? "parse failed"
        }
        return probe
    }

    func parser(_ parser: XMLParser, didStartElement name: String, namespaceURI: String?, qualifiedName: String?,
                attributes: [String: String] = [:]) {
        if elements.isEmpty { rootAttributes = attributes }
        elements.append(name)
        if name == "text" { currentClass = attributes["class"] ?? ""; buffer = "" }
    }

    func parser(_ parser: XMLParser, foundCharacters string: String) {
        if currentClass != nil { buffer += string }
    }

    func parser(_ parser: XMLParser, didEndElement name: String, namespaceURI: String?, qualifiedName: String?) {
        if name == "text", let c = currentClass { texts.append((c, buffer)); currentClass = nil }
    }

    func parser(_ parser: XMLParser, parseErrorOccurred parseError: Error) { error = "\(parseError)" }

    func texts(_ cls: String) -> [String] { texts.filter { $0.cls == cls }.map(\.text) }
}

/// Checks every figure must pass: well-formed, sized, titled, no non-finite numbers.
func checkFigure(_ svg: String, title: String, sourceLocation: SourceLocation = #_sourceLocation) -> SVGProbe {
    let probe = SVGProbe.parse(svg)
    #expect(probe.error == nil, "not well-formed XML: \(probe.error ?? "")", sourceLocation: sourceLocation)
    #expect(probe.elements.first == "svg", sourceLocation: sourceLocation)
    #expect(probe.rootAttributes["class"] == "figure", sourceLocation: sourceLocation)
    #expect(probe.rootAttributes["width"] != nil && probe.rootAttributes["height"] != nil, sourceLocation: sourceLocation)
    #expect(probe.rootAttributes["viewBox"] != nil, sourceLocation: sourceLocation)
    #expect(probe.elements.dropFirst().first == "title", sourceLocation: sourceLocation)
    #expect(svg.contains("<title>\(SVG.escape(title))</title>"), sourceLocation: sourceLocation)
    // "nan"/"inf" as tokens (words such as "inferred" are fine).
    let bad = svg.range(of: #"(?i)(?<![a-z])(nan|-?inf(inity)?)(?![a-z])"#, options: .regularExpression)
    #expect(bad == nil, "non-finite number in output: \(bad.map { String(svg[$0]) } ?? "")", sourceLocation: sourceLocation)
    #expect(!probe.texts("panel-title").isEmpty, sourceLocation: sourceLocation)
    return probe
}

/// A tick label parses back to a multiple of a 1-2-5 step.
func isNice(_ ticks: Ticks) -> Bool {
    let e = floor(log10(ticks.step) + 1e-9)
    let m = ticks.step / pow(10, e)
    guard [1.0, 2, 5].contains(where: { abs(m - $0) < 1e-9 }) else { return false }
    return ticks.values.allSatisfy { abs($0 / ticks.step - ($0 / ticks.step).rounded()) < 1e-6 }
}

@Suite("Report plots")
struct PlotTests {
    @Test("SVG numbers are compact and never non-finite; text is escaped")
    func svgBasics() {
        #expect(SVG.num(1.0) == "1")
        #expect(SVG.num(-0.04) == "0")
        #expect(SVG.num(3.14159, 2) == "3.14")
        #expect(SVG.num(-2.5) == "-2.5")
        #expect(SVG.num(0.05, 2) == "0.05")
        #expect(SVG.num(.nan) == "0")
        #expect(SVG.num(.infinity) == "0")
        #expect(SVG.escape("a<b & \"c\" 'd'>") == "a&lt;b &amp; &quot;c&quot; &apos;d&apos;&gt;")
    }

    @Test("Ticks are 1-2-5 multiples, 4 to 7 of them, labelled compactly",
          arguments: [(0.0, 1.0), (0.1, 0.3), (-3.7, 12.2), (1, 300), (0.00013, 0.00089), (2.5e5, 9.9e6),
                      (-1, 1), (0.82, 0.97), (1e-9, 3e-9), (42, 42)])
    func niceTicks(_ range: (Double, Double)) {
        for extend in [true, false] {
            let t = Plots.niceTicks(range.0, range.1, extend: extend)
            #expect(isNice(t), "\(t.values) step \(t.step)")
            #expect((4...7).contains(t.values.count) || (!extend && t.values.count >= 2), "\(t.values)")
            for label in t.labels {
                #expect(label.count <= 8, "label \(label)")
                #expect(!label.contains("000000"), "label \(label)")
            }
            if extend {
                #expect(t.lo <= min(range.0, range.1) && t.hi >= max(range.0, range.1) || range.0 == range.1)
            }
        }
        #expect(Plots.niceTicks(0.1, 0.3, extend: true).labels == ["0.10", "0.15", "0.20", "0.25", "0.30"])
        #expect(Plots.niceTicks(-1, 1, extend: true).labels.contains("−1.0"))
        #expect(Plots.niceTicks(2.5e5, 9.9e6, extend: true).labels.contains { $0.contains("×10") })
    }

    @Test("Log ticks are powers of ten across decades and 1-2-5 within one")
    func logTicks() {
        let wide = Plots.logTicks(0.003, 40)
        #expect(wide.labels == ["0.01", "0.1", "1", "10"])
        let narrow = Plots.logTicks(0.8, 3.2)
        #expect(narrow.values.count >= 2)
        #expect(narrow.values.allSatisfy { $0 >= 0.8 && $0 <= 3.2 })
        let tiny = Plots.logTicks(1e-8, 1e-2)
        #expect(tiny.labels.first == "10⁻⁸")
    }

    @Test("Line plot: series, legend, marker, log-y, NaN points skipped")
    func lines() {
        let x = (1...300).map(Double.init)
        let train = x.map { 2 * exp(-$0 / 60) + 0.3 }
        var valid = x.map { 2.2 * exp(-$0 / 50) + 0.4 + 0.0005 * $0 }
        valid[17] = .nan
        valid[18] = .infinity
        for logY in [false, true] {
            let svg = Plots.lines(title: "Loss", xLabel: "epoch", yLabel: "loss",
                                  series: [Series(name: "train", x: x, y: train),
                                           Series(name: "valid", x: x, y: valid, dashed: true)],
                                  logY: logY, marker: (x: 212, label: "best epoch 212"))
            let p = checkFigure(svg, title: "Loss")
            #expect(p.texts("legend-label") == ["train", "valid"])
            #expect(p.texts("axis-label") == ["epoch", "loss"])
            #expect(p.texts("tick-label").count >= 6)
            #expect(svg.contains("best epoch 212"))
            #expect(svg.contains("stroke-dasharray"))
        }
        // Very long curves are decimated per pixel column, so the figure stays small.
        let steps = (0..<100_000).map(Double.init)
        let long = Plots.lines(title: "Long", xLabel: "step", yLabel: "loss",
                               series: [Series(name: "loss", x: steps, y: steps.map { 1 / (1 + $0 / 1000) + 0.01 * sin($0) })])
        _ = checkFigure(long, title: "Long")
        #expect(long.utf8.count < 60_000, "\(long.utf8.count) bytes")
    }

    @Test("Every plot survives empty and constant data")
    func degenerate() {
        let svgs = [
            Plots.lines(title: "empty", xLabel: "x", yLabel: "y", series: []),
            Plots.lines(title: "non-finite only", xLabel: "x", yLabel: "y", series: [Series(name: "a", x: [1, 2], y: [.nan, .nan])], logY: true),
            Plots.lines(title: "constant", xLabel: "x", yLabel: "y", series: [Series(name: "a", x: [1, 1, 1], y: [5, 5, 5])]),
            Plots.lines(title: "zero", xLabel: "x", yLabel: "y", series: [Series(name: "a", x: [0], y: [0])], logY: true),
            Plots.heatmap(title: "empty", values: [], rows: 0, columns: 0, rowLabel: "r", columnLabel: "c", diverging: true),
            Plots.heatmap(title: "constant", values: [2, 2, 2, 2], rows: 2, columns: 2, rowLabel: "r", columnLabel: "c", diverging: false),
            Plots.heatmap(title: "zeros", values: [0, 0, 0, 0], rows: 2, columns: 2, rowLabel: "r", columnLabel: "c", diverging: true),
            Plots.heatmap(title: "short", values: [1], rows: 3, columns: 3, rowLabel: "r", columnLabel: "c", diverging: false),
            Plots.trajectories(title: "empty", xLabel: "PC1", yLabel: "PC2", paths: [], groups: [], groupNames: []),
            Plots.trajectories(title: "point", xLabel: "PC1", yLabel: "PC2", paths: [[(x: 1, y: 1)]], groups: [0], groupNames: ["a"]),
            Plots.raster(title: "empty", spikes: [], rates: [], binMs: 20),
            Plots.raster(title: "zeros", spikes: [[0, 0, 0]], rates: [[0, 0, 0]], truth: [[0, 0, 0]], binMs: 20),
            Plots.scatter(title: "empty", xLabel: "x", yLabel: "y", x: [], y: [], identityLine: true),
            Plots.scatter(title: "constant", xLabel: "x", yLabel: "y", x: [3, 3], y: [3, 3], identityLine: false),
        ]
        for svg in svgs {
            let title = SVGProbe.parse(svg).texts("panel-title").first ?? ""
            _ = checkFigure(svg, title: title)
        }
    }

    @Test("Heatmap: large matrices are block-averaged and say so; diverging scale is symmetric")
    func heatmap() {
        let n = 280
        var v = [Double](repeating: 0, count: n * n)
        for i in 0..<n { for j in 0..<n { v[i * n + j] = sin(Double(i) / 20) * cos(Double(j) / 15) * (i == j ? 0 : 1) } }
        v[5] = .nan
        let svg = Plots.heatmap(title: "Force matrix", values: v, rows: n, columns: n, rowLabel: "neuron i",
                                columnLabel: "neuron j", valueLabel: "coupling", diverging: true)
        let p = checkFigure(svg, title: "Force matrix")
        #expect(svg.contains("280×280, shown as 94×94 means of 3×3 blocks"))
        #expect(svg.utf8.count < 250_000, "\(svg.utf8.count) bytes")
        let ticks = p.texts("tick-label")
        #expect(ticks.contains("250"))       // original indices on the axes
        #expect(!ticks.contains("93"))
        // Colourbar ticks symmetric around zero.
        let bar = ticks.compactMap { Double($0.replacingOccurrences(of: "−", with: "-")) }.filter { abs($0) < 2 }
        #expect(bar.contains(0))
        for b in bar where b != 0 && abs(b) < 1 { #expect(bar.contains(-b), "\(b) without \(-b)") }

        // Small matrix: no aggregation, sequential map.
        let small = Plots.heatmap(title: "small", values: (0..<12).map(Double.init), rows: 3, columns: 4,
                                  rowLabel: "r", columnLabel: "c", diverging: false)
        _ = checkFigure(small, title: "small")
        #expect(!small.contains("means of"))
        #expect(small.contains(Colors.viridis(0)) && small.contains(Colors.viridis(1)))
    }

    @Test("Trajectories: one path per trial, start dots, legend capped at 12 entries")
    func trajectories() {
        var paths: [[(x: Double, y: Double)]] = []
        for k in 0..<40 {
            var p: [(x: Double, y: Double)] = []
            for t in 0..<30 {
                let x: Double = cos(Double(t) / 5 + Double(k))
                let y: Double = sin(Double(t) / 7) * Double(k % 5)
                p.append((x: x, y: y))
            }
            paths.append(p)
        }
        let groups = (0..<40).map { $0 % 20 }
        let svg = Plots.trajectories(title: "Latents", xLabel: "PC1", yLabel: "PC2", paths: paths, groups: groups,
                                     groupNames: (0..<20).map { "cond \($0)" })
        let p = checkFigure(svg, title: "Latents")
        #expect(p.elements.filter { $0 == "path" }.count == 40)
        #expect(p.elements.filter { $0 == "circle" }.count >= 40)
        let legend = p.texts("legend-label")
        #expect(legend.count == 12)
        #expect(legend.last == "+9 more")
    }

    @Test("Raster: one panel per neuron with labels, rates and truth")
    func raster() {
        let bins = 45
        let truth = (0..<4).map { n in (0..<bins).map { b in 1.5 + sin(Double(b) / 6 + Double(n)) } }
        let rates = truth.map { $0.map { $0 * 0.9 + 0.1 } }
        let spikes: [[Double]] = truth.map { row in row.indices.map { b in Double((b * 7) % 4) * row[b] / 2 } }
        let svg = Plots.raster(title: "Rates", spikes: spikes, rates: rates, truth: truth, binMs: 20)
        let p = checkFigure(svg, title: "Rates")
        #expect(p.texts("axis-label").filter { $0.hasPrefix("neuron") }.count == 4)
        #expect(p.texts("axis-label").contains("time (ms)"))
        #expect(p.texts("legend-label") == ["spikes", "inferred rate", "true rate"])
        #expect(p.texts("tick-label").contains("800"))
        // Too many neurons for the requested height: the figure grows instead of squashing panels.
        let many = Plots.raster(title: "Many", spikes: Array(repeating: [1, 2, 0], count: 30),
                                rates: Array(repeating: [1, 1, 1], count: 30), binMs: 10, height: 300)
        let q = checkFigure(many, title: "Many")
        #expect(Double(q.rootAttributes["height"] ?? "0")! > 900)
    }

    @Test("Scatter: points, identity line, thinning of large inputs")
    func scatter() {
        let x = (0..<200).map { sin(Double($0)) }
        let y = x.map { $0 * 0.9 + 0.05 }
        let svg = Plots.scatter(title: "Latent fit", subtitle: "R² = 0.98", xLabel: "true", yLabel: "inferred",
                                x: x, y: y, identityLine: true)
        let p = checkFigure(svg, title: "Latent fit")
        #expect(p.elements.filter { $0 == "circle" }.count == 200)
        #expect(svg.contains("R² = 0.98"))
        let big = Plots.scatter(title: "big", xLabel: "a", yLabel: "b", x: (0..<10_000).map(Double.init),
                                y: (0..<10_000).map { Double($0) * 2 }, identityLine: false, maxPoints: 1000)
        let q = checkFigure(big, title: "big")
        #expect(q.elements.filter { $0 == "circle" }.count == 1000)
        #expect(big.contains("showing 1000 of 10000 points"))
    }

    @Test("Colormaps: viridis ends, diverging centre is near-white, categories cycle with dashes")
    func colors() {
        #expect(Colors.viridis(0) == "#440154")
        #expect(Colors.viridis(1) == "#fde725")
        #expect(Colors.diverging(0.5) == "#f7f7f7")
        #expect(Colors.category(0).dash == nil)
        #expect(Colors.category(8).color == Colors.category(0).color)
        #expect(Colors.category(8).dash != nil)
    }
}
