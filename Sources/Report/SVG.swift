import Foundation

/// Small helpers for writing SVG by hand: escaping, compact numbers, rough text metrics.
public enum SVG {
    /// The font stack every figure uses (the system sans-serif).
    public static let fontFamily = "system-ui, -apple-system, 'Segoe UI', Helvetica, Arial, sans-serif"

    /// Escapes text for use in XML character data and in double-quoted attribute values.
    public static func escape(_ s: String) -> String {
        var out = ""
        out.reserveCapacity(s.utf8.count)
        for ch in s.unicodeScalars {
            switch ch {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&apos;"
            default:
                // Control characters other than tab/newline are not allowed in XML 1.0.
                if ch.value < 0x20 && ch != "\t" && ch != "\n" && ch != "\r" { out += " " }
                else if ch.value == 0xFFFE || ch.value == 0xFFFF { out += " " }
                else { out.unicodeScalars.append(ch) }
            }
        }
        return out
    }

    private static let powers: [Double] = [1, 10, 100, 1_000, 10_000, 100_000, 1_000_000]

    /// `v` with at most `decimals` decimals (0...6), trailing zeros dropped, "-0" as "0".
    /// Non-finite values come out as "0" so that no coordinate is ever "nan" or "inf".
    public static func num(_ v: Double, _ decimals: Int = 1) -> String {
        guard v.isFinite else { return "0" }
        let d = max(0, min(decimals, 6))
        let p = powers[d]
        var r = (v * p).rounded()
        if r == 0 { return "0" }
        if abs(r) >= 9e15 { return String(format: "%.0f", v) }
        let negative = r < 0
        r = abs(r)
        let i = Int(r)
        let ip = Int(p)
        var s = negative ? "-" : ""
        s += String(i / ip)
        var frac = i % ip
        if frac != 0 {
            var digits = d
            while frac % 10 == 0 { frac /= 10; digits -= 1 }
            let f = String(frac)
            s += "." + String(repeating: "0", count: digits - f.count) + f
        }
        return s
    }

    /// Approximate advance width of `s` at font size `size`, calibrated on DejaVu Sans (the
    /// widest common system sans-serif), so that layouts computed with it are conservative.
    public static func textWidth(_ s: String, size: Double) -> Double {
        var w = 0.0
        for ch in s.unicodeScalars {
            switch ch {
            case "0"..."9": w += 0.637
            case " ", ".", ",", ":", ";", "'", "|", "!", "i", "j", "l", "I": w += 0.32
            case "f", "t", "r", "(", ")", "[", "]", "-", "/": w += 0.42
            case "m", "w", "M", "W", "%": w += 0.95
            case "×", "−", "+", "=", "<", ">": w += 0.84
            case "A"..."Z": w += 0.72
            case "a"..."z": w += 0.6
            case "\u{2070}"..."\u{209F}", "\u{00B2}", "\u{00B3}", "\u{00B9}": w += 0.42
            default: w += 0.7
            }
        }
        return w * size
    }

    /// Height of a text line's box (ascent + descent) as browsers measure it.
    public static func lineBox(_ size: Double) -> Double { 1.17 * size }
    /// Baseline offset below the top of a text line's box.
    public static func ascent(_ size: Double) -> Double { 0.93 * size }
}

/// Accumulates SVG elements; `document` wraps them in a root `<svg class="figure">`.
public struct SVGWriter {
    public private(set) var body: String = ""
    public let width: Double
    public let height: Double

    public init(width: Double, height: Double) {
        self.width = width
        self.height = height
        body.reserveCapacity(16_384)
    }

    public mutating func raw(_ s: String) { body += s }

    public mutating func line(_ x1: Double, _ y1: Double, _ x2: Double, _ y2: Double,
                              stroke: String = "#000", width: Double = 1, dash: String? = nil,
                              opacity: Double = 1) {
        body += "<line x1=\"\(SVG.num(x1))\" y1=\"\(SVG.num(y1))\" x2=\"\(SVG.num(x2))\" y2=\"\(SVG.num(y2))\" stroke=\"\(stroke)\""
        if width != 1 { body += " stroke-width=\"\(SVG.num(width, 2))\"" }
        if let dash { body += " stroke-dasharray=\"\(dash)\"" }
        if opacity < 1 { body += " stroke-opacity=\"\(SVG.num(opacity, 2))\"" }
        body += "/>"
    }

