/// Formats seconds for people, the one duration format of every message and table:
/// "4.2s" (tenths under ten seconds, "4s" when whole), "12s", "3m07s", "1h02m"; "?" when not
/// finite.
public func formatDuration(_ seconds: Double) -> String {
    guard seconds.isFinite else { return "?" }
    let tenths = Int((max(seconds, 0) * 10).rounded())
    if tenths < 100 { return tenths % 10 == 0 ? "\(tenths / 10)s" : "\(tenths / 10).\(tenths % 10)s" }
    let s = Int(seconds.rounded())
    if s >= 3600 { return "\(s / 3600)h\(twoDigits((s % 3600) / 60))m" }
    if s >= 60 { return "\(s / 60)m\(twoDigits(s % 60))s" }
    return "\(s)s"
}

private func twoDigits(_ v: Int) -> String { v < 10 ? "0\(v)" : "\(v)" }
