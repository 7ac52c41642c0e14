import Foundation

// MARK: - Colours

/// Colour-blind-safe palettes and colormaps.
public enum Colors {
    /// Okabe–Ito, reordered so that the strongest contrasts on white come first (yellow last).
    public static let okabeIto = ["#0072B2", "#D55E00", "#009E73", "#CC79A7",
                                  "#E69F00", "#56B4E9", "#000000", "#F0E442"]

    /// Colour and dash pattern of category `i`: the eight Okabe–Ito colours, then the same
    /// colours again with dashes (then dots) so that up to 24 categories stay distinct.
    public static func category(_ i: Int) -> (color: String, dash: String?) {
        let i = max(0, i)
        let color = okabeIto[i % okabeIto.count]
        switch (i / okabeIto.count) % 3 {
        case 0: return (color, nil)
        case 1: return (color, "5 3")
        default: return (color, "1.5 2.5")
        }
    }

    /// Viridis anchors (matplotlib's colormap at 0, 1/8, …, 1).
    static let viridisAnchors: [(Double, Double, Double)] = [
        (68, 1, 84), (71, 45, 123), (59, 82, 139), (44, 114, 142), (33, 145, 140),
        (40, 174, 128), (94, 201, 98), (173, 220, 48), (253, 231, 37),
    ]

    /// ColorBrewer RdBu reversed: blue for negative, near-white at the centre, red for positive.
    static let divergingAnchors: [(Double, Double, Double)] = [
        (5, 48, 97), (33, 102, 172), (67, 147, 195), (146, 197, 222), (209, 229, 240),
        (247, 247, 247),
        (253, 219, 199), (244, 165, 130), (214, 96, 77), (178, 24, 43), (103, 0, 31),
    ]

    /// Perceptually uniform sequential map (viridis), `t` in [0, 1].
    public static func viridis(_ t: Double) -> String { interpolate(viridisAnchors, t) }

    /// Diverging map, `t` in [0, 1] with 0.5 the neutral centre.
    public static func diverging(_ t: Double) -> String { interpolate(divergingAnchors, t) }

    static func interpolate(_ anchors: [(Double, Double, Double)], _ t: Double) -> String {
        let t = t.isFinite ? min(1, max(0, t)) : 0.5
        let pos = t * Double(anchors.count - 1)
        let i = min(anchors.count - 2, Int(pos))
        let f = pos - Double(i)
        let a = anchors[i], b = anchors[i + 1]
        return hex(a.0 + (b.0 - a.0) * f, a.1 + (b.1 - a.1) * f, a.2 + (b.2 - a.2) * f)
    }

    static func hex(_ r: Double, _ g: Double, _ b: Double) -> String {
        let digits = Array("0123456789abcdef")
        var s = "#"
        for c in [r, g, b] {
            let v = Int(min(255, max(0, c.rounded())))
            s.append(digits[v / 16])
            s.append(digits[v % 16])
        }
        return s
    }
}