    public mutating func rect(_ x: Double, _ y: Double, _ w: Double, _ h: Double, fill: String,
                              stroke: String? = nil, strokeWidth: Double = 1, opacity: Double = 1) {
        body += "<rect x=\"\(SVG.num(x))\" y=\"\(SVG.num(y))\" width=\"\(SVG.num(max(0, w)))\" height=\"\(SVG.num(max(0, h)))\" fill=\"\(fill)\""
        if let stroke {
            body += " stroke=\"\(stroke)\""
            if strokeWidth != 1 { body += " stroke-width=\"\(SVG.num(strokeWidth, 2))\"" }
        }
        if opacity < 1 { body += " fill-opacity=\"\(SVG.num(opacity, 2))\"" }
        body += "/>"
    }

    public mutating func circle(_ cx: Double, _ cy: Double, _ r: Double, fill: String,
                                stroke: String? = nil, strokeWidth: Double = 1, opacity: Double = 1) {
        body += "<circle cx=\"\(SVG.num(cx))\" cy=\"\(SVG.num(cy))\" r=\"\(SVG.num(r))\" fill=\"\(fill)\""
        if let stroke { body += " stroke=\"\(stroke)\" stroke-width=\"\(SVG.num(strokeWidth, 2))\"" }
        if opacity < 1 { body += " fill-opacity=\"\(SVG.num(opacity, 2))\"" }
        body += "/>"
    }

    /// A stroked, unfilled path through `points`; non-finite points break the line.
    public mutating func polyline(_ points: [(Double, Double)], stroke: String, width: Double = 1.5,
                                  dash: String? = nil, opacity: Double = 1) {
        var d = ""
        var pen = false
        for (x, y) in points {
            guard x.isFinite, y.isFinite else { pen = false; continue }
            d += (pen ? "L" : "M") + SVG.num(x) + " " + SVG.num(y)
            pen = true
        }
        guard !d.isEmpty else { return }
        path(d, stroke: stroke, width: width, dash: dash, opacity: opacity)
    }

    public mutating func path(_ d: String, fill: String = "none", stroke: String? = nil, width: Double = 1,
                              dash: String? = nil, opacity: Double = 1, extra: String = "") {
        body += "<path d=\"\(d)\" fill=\"\(fill)\""
        if let stroke {
            body += " stroke=\"\(stroke)\""
            if width != 1 { body += " stroke-width=\"\(SVG.num(width, 2))\"" }
            body += " stroke-linejoin=\"round\" stroke-linecap=\"round\""
            if let dash { body += " stroke-dasharray=\"\(dash)\"" }
            if opacity < 1 { body += " stroke-opacity=\"\(SVG.num(opacity, 2))\"" }
        }
        if !extra.isEmpty { body += " " + extra }
        body += "/>"
    }

    public enum Anchor: String { case start, middle, end }

    /// A `<text>` element. `rotate` turns it -90° about (x, y) (for y-axis labels); `halo`
    /// paints a white outline under the glyphs so the label stays legible over data.
    public mutating func text(_ s: String, x: Double, y: Double, cls: String, size: Double = 11,
                              anchor: Anchor = .start, weight: String? = nil, fill: String = "#222",
                              rotate: Bool = false, halo: Bool = false) {
        body += "<text class=\"\(cls)\" x=\"\(SVG.num(x))\" y=\"\(SVG.num(y))\""
        if anchor != .start { body += " text-anchor=\"\(anchor.rawValue)\"" }
        if size != 11 { body += " font-size=\"\(SVG.num(size))\"" }
        if let weight { body += " font-weight=\"\(weight)\"" }
        if fill != "#222" { body += " fill=\"\(fill)\"" }
        if rotate { body += " transform=\"rotate(-90 \(SVG.num(x)) \(SVG.num(y)))\"" }
        if halo { body += " stroke=\"#fff\" stroke-width=\"3\" stroke-linejoin=\"round\" paint-order=\"stroke\"" }
        body += ">\(SVG.escape(s))</text>"
    }

    public mutating func open(_ tag: String, _ attributes: String = "") {
        body += attributes.isEmpty ? "<\(tag)>" : "<\(tag) \(attributes)>"
    }

    public mutating func close(_ tag: String) { body += "</\(tag)>" }

    /// The complete `<svg>` element.
    public func document(title: String, description: String? = nil) -> String {
        let w = SVG.num(width, 0), h = SVG.num(height, 0)
        var s = "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"figure\" role=\"img\" width=\"\(w)\" height=\"\(h)\" viewBox=\"0 0 \(w) \(h)\" font-family=\"\(SVG.escape(SVG.fontFamily))\" font-size=\"11\" fill=\"#222\">"
        s += "<title>\(SVG.escape(title))</title>"
        if let description, !description.isEmpty { s += "<desc>\(SVG.escape(description))</desc>" }
        s += "<rect width=\"\(w)\" height=\"\(h)\" fill=\"#fff\"/>"
        s += body
        s += "</svg>"
        return s
    }
}
