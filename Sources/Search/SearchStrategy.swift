import Foundation
import Model
import RunFiles
import Training

/// What ranks a search's trials (best.yaml, the ★, the heatmap's colours).
public enum SearchMetric: String, CaseIterable, Sendable {
    /// Validation co-bps (the NLB ranking metric); higher is better.
    case coBps
    /// R² of a linear map from the validation trials' mean-path [z, v] to the true latents
    /// (synthetic data only); higher is better.
    case latentR2
    /// The best value of the validation metric the trainer selects on (`validationMetric`:
    /// the held-out Poisson NLL by default); lower is better.
    case validation

    public var label: String {
        switch self { case .coBps: return "validation co-bps"; case .latentR2: return "latent R² [z, v]"; case .validation: return "best validation metric" }
    }
    public var higherIsBetter: Bool { self != .validation }
    public func value(_ r: JobResult) -> Double? {
        switch self { case .coBps: return r.coBps; case .latentR2: return r.latentR2; case .validation: return r.bestValidMetric }
    }
}

/// A search's answer: its best result and what `best.yaml` (and any other file) says of it.
struct SearchAnswer {
    let result: JobResult
    /// The config best.yaml holds, and the comment lines above it.
    let config: Config
    let header: [String]
    /// The summary's line about it.
    let line: String
    /// Further files of the answer, by name (PBT: best-schedule.yaml).
    var files: [String: String] = [:]
}

/// A results table: a header and rows of cells, for results.csv (full precision) and
/// results.md (for reading), and the lines above the markdown table.
struct ResultsTable {
    var csvHeader: [String]
    var csvRows: [[String]]
    var title: String
    var intro: String
    var markdownHeader: [String]
    var markdownRows: [[String]]
    /// The run directory (relative to the search's) of each markdown row's trial, for links.
    var links: [String?]
}

/// What a search does, apart from running jobs on groups of ranks (the engine's, `Search`):
/// which jobs to run and with what config and starting point, what a result is worth, which is
/// the answer, what the table shows, and what to do after a job and at the end. Grid, ASHA and
/// PBT conform; the engine knows none of them.
protocol SearchStrategy {
    /// "grid", "asha" or "pbt".
    var name: String { get }
    /// The strategy and every setting that changes what it runs: a restarted search must have
    /// the same (search.json).
    var identity: String { get }
    /// Decides the jobs (`VirtualSchedule`).
    var policy: SchedulePolicy { get }
    /// The search's first line.
    func describe(groups: Int, ranksPerTrial: Int) -> String
    /// The run directory of a job.
    func directory(_ job: SearchJob, in run: RunDirectory) -> RunDirectory
    /// The config a job trains with.
    func config(_ job: SearchJob) throws -> Config
    /// Where a job starts when its own directory has no checkpoint (nil: afresh).
    func warmStart(_ job: SearchJob, in run: RunDirectory) throws -> WarmStart?
    /// Whether a job ends as `train` does (predictions, metrics, submission, report).
    func evaluates(_ job: SearchJob) -> Bool
    /// The value a finished job is ranked on.
    func metric(_ result: JobResult) -> Double?
    /// A job in a progress line.
    func label(_ job: SearchJob) -> String
    /// A finished job's result in a progress line.
    func outcome(_ result: JobResult) -> String
    /// TensorBoard HParams: the session a job starts (nil: it continues its trial's), and the
    /// experiment's fields.
    func session(_ job: SearchJob) -> (group: String, values: [SearchParameter])?
    var hparamsFields: [(name: String, values: [String])] { get }
    /// The table of the results so far.
    func table(_ results: [JobResult], base: Config) -> ResultsTable
    /// The answer among the results so far.
    func answer(_ results: [JobResult], search: Search) -> SearchAnswer?
    /// A heatmap of the results over the grid (nil: none).
    func heatmap(_ results: [JobResult], answer: SearchAnswer?) -> String?
    /// The report's figures: the metric over epochs and more (SVG).
    func figures(_ results: [JobResult], base: Config) -> [String]
    /// After a job's result is written (on its group's rank 0).
    func cleanUp(after job: SearchJob, search: Search)
    /// After every job, on every rank (PBT scores its best member here).
    func finish(search: Search) throws
    /// The summary's lines besides the answer's.
    func summary(_ results: [JobResult], base: Config) -> [String]
    /// Why the finished search has no answer worth the name, as an error for every rank (nil: it has).
    func failure(_ results: [JobResult], search: Search) -> String?
}

extension SearchStrategy {
    func warmStart(_ job: SearchJob, in run: RunDirectory) throws -> WarmStart? { nil }
    func evaluates(_ job: SearchJob) -> Bool { true }
    func heatmap(_ results: [JobResult], answer: SearchAnswer?) -> String? { nil }
    func cleanUp(after job: SearchJob, search: Search) {}
    func finish(search: Search) throws {}
    func summary(_ results: [JobResult], base: Config) -> [String] { [] }
    func failure(_ results: [JobResult], search: Search) -> String? { nil }
}

/// Table cells shared by the strategies.
enum Cell {
    /// Full precision (shortest round-trip text), so equal tables mean equal results.
    static func number(_ v: Double?) -> String { v.map { "\($0)" } ?? "" }
    static func number(_ v: Int?) -> String { v.map { "\($0)" } ?? "" }
    static func fixed(_ v: Double?, _ digits: Int = 4) -> String { v.map { String(format: "%.\(digits)f", $0) } ?? "–" }
    static func quote(_ s: String) -> String {
        s.contains(where: { ",\"\n".contains($0) }) ? "\"" + s.replacingOccurrences(of: "\"", with: "\"\"") + "\"" : s
    }
    static func status(_ r: JobResult) -> String {
        r.status == .failed ? "failed: " + (r.reason ?? "").replacingOccurrences(of: "|", with: "\\|").replacingOccurrences(of: "\n", with: " ") : r.status.rawValue
    }
    static func wall(_ r: JobResult?) -> String { r?.wallSeconds.map { String(format: "%.1f", $0) } ?? "" }
}
