import ArgumentParser
import Evaluation
import Foundation
import Support
import Training

struct Evaluate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Score a submission against evaluation targets with the native NLB metrics.",
        discussion: """
        Computes what nlb_tools.evaluation.evaluate computes, for every group in both files: \
        co-bps, vel R2 (ridge, alpha grid logspace(-4, 0, 9), 5-fold CV; tp corr for dmfc_rsg), \
        psth R2 (when the targets have psth and eval_cond_idx, with eval_jitter for dmfc_rsg) and \
        fp-bps. It reads the files nlb_tools writes (variable-length *_cond_idx, boolean decode \
        masks). When each file holds one group and only the names differ, those two are scored \
        with a note. Prints a table and, with --json, writes JSON.

        Example:
          lflow-dist evaluate --submission Checkpoints/lorenz/submission.h5 --targets Checkpoints/lorenz-targets.h5
        """)

    @Option(help: ArgumentHelp("Submission file (as predict writes).", valueName: "sub.h5"))
    var submission: String

    @Option(help: ArgumentHelp("Evaluation target file (NLB eval target layout; synth writes one beside its data).", valueName: "targets.h5"))
    var targets: String

    @Option(help: ArgumentHelp("Also write the scores as JSON here.", valueName: "file.json"))
    var json: String?

    func run() throws {
        let results = try Evaluator.evaluate(submission: submission, targets: targets) { print($0) }
        for (group, s) in results.sorted(by: { $0.key < $1.key }) {
            print(group)
            for (name, value) in [("co-bps", s.coBps), ("fp-bps", s.fpBps), ("vel R2", s.velR2), ("tp corr", s.tpCorr), ("psth R2", s.psthR2)] {
                if let value { print("  " + name.padding(toLength: 8, withPad: " ", startingAt: 0) + String(format: " %8.4f", value)) }
            }
        }
        if let json {
            try JSON.write(results, to: json)
        }
    }
}
