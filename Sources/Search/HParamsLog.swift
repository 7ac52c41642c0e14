import Foundation
import RunFiles
import TensorBoard

/// A search as TensorBoard's HParams dashboard reads it: the experiment (every searched field
/// and the metrics) in an event file at the search's root, and in each trial's run directory a
/// session (its values at the start, its status at the end) beside the trainer's own scalars,
/// whose last values the dashboard tabulates.
enum HParamsLog {
    /// The metrics a session's table shows: tags the trainer logs.
    static let metrics: [(tag: String, description: String)] = [
        ("final/co_bps", "validation co-bps of the best weights"),
        ("valid/heldout_nll", "validation held-out Poisson NLL at the last epoch"),
        ("final/latent_r2_zv", "R² of [z, v] against the true latents (synthetic data)"),
    ]

    /// World rank 0, once per session of the search.
    static func experiment(runDirectory: String, fields: [(name: String, values: [String])]) {
        guard let writer = try? EventWriter(directory: runDirectory) else { return }
        writer.hparamsExperiment(hparams: fields.map { field in (field.name, field.values.map(value)) }, metrics: metrics)
    }

    static func value(_ text: String) -> HParamValue { Double(text).map(HParamValue.number) ?? .string(text) }

    /// A trial's group rank 0, when the trial starts (`values`) and when it ends (`success`).
    static func session(directory: String, group: String, values: [SearchParameter]) {
        guard let writer = try? EventWriter(directory: directory) else { return }
        writer.hparamsSessionStart(values.map { ($0.field, value($0.value)) }, group: group)
    }

    static func sessionEnd(directory: String, success: Bool) {
        guard let writer = try? EventWriter(directory: directory) else { return }
        writer.hparamsSessionEnd(success: success)
    }
}
