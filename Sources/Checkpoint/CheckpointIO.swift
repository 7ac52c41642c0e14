import Foundation
import HDF5
import Kernels
import Model
import Support
#if canImport(Glibc)
import Glibc
#endif

// Checkpoint: HDF5 checkpoints in PyTorch state_dict names and shapes, with checksums, and a run's
// resumable checkpoint files (RunCheckpoints). What a checkpoint means to training (its state, its
// cadence) is Training's.

/// A checkpoint problem: names the file and, for a mismatch, the parameter.
public enum CheckpointFailure {}
public typealias CheckpointError = Failure<CheckpointFailure>

/// HDF5 checkpoints that h5py and PyTorch users can read: every parameter under
/// `model/<name>` in PyTorch state_dict names and shapes (float32, row-major), the model's
/// config (`ModelConfig`) as the JSON root attribute `config`, how it was trained (the training
/// and run fields) as the JSON root attribute `training`, and `schema_version`. Schema 1 kept
/// every field in `config` and had no `training`; both still load.
public enum CheckpointIO {
    public static let schemaVersion: Int64 = 2
    public static let format = "lflow-dist checkpoint"

    /// Writes atomically: a temporary file in the same directory, fsync, rename over `path`,
    /// fsync the directory. A crash at any point leaves either the old file or the new one.
    /// `extra` may add more datasets and attributes before the file is closed.
    public static func write<S: Scalar>(path: String, layout: ParameterLayout, values: Buffer<S>, config: ModelConfig,
                                        training: String? = nil, extra: (H5File) throws -> Void = { _ in }) throws {
        try write(path: path, config: config, training: training) { file in
            try writeGroup("model", of: values, layout: layout, to: file)
            try extra(file)
        }
    }

    /// The `Digest64` of a tensor's float32 bytes, as stored in `checksums`.
    public static func digest(_ floats: [Float]) -> String {
        var hash = Digest64()
        floats.withUnsafeBytes { hash.combine($0) }
        return hash.hex
    }

    /// Writes every layout entry of `values` as float32 `<group>/<name>` and records its digest
    /// in the group's `checksums` attribute (a JSON object name → hex digest).
    public static func writeGroup<S: Scalar>(_ group: String, of values: Buffer<S>, layout: ParameterLayout, to file: H5File) throws {
        var sums: [String: String] = [:]
        for entry in layout.entries {
            let floats = (0..<entry.count).map { Float(values[entry.offset + $0]) }
            try file.write("\(group)/\(entry.name)", shape: entry.shape, floats: floats)
            sums[entry.name] = digest(floats)
        }
        let json = try JSONSerialization.data(withJSONObject: sums, options: [.sortedKeys])
        try file.writeAttribute("checksums", string: String(decoding: json, as: UTF8.self), on: group)
    }

    /// The atomic write of any checkpoint: `body` fills the file; `config`, `training` (JSON of
    /// the training and run fields, when given), `schema_version` and `format` are added at the
    /// root.
    public static func write(path: String, config: ModelConfig, training: String? = nil, body: (H5File) throws -> Void) throws {
        do {
            try AtomicFile.write(path) { temporary in
                let file = try H5File.create(temporary)
                try body(file)
                try file.writeAttribute("config", string: config.json())
                if let training { try file.writeAttribute("training", string: training) }
                try file.writeAttribute("schema_version", int: schemaVersion)
                try file.writeAttribute("format", string: format)
                try file.flush()
            }
        } catch let error as CheckpointError {
            throw error
        } catch {
            throw CheckpointError("cannot write checkpoint '\(path)': \(error). Nothing was written at that path; check free space and permissions.")
        }
    }

    static func openFile(_ path: String) throws -> H5File {
        do { return try H5File.open(path) } catch let error as HDF5Error {
            throw CheckpointError("cannot read checkpoint \(error)")
        }
    }

    /// The config attributes as stored: `config`, `training` (nil in a checkpoint of schema 1,
    /// whose `config` holds every field, or in one `init` wrote, which was never trained), and
    /// the schema.
    public static func readConfigText(path: String) throws -> (config: String, training: String?, schema: Int64) {
        let file = try openFile(path)
        guard file.hasAttribute("config") else {
            throw CheckpointError("'\(path)' has no `config` attribute: it is not an lflow-dist checkpoint (write one with `lflow-dist init`)")
        }
        let schema = file.hasAttribute("schema_version") ? try file.readAttributeInt("schema_version") : 1
        guard schema <= schemaVersion else {
            throw CheckpointError("'\(path)' has schema_version \(schema); this lflow-dist reads up to \(schemaVersion). Use the lflow-dist that wrote it, or a newer one.")
        }
        return (try file.readAttributeString("config"), file.hasAttribute("training") ? try file.readAttributeString("training") : nil, schema)
    }

    /// The model's config stored in the checkpoint: its identity, all that prediction needs.
    public static func readConfig(path: String) throws -> ModelConfig {
        let (text, _, schema) = try readConfigText(path: path)
        do {
            // Schema 1 stored the training's fields in `config` too; the model reads its own.
            return try ModelConfig.fromJSON(text, source: "\(path) (config attribute)", othersAllowed: schema == 1)
        } catch let error as ConfigError {
            throw CheckpointError(error.message)
        }
    }

    /// Reads every parameter of `layout` into `values`, refusing a checkpoint whose tensors do
    /// not match the layout by name and shape.
    public static func read<S: Scalar>(path: String, into values: Buffer<S>, layout: ParameterLayout) throws {
        try readGroup("model", path: path, into: values, layout: layout)
    }

    /// Reads `<group>/<name>` for every layout entry, checking names, shapes and (when the
    /// group has them) the checksums.
    public static func readGroup<S: Scalar>(_ group: String, path: String, into values: Buffer<S>, layout: ParameterLayout) throws {
        let file = try openFile(path)
        let stored = Set((try? file.children(of: group)) ?? [])
        guard !stored.isEmpty else {
            throw CheckpointError("'\(path)' has no \(group)/ tensors: it is not an lflow-dist checkpoint, or not one that holds \(group)")
        }
        var sums: [String: String] = [:]
        if file.hasAttribute("checksums", on: group), let text = try? file.readAttributeString("checksums", on: group),
           let object = try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: String] {
            sums = object
        }
        let advice = "This checkpoint was made for a model of other sizes or options. Use the config and data it was made with, or run `lflow-dist init` again."
        for entry in layout.entries {
            guard stored.contains(entry.name) else {
                throw CheckpointError("'\(path)': parameter \(entry.name) \(entry.shape) is missing. \(advice)")
            }
            let (shape, floats) = try file.readFloats("\(group)/\(entry.name)")
            guard shape == entry.shape else {
                throw CheckpointError("'\(path)': parameter \(entry.name) is \(shape) in the file but \(entry.shape) for this config and data. \(advice)")
            }
            if let expected = sums[entry.name], expected != digest(floats) {
                throw CheckpointError("'\(path)': \(group)/\(entry.name) does not match its checksum: the file is corrupt")
            }
            for i in 0..<entry.count { values[entry.offset + i] = S(floats[i]) }
        }
        let extra = stored.subtracting(layout.entries.map(\.name))
        if !extra.isEmpty {
            throw CheckpointError("'\(path)': \(group)/ has \(extra.sorted().joined(separator: ", ")), which are not in this model. \(advice)")
        }
    }
}
