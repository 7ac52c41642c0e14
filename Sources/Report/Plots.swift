import Foundation

// Report: self-contained HTML and SVG figures (no JavaScript, no network). It owns the palette
// (Colors), ticks and scales (Ticks), the axes, legends and layout pieces (Axes) and one file
// per chart kind (LineChart, Heatmap, Trajectories, Raster, Scatter); it knows nothing of
// models, runs or searches, which hand it numbers and labels.

/// The chart kinds, as functions from numbers and labels to an SVG document.
public enum Plots {
    // Typography and ink.
    static let tickSize = 11.0
    static let labelSize = 12.0
    static let titleSize = 12.5
    static let ink = "#222"
    static let axisInk = "#333"
    static let gridInk = "#ebebeb"
    static let pad = 6.0
    static let tickLength = 4.0

    // MARK: - Layout

    /// Figures side by side in an HTML CSS grid of `columns` columns.
    public static func grid(_ svgs: [String], columns: Int) -> String {
        var s = "<div class=\"figure-grid\" style=\"display:grid;grid-template-columns:repeat(\(max(1, columns)),max-content);gap:18px 24px;align-items:start\">"
        for svg in svgs { s += "<div>" + svg + "</div>" }
        return s + "</div>"
    }
}
