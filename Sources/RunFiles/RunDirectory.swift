import Foundation
import Support

// RunFiles: the files of a run directory, named in one place, and the two records that every
// reader of a run decodes: a line of metrics.jsonl (EpochRecord) and validation.json
// (ValidationScores). It knows names and formats, not how the files are made.

/// A run directory and the names of its files. Training writes them, `predict`, the report, a
/// search and an ensemble read them; none of them spells a name itself.
public struct RunDirectory: Hashable, Sendable, CustomStringConvertible {
    public let path: String
    public init(_ path: String) { self.path = path }
    public var description: String { path }

    func file(_ name: String) -> String { path + "/" + name }

    /// The best weights (those of the best validation metric; the weight average's when on).
    public var best: String { file("best.h5") }
    /// The weights after the last step.
    public var last: String { file("last.h5") }
    /// The resolved config the run trained with.
    public var config: String { file("config.yaml") }
    /// One `EpochRecord` per line.
    public var metrics: String { file("metrics.jsonl") }
    /// `ValidationScores` of the best weights: written last, so its presence means the run is done.
    public var validation: String { file("validation.json") }
    /// The NLB submission (train and eval rates).
    public var submission: String { file("submission.h5") }
    /// The validation trials' latent paths.
    public var latents: String { file("latents.h5") }
    /// The self-contained HTML report.
    public var report: String { file("report.html") }
    /// What `export` hands to the Python package to write into NWB (`RecordingOutputs.writeExport`).
    public var export: String { file("export.h5") }
    /// A search trial's or member's own log (a search's groups print only summaries).
    public var log: String { file("train.log") }
    /// `precision: auto`'s choice for this run and the timings it rests on (made once, kept
    /// across resumes).
    public var precision: String { file("precision.json") }
    /// The job records (`JobResult`) of a search or an ensemble.
    public var jobs: String { file("jobs") }
    /// The record of job `id`: `jobs/j<id>.json`.
    public func job(_ id: Int) -> String { file(String(format: "jobs/j%05d.json", id)) }
    /// Set by the first rank of a job that received SIGTERM/SIGUSR1 (see `Preemption.share`).
    public var preemptedMarker: String { file("preempted") }

    /// Every resumable checkpoint's name starts with it: `ckpt-<step>.h5`.
    public static let checkpointPrefix = "ckpt-"
    /// The resumable checkpoint written after `step` optimiser steps.
    public func checkpoint(step: Int) -> String { file(Self.checkpointPrefix + String(format: "%010d", step) + ".h5") }
    /// Resumable checkpoints as a glob, for messages.
    public var checkpointPattern: String { file(Self.checkpointPrefix + "*.h5") }

    /// Member k (from 1) of an ensemble.
    public func member(_ k: Int) -> RunDirectory { RunDirectory(file("member-\(k)")) }
    /// A grid or ASHA search's trial, by name.
    public func trial(_ name: String) -> RunDirectory { RunDirectory(file("trials/" + name)) }
    /// The directory of a search's trials.
    public var trials: String { file("trials") }
    /// PBT: member m's run in generation g.
    public func pbtMember(_ m: Int, generation g: Int) -> RunDirectory { RunDirectory(file(String(format: "members/m%02d/g%03d", m, g))) }

    /// Whether the run finished (its validation.json exists).
    public var finished: Bool { FileManager.default.fileExists(atPath: validation) }
}
