import Checkpoint
import Data
import Evaluation
import Foundation
import HDF5
import Kernels
import Metrics
import Model
import Report
import RunFiles
import Support

// RunReport: the HTML report of a run directory (and a search's overview page), read from the
// files a run leaves (metrics.jsonl, validation.json, latents.h5, best.h5), drawn with Report. It
// never trains or predicts.

public enum ReportFailure {}
public typealias ReportError = Failure<ReportFailure>

/// One self-contained HTML page about a training run: inline SVG figures, no JavaScript, no
/// network. It reads the run directory (metrics.jsonl, validation.json, latents.h5, best.h5,
/// submission.h5), the data file and, for synthetic data, the ground truth.
public enum RunReport {
    /// Writes the report of `runDirectory` to `out` (default `<run>/report.html`) and returns
    /// its path. `dataPath` and `truthPath` default to what latents.h5 records.
    @discardableResult
    public static func write(runDirectory run: String, dataPath: String? = nil, truthPath: String? = nil, out: String? = nil) throws -> String {
        let page = try Page(run: run, dataPath: dataPath, truthPath: truthPath)
        let path = out ?? RunDirectory(run).report
        try page.html().write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    /// A figure and the line that says what it shows.
    struct Figure {
        var svg: String
        var caption: String
    }

    struct Page {
        let run: String
        let records: [EpochRecord]
        let validation: ValidationScores?
        let config: ModelConfig
        let tensors: NLBTensors?
        let truth: GroundTruth?
        let latents: H5File?
        let dataPath: String?

        init(run: String, dataPath: String?, truthPath: String?) throws {
            self.run = run
            let files = RunDirectory(run)
            guard let text = try? String(contentsOfFile: files.metrics, encoding: .utf8) else {
                throw ReportError("'\(files.metrics)' cannot be read: is '\(run)' the run directory of a train (or a search trial)?")
            }
            records = EpochRecord.records(lines: text.split(separator: "\n"))
            validation = JSON.read(ValidationScores.self, from: files.validation)
            config = (try? CheckpointIO.readConfig(path: files.best)) ?? ModelConfig()
            latents = try? H5File.open(files.latents)
            let data = dataPath ?? (try? latents?.readAttributeString("data"))
            self.dataPath = data
            tensors = data.flatMap { try? NLBTensors.load(path: $0) }
            let truthFile = truthPath ?? (try? latents?.readAttributeString("truth")) ?? data
            if let tensors {
                truth = GroundTruth.load(path: truthFile, trainCount: tensors.trainCount, steps: tensors.bins + tensors.forwardBins,
                                         neurons: tensors.heldIn + tensors.heldOut, heldIn: tensors.heldIn)
            } else {
                truth = nil
            }
        }

        func html() -> String {
            var sections: [(String, [Figure], String?)] = []
            sections.append(("Training", trainingFigures(), nil))
            sections.append(("Validation metrics", [], metricsTable()))
            sections.append(("Latent trajectories", trajectoryFigures(), nil))
            sections.append(("Rates and spikes", rateFigures(), nil))
            sections.append(("The learned coupling", couplingFigures(), nil))
            sections.append(("Inferred and true latents", truthFigures(), nil))
            var body = ""
            for (title, figures, extra) in sections where !figures.isEmpty || extra != nil {
                body += "<section><h2>\(SVG.escape(title))</h2>"
                if let extra { body += extra }
                if !figures.isEmpty {
                    body += "<div class=\"figures\">" + figures.map {
                        "<figure>\($0.svg)<figcaption>\(SVG.escape($0.caption))</figcaption></figure>"
                    }.joined() + "</div>"
                }
                body += "</section>"
            }
            let best = records.filter(\.best).last
            let summary = "\(records.count) epochs" + (best.map { ", best at epoch \($0.epoch + 1)" } ?? "")
                + ", H = \(config.hidden)" + (config.encoder == .bidirectional ? ", bidirectional encoder" : "")
                + ", \(config.dynamics == .secondOrder ? "second-order" : "first-order") dynamics, \(config.decoder.rawValue) decoder"
                + (config.decoderInput == .zv ? " on [z, v]" : "")
                + (config.factors > 0 ? ", readout through \(config.factors) factors" : "") + ", precision \(config.precision.rawValue)"
            return """
            <!DOCTYPE html>
            <html lang="en"><head><meta charset="utf-8"><title>lflow-dist report: \(SVG.escape(run))</title>
            <style>
            body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:24px 32px;color:#222;background:#fafafa;max-width:1180px}
            h1{font-size:20px;margin:0 0 4px} h2{font-size:16px;margin:28px 0 10px;border-bottom:1px solid #ddd;padding-bottom:4px}
            .meta{color:#555;font-size:13px;margin:0 0 6px}
            .figures{display:flex;flex-wrap:wrap;gap:18px}
            figure{margin:0;background:#fff;border:1px solid #e4e4e4;border-radius:4px;padding:8px}
            figcaption{font-size:12px;color:#444;max-width:520px;margin-top:4px}
            table{border-collapse:collapse;font-size:13px;background:#fff} td,th{border:1px solid #ddd;padding:4px 10px;text-align:right}
            th{background:#f0f0f0} td:first-child,th:first-child{text-align:left}
            </style></head><body>
            <h1>Run report</h1>
            <p class="meta">\(SVG.escape(run)) · \(SVG.escape(summary))</p>
            <p class="meta">data: \(SVG.escape(dataPath ?? "unknown")) · written \(SVG.escape(ISO8601DateFormatter().string(from: Date())))</p>
            \(body)
            </body></html>

            """
        }

        // MARK: Training curves

        func trainingFigures() -> [Figure] {
            guard !records.isEmpty else { return [] }
            let epochs = records.map { Double($0.epoch + 1) }
            let marker = records.filter(\.best).last.map { (x: Double($0.epoch + 1), label: "best epoch \($0.epoch + 1)") }
            let losses = Plots.lines(title: "Loss", subtitle: "negative ELBO per entry (reconstruction + β·KL)", xLabel: "epoch",
                                     yLabel: "loss", series: [Series(name: "train", x: epochs, y: records.map(\.trainLoss)),
                                                              Series(name: "validation", x: epochs, y: records.map(\.validLoss), dashed: true)],
                                     logY: records.allSatisfy { $0.trainLoss > 0 && $0.validLoss > 0 }, marker: marker)
            let nll = Plots.lines(title: "Validation held-out NLL", subtitle: "Poisson NLL per entry, held-out neurons and forward bins",
                                  xLabel: "epoch", yLabel: "NLL", series: [Series(name: "validation", x: epochs, y: records.map(\.validHeldOutNLL))],
                                  marker: marker)
            let rates = Plots.lines(title: "Learning rate", xLabel: "epoch", yLabel: "learning rate",
                                    series: [Series(name: "learning rate", x: epochs, y: records.map(\.learningRate))], logY: true,
                                    width: 380, height: 240)
            let beta = Plots.lines(title: "KL weight β", xLabel: "epoch", yLabel: "β",
                                   series: [Series(name: "β", x: epochs, y: records.map(\.klWeight))], width: 380, height: 240)
            var figures = [
                Figure(svg: losses, caption: "Training and validation loss per epoch (log scale); the dashed line marks the epoch whose weights are kept (best.h5)."),
                Figure(svg: nll, caption: "The validation metric that picks the best weights: the Poisson NLL of what the encoder never sees."),
                Figure(svg: rates, caption: "The learning rate (ReduceLROnPlateau on the validation metric)."),
                Figure(svg: beta, caption: "The KL weight β over its warm-up."),
            ]
            if let latent = latentFigure(marker: marker) { figures.append(latent) }
            return figures
        }

        /// The latent probe's record (data with truth, every latentEvery epochs): how much of
        /// the true latents [z, v] explains, and how much z moves within a trial.
        func latentFigure(marker: (x: Double, label: String)?) -> Figure? {
            let probed = records.filter { $0.latentR2 != nil }
            guard !probed.isEmpty else { return nil }
            let x = probed.map { Double($0.epoch + 1) }
            var series = [Series(name: "latent R² [z, v]", x: x, y: probed.map { $0.latentR2! })]
            if probed.allSatisfy({ $0.latentMotion != nil }) {
                series.append(Series(name: "z motion", x: x, y: probed.map { $0.latentMotion! }, dashed: true))
            }
            let svg = Plots.lines(title: "Latent R² over training", subtitle: "validation trials' mean path against the true latents",
                                  xLabel: "epoch", yLabel: "share", series: series, marker: marker)
            return Figure(svg: svg, caption: "R² of a linear map from the mean path [z, v] to the true latents (fitted on training trials, scored on validation trials), and z motion: the share of z's variance that lies within trials (0: z is constant over each trial, its path carries no dynamics).")
        }

        // MARK: Metrics

        func metricsTable() -> String? {
            guard let v = validation else { return "<p class=\"meta\">No validation.json: the run has not finished.</p>" }
            func cell(_ x: Double?) -> String { x.map { String(format: "%.4f", $0) } ?? "–" }
            var rows = [("co-bps", cell(v.coBps), cell(v.baselineCoBps)), ("fp-bps", cell(v.fpBps), "–"), ("vel R²", cell(v.velR2), "–"),
                        ("PSTH R²", cell(v.psthR2), "–")]
            if v.rateR2 != nil { rows.append(("rate R² (ground truth)", cell(v.rateR2), "–")) }
            if v.rateR2HeldOut != nil { rows.append(("rate R², held-out neurons", cell(v.rateR2HeldOut), "–")) }
            for (name, value) in [("latent R², z", v.latentR2Z), ("latent R², v", v.latentR2V), ("latent R², [z, v]", v.latentR2ZV),
                                  ("latent R², h (encoder)", v.latentR2H)] where value != nil {
                rows.append((name, cell(value), "–"))
            }
            return "<table><tr><th>on \(v.trials) validation trials</th><th>model</th><th>smoothed spikes</th></tr>"
                + rows.map { "<tr><td>\(SVG.escape($0.0))</td><td>\($0.1)</td><td>\($0.2)</td></tr>" }.joined() + "</table>"
                + "<p class=\"meta\">co-bps, fp-bps, vel R² and PSTH R² as nlb_tools computes them, with the validation trials as the eval set. Latent R²: a linear map from the inferred latent (fitted on training trials) to the true latent.</p>"
        }

        // MARK: Latent trajectories

        /// The validation trials in latents.h5, and a group (condition, or behaviour direction)
        /// for each, with the groups' names.
        func groups(trials: [Int]) -> (groups: [Int], names: [String], by: String) {
            if let conditions = truth?.trainConditions {
                let ids = trials.map { conditions[$0] }
                let distinct = Array(Set(ids)).sorted()
                return (ids.map { distinct.firstIndex(of: $0)! }, distinct.map { "condition \($0)" }, "condition")
            }
            if let behavior = tensors?.trainBehavior, behavior.channels >= 2 {
                // The direction of the trial's mean behaviour (e.g. hand velocity), in 8 sectors.
                let sectors = trials.map { i -> Int in
                    var x = 0.0, y = 0.0
                    for t in 0..<behavior.bins where !behavior[i, t, 0].isNaN { x += Double(behavior[i, t, 0]); y += Double(behavior[i, t, 1]) }
                    let angle = (atan2(y, x) * 180 / .pi + 360).truncatingRemainder(dividingBy: 360)
                    return Int((angle + 22.5) / 45) % 8
                }
                return (sectors, (0..<8).map { "\($0 * 45)°" }, "direction of the mean behaviour")
            }
            return (trials.map { _ in 0 }, ["trials"], "")
        }

        func trajectoryFigures() -> [Figure] {
            guard let latents, let trials = try? latents.readDoubles("valid/trials").values.map({ Int($0) }) else { return [] }
            var figures: [Figure] = []
            let (group, names, by) = groups(trials: trials)
            for (part, label) in [("z", "position z"), ("v", "velocity v")] {
                guard let (shape, values) = try? latents.readDoubles("valid/\(part)"), shape.count == 3 else { continue }
                let (n, steps, h) = (shape[0], shape[1], shape[2])
                let (axes, mean) = PCA.fit(rows: values, features: h, components: 2)
                guard axes.count == 2 else { continue }
                // At most 8 trials per group keeps the figure legible.
                var shown: [Int] = [], perGroup: [Int: Int] = [:]
                for j in 0..<n where perGroup[group[j], default: 0] < 8 { shown.append(j); perGroup[group[j], default: 0] += 1 }
                let paths = shown.map { j in
                    (0..<steps).map { t -> (x: Double, y: Double) in
                        let row = values[((j * steps + t) * h)..<((j * steps + t + 1) * h)]
                        return (PCA.project(row, axis: axes[0], mean: mean), PCA.project(row, axis: axes[1], mean: mean))
                    }
                }
                let svg = Plots.trajectories(title: "Latent trajectories, \(label)",
                                             subtitle: "first two principal components, \(shown.count) validation trials" + (by.isEmpty ? "" : ", coloured by \(by)"),
                                             xLabel: "PC 1", yLabel: "PC 2", paths: paths, groups: shown.map { group[$0] }, groupNames: names)
                figures.append(Figure(svg: svg, caption: "The mean path of \(label) over the trial (a dot at its start), projected on its first two principal components\(by.isEmpty ? "" : "; trials of one \(by.split(separator: " ").first ?? "") share a colour")."))
                if part == "z" {
                    // Time on the x axis: a z that the data moves bends; a z fixed at z_0 is flat.
                    let overTime = paths.map { path in path.enumerated().map { (x: Double($0.offset), y: $0.element.x) } }
                    let svg = Plots.trajectories(title: "Position z over the trial", subtitle: "first principal component against time, \(shown.count) validation trials",
                                                 xLabel: "bin", yLabel: "PC 1 of z", paths: overTime, groups: shown.map { group[$0] }, groupNames: names)
                    figures.append(Figure(svg: svg, caption: "The first principal component of z's mean path, bin by bin (a dot at the first bin). Flat lines: z holds its initial value and the dynamics do nothing the decoder uses."))
                }
            }
            return figures
        }

        // MARK: Rates and spikes

        func rateFigures() -> [Figure] {
            guard let tensors, let latents, let trials = try? latents.readDoubles("valid/trials").values.map({ Int($0) }), !trials.isEmpty,
                  let submission = try? H5File.open(RunDirectory(run).submission), let groupName = try? submission.children(groups: true).first,
                  let ratesIn = try? submission.readDoubles("\(groupName)/train_rates_heldin").values,
                  let ratesOut = try? submission.readDoubles("\(groupName)/train_rates_heldout").values else { return [] }
            let T = tensors.bins, nIn = tensors.heldIn, nHo = tensors.heldOut, steps = T + tensors.forwardBins, n = nIn + nHo
            // The two most active held-in and held-out neurons of the validation trials.
            func activity(_ t: Tensor3, _ c: Int) -> Double {
                trials.reduce(0.0) { s, i in (0..<T).reduce(s) { $0 + (t[i, $1, c].isNaN ? 0 : Double(t[i, $1, c])) } }
            }
            let heldIn = (0..<nIn).sorted { activity(tensors.trainHeldIn, $0) > activity(tensors.trainHeldIn, $1) }.prefix(2)
            let heldOut = (0..<nHo).sorted { activity(tensors.trainHeldOut, $0) > activity(tensors.trainHeldOut, $1) }.prefix(2)
            var figures: [Figure] = []
            for trial in trials.prefix(2) {
                var spikes: [[Double]] = [], rates: [[Double]] = [], truthRows: [[Double]] = [], labels: [String] = []
                for c in heldIn {
                    spikes.append((0..<T).map { Double(tensors.trainHeldIn[trial, $0, c]) })
                    rates.append((0..<T).map { ratesIn[(trial * T + $0) * nIn + c] })
                    labels.append("held-in \(c)")
                    if let r = truth?.trainRates { truthRows.append((0..<T).map { r[(trial * steps + $0) * n + c] }) }
                }
                for c in heldOut {
                    spikes.append((0..<T).map { Double(tensors.trainHeldOut[trial, $0, c]) })
                    rates.append((0..<T).map { ratesOut[(trial * T + $0) * nHo + c] })
                    labels.append("held-out \(c)")
                    if let r = truth?.trainRates { truthRows.append((0..<T).map { r[(trial * steps + $0) * n + nIn + c] }) }
                }
                let svg = Plots.raster(title: "Validation trial \(trial)", subtitle: "spike counts, inferred rates" + (truth?.trainRates == nil ? "" : " and true rates"),
                                       spikes: spikes, rates: rates, truth: truth?.trainRates == nil ? nil : truthRows,
                                       binMs: 20, neuronLabels: labels)
                figures.append(Figure(svg: svg, caption: "Spike counts per bin (bars) and the submitted rates (line) of the two most active held-in and held-out neurons\(truth?.trainRates == nil ? "" : "; dashed: the true rates"). The held-out neurons are predicted from the held-in ones alone."))
            }
            return figures
        }

        // MARK: Coupling

        func couplingFigures() -> [Figure] {
            guard let tensors, let best = try? H5File.open(RunDirectory(run).best),
                  let (shape, kernel) = try? best.readDoubles("model/potential.conv_z"), shape.count == 3 else { return [] }
            let g = shape[0], k = shape[2]
            var figures = [Figure(svg: Plots.heatmap(title: "Potential kernel W", subtitle: "\(g)×\(g) groups × \(k) taps (taps side by side)",
                                                     values: kernel, rows: g, columns: g * k, rowLabel: "output group", columnLabel: "input group, tap",
                                                     valueLabel: "weight", diverging: true, width: 420, height: 300),
                                  caption: "The coupled-oscillator kernel: row i, column j·K + tap is W[i, j, tap] (before its normalisation).")]
            let layout = ParameterLayout(config: config, dims: DataDims(tensors))
            let params = ParameterSet<Float>(layout: layout)
            if (try? CheckpointIO.read(path: RunDirectory(run).best, into: params.values, layout: layout)) != nil {
                let potential = CoupledOscillatorPotential<Float>(config: config, layout: layout)
                potential.build(params: params)
                let h = config.hidden
                let matrix = (0..<(h * h)).map { Double(potential.forceMatrix[$0]) }
                figures.append(Figure(svg: Plots.heatmap(title: "Force matrix A", subtitle: "f(z) = A z, H = \(h)", values: matrix, rows: h, columns: h,
                                                         rowLabel: "latent i", columnLabel: "latent j", valueLabel: "coupling", diverging: true),
                                      caption: "The linear force of the learned potential: how each latent pulls on the others (κ·A(Ŵ), symmetric)."))
            }
            return figures
        }

        // MARK: Truth

        func truthFigures() -> [Figure] {
            guard let latents, let trueLatents = truth?.trainLatents, let k = truth.map(\.latentDimensions), k > 0,
                  let trials = try? latents.readDoubles("valid/trials").values.map({ Int($0) }),
                  let (shape, mapped) = try? latents.readDoubles("valid/z_mapped"), shape.count == 3, shape[2] == k else { return [] }
            let steps = shape[1]
            var figures: [Figure] = []
            for d in 0..<min(k, 3) {
                var x: [Double] = [], y: [Double] = []
                for (j, trial) in trials.enumerated() {
                    for t in 0..<steps {
                        x.append(trueLatents[(trial * steps + t) * k + d])
                        y.append(mapped[(j * steps + t) * k + d])
                    }
                }
                let r2 = NLBMetrics.r2Score(yTrue: x, yPred: y, outputs: 1)
                figures.append(Figure(svg: Plots.scatter(title: "True latent \(d + 1)", subtitle: String(format: "R² = %.3f on validation trials", r2),
                                                         xLabel: "true", yLabel: "linear map of z", x: x, y: y),
                                      caption: "Each point is one bin of one validation trial: the true latent against a linear map of the inferred z fitted on training trials."))
            }
            return figures
        }
    }

    /// The page of a search, whatever its strategy: its figures (over a grid the heatmap; the
    /// metric over epochs; PBT's explored values over generations) and its results table, the
    /// first row the header; a row whose link is given links its trial's own report.
    @discardableResult
    public static func writeSearchPage(runDirectory run: String, title: String, figures: [String], rows: [[String]],
                                       links: [String?]) throws -> String {
        let body = rows.enumerated().map { i, cells -> String in
            let tag = i == 0 ? "th" : "td"
            let linked = cells.enumerated().map { j, cell -> String in
                let text = SVG.escape(cell)
                guard j == 0, i < links.count, let link = links[i] else { return text }
                return "<a href=\"\(SVG.escape(link))\">\(text)</a>"
            }
            return "<tr>" + linked.map { "<\(tag)>\($0)</\(tag)>" }.joined() + "</tr>"
        }.joined()
        let html = """
        <!DOCTYPE html>
        <html lang="en"><head><meta charset="utf-8"><title>lflow-dist \(SVG.escape(title))</title>
        <style>body{font-family:system-ui,sans-serif;margin:24px 32px;color:#222;background:#fafafa}
        table{border-collapse:collapse;font-size:13px;background:#fff}td,th{border:1px solid #ddd;padding:3px 8px;text-align:right}
        th{background:#f0f0f0} svg{background:#fff;border:1px solid #e4e4e4}</style></head><body>
        <h1 style="font-size:20px">\(SVG.escape(title))</h1>
        \(Plots.grid(figures, columns: 2))
        <h2 style="font-size:16px">Results</h2>
        <table>\(body)</table>
        </body></html>

        """
        let path = RunDirectory(run).report
        try html.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }
}
