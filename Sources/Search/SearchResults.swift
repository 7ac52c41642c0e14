import Foundation
import Model
import Recipes
import RunFiles
import RunReport
import Support

/// A search's outputs, rewritten by world rank 0 whenever a job finishes, for every strategy
/// alike: results.csv and results.md (the strategy's table), best.yaml (and the answer's other
/// files), heatmap.svg (over a grid), and report.html (RunReport's search page: the heatmap,
/// the strategy's figures and the table, linking each trial's own report).
struct SearchResults {
    let search: Search
    let strategy: SearchStrategy
    let results: [JobResult]

    func write() throws {
        let dir = search.run.path
        let table = strategy.table(results, base: search.base)
        try write(csv(table), to: dir + "/results.csv")
        try write(markdown(table), to: dir + "/results.md")
        let answer = strategy.answer(results, search: search)
        let heatmap = strategy.heatmap(results, answer: answer)
        if let heatmap { try write(heatmap, to: dir + "/heatmap.svg") }
        if let answer {
            let header = answer.header.map { "# " + $0 }.joined(separator: "\n") + "\n\n"
            try write(header + answer.config.yaml(), to: dir + "/best.yaml")
            for (name, text) in answer.files { try write(text, to: dir + "/" + name) }
        }
        let rows = [table.markdownHeader] + table.markdownRows
        let links = [nil] + table.links.map { link -> String? in
            guard let link, FileManager.default.fileExists(atPath: RunDirectory(dir + "/" + link).report) else { return nil }
            return link + "/report.html"
        }
        try RunReport.writeSearchPage(runDirectory: dir, title: "\(strategy.name.uppercased()) search: \(dir)",
                                      figures: (heatmap.map { [$0] } ?? []) + strategy.figures(results, base: search.base),
                                      rows: rows, links: links)
    }

    func write(_ text: String, to path: String) throws {
        do { try Data(text.utf8).write(to: URL(fileURLWithPath: path), options: .atomic) } catch {
            throw SearchError("cannot write '\(path)': \(error.localizedDescription). Free some space or fix the permissions; the jobs' own files are unaffected.")
        }
    }

    /// Full precision; wall time last, the one column that differs between two runs of the
    /// same search.
    func csv(_ table: ResultsTable) -> String {
        ([table.csvHeader] + table.csvRows).map { $0.joined(separator: ",") }.joined(separator: "\n") + "\n"
    }

    func markdown(_ table: ResultsTable) -> String {
        let intro = table.intro + " Data `\(search.dataPath)`; \(search.ranksPerTrial) rank\(search.ranksPerTrial == 1 ? "" : "s") per job."
        var lines = ["# \(table.title)", "", intro, "",
                     "| " + table.markdownHeader.joined(separator: " | ") + " |",
                     "|" + String(repeating: "---|", count: table.markdownHeader.count)]
        lines += table.markdownRows.map { "| " + $0.joined(separator: " | ") + " |" }
        return lines.joined(separator: "\n") + "\n"
    }
}
