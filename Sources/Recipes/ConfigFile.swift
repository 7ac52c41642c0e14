import Foundation
import Model
import Support
import Training
import Yams

/// Config files: a flat YAML mapping of `key: value`, every key a `Config` field, and
/// optionally `base:`, a profile or a list of profiles applied first, in order: the built-in
/// `spec` (the spec's model and training: the defaults, with float32 products), `nlb` (the built-in NLB recipe),
/// `lorenz` (the built-in Lorenz config) and `smallData` (the small-data rule's settings), or
/// another file, `NAME` for `NAME.yaml` beside this one (so `base: mc_maze` in Configs/ reads
/// Configs/mc_maze.yaml). The file's own keys then override its bases.
public enum ConfigFile {
    /// The built-in profiles a `base:` may name, as config text.
    public static var profiles: [String: String] {
        ["spec": "precision: float32", "nlb": BuiltIn.nlbRecipeText, "lorenz": BuiltIn.lorenzConfigText,
         "smallData": SmallData.adjustments.map { "\($0.field): \($0.value)" }.joined(separator: "\n")]
    }

    /// Defaults, then the file (if any), then `--set` overrides in order; then validation.
    public static func resolve(path: String?, overrides: [String]) throws -> Config {
        var config = Config()
        if let path { try apply(path: path, to: &config) }
        try config.apply(overrides: overrides)
        try config.validate()
        return config
    }

    /// Applies every `key: value` of the YAML file at `path`.
    public static func apply(path: String, to config: inout Config) throws {
        guard FileManager.default.fileExists(atPath: path) else {
            throw ConfigError("config file '\(path)' does not exist. Check the path; Configs/ holds ready-made configs (tiny, lorenz, mc_maze, mc_rtt, area2_bump, dmfc_rsg).")
        }
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw ConfigError("config file '\(path)' cannot be read as UTF-8 text.")
        }
        try apply(text: text, source: path, to: &config)
    }

    /// Applies every `key: value` of YAML `text`, after its `base:` profiles; `source` names it
    /// in errors (and, when it is a file, its directory is where a base file is looked for).
    /// `chain`: the bases being applied, to refuse a cycle.
    public static func apply(text: String, source path: String, to config: inout Config, chain: [String] = []) throws {
        let node: Any?
        do { node = try Yams.load(yaml: text) } catch {
            throw ConfigError("\(path): not valid YAML (\(error)). A config is a flat list of `key: value` lines.")
        }
        guard let node else { return }                          // an empty file keeps the defaults
        guard let mapping = node as? [String: Any] else {
            throw ConfigError("\(path): a config must be a flat mapping of `key: value` lines")
        }
        if let base = mapping["base"] {
            let names: [String]
            if let one = base as? String { names = [one] } else if let list = base as? [Any], list.allSatisfy({ $0 is String }) {
                names = list.map { "\($0)" }
            } else {
                throw ConfigError("\(path): base must be a profile name or a list of them (\(profiles.keys.sorted().joined(separator: ", ")), or a config file's name without .yaml)")
            }
            for name in names { try applyBase(name, from: path, to: &config, chain: chain + [path]) }
        }
        for key in mapping.keys.sorted() where key != "base" {
            let value = mapping[key]!
            if value is [Any] || value is [String: Any] {
                throw ConfigError("\(path): '\(key)' must be a single value, not a list or mapping")
            }
            try config.set(key, "\(value)", source: path)
        }
    }

    /// Applies the profile or file `name` that `source` names as its base.
    static func applyBase(_ name: String, from source: String, to config: inout Config, chain: [String]) throws {
        if let text = profiles[name] {
            return try apply(text: text, source: "profile \(name)", to: &config, chain: chain)
        }
        let directory = (source as NSString).deletingLastPathComponent
        let file = (directory.isEmpty ? "." : directory) + "/" + name + (name.hasSuffix(".yaml") ? "" : ".yaml")
        guard !chain.contains(where: { ($0 as NSString).standardizingPath == (file as NSString).standardizingPath }) else {
            throw ConfigError("\(source): base \(name) leads back to itself (\((chain + [file]).joined(separator: " → "))). Remove one of the bases.")
        }
        guard FileManager.default.fileExists(atPath: file) else {
            throw ConfigError("\(source): base \(name) is neither a profile (\(profiles.keys.sorted().joined(separator: ", "))) nor a file ('\(file)' does not exist)")
        }
        guard let text = try? String(contentsOfFile: file, encoding: .utf8) else {
            throw ConfigError("config file '\(file)' cannot be read as UTF-8 text.")
        }
        try apply(text: text, source: file, to: &config, chain: chain)
    }

    /// The Markdown table of every field (Configs/README.md is generated from it).
    /// Every field as JSON, in table order: name, part (model, train, run), kind (int, real,
    /// choice), default, choices and
    /// their old names, allowed values and meaning; and the retired fields with the value that
    /// stayed and why. The Python package's Config is built from this file
    /// (python/lflow_dist/fields.json), so the two cannot drift apart.
    public static func fieldsJSON() -> String {
        let defaults = Config()
        func quoted(_ s: String) -> String {
            let data = try! JSONSerialization.data(withJSONObject: [s], options: [.withoutEscapingSlashes])
            return String(String(decoding: data, as: UTF8.self).dropFirst().dropLast())
        }
        let rows = Config.fields.map { field -> String in
            let value = field.kind == "choice" ? quoted(field.get(defaults)) : field.get(defaults)
            var parts = ["\"name\": \(quoted(field.name))", "\"part\": \(quoted(Config.part(of: field.name)))", "\"kind\": \(quoted(field.kind))", "\"default\": \(value)"]
            if !field.choices.isEmpty { parts.append("\"choices\": [" + field.choices.map(quoted).joined(separator: ", ") + "]") }
            if !field.aliases.isEmpty {
                parts.append("\"aliases\": {" + field.aliases.sorted { $0.key < $1.key }.map { "\(quoted($0.key)): \(quoted($0.value))" }.joined(separator: ", ") + "}")
            }
            parts += ["\"domain\": \(quoted(field.domain))", "\"doc\": \(quoted(field.doc))"]
            return "    {" + parts.joined(separator: ", ") + "}"
        }
        let retired = Config.retired.map { field in
            let part = ModelConfig.retired.contains { $0.name == field.name } ? "model" : "train"
            return "    {\"name\": \(quoted(field.name)), \"part\": \(quoted(part)), \"kept\": \(quoted(field.kept)), \"why\": \(quoted(field.why))}"
        }
        return """
        {
          "generatedBy": "lflow-dist config --fields --json",
          "fields": [
        \(rows.joined(separator: ",\n"))
          ],
          "retired": [
        \(retired.joined(separator: ",\n"))
          ]
        }

        """
    }

    public static func markdownTable() -> String {
        let defaults = Config()
        let parts = [("model", "The model (`ModelConfig`, Sources/Model): the checkpoint's identity, its `config` attribute; all that `predict`, `latents` and the Python package read"),
                     ("train", "The training (`TrainConfig`, Sources/Training): optimiser, schedules, data use; the checkpoint's `training` attribute"),
                     ("run", "The job (`RunOptions`, Sources/Training): checkpoints, ensemble, watchdog, budget; stored with the training")]
        var lines: [String] = []
        for (part, title) in parts {
            lines += ["### \(title)", "", "| key | default | allowed | meaning |", "|---|---|---|---|"]
            for field in Config.fields where Config.part(of: field.name) == part {
                let doc = field.doc.replacingOccurrences(of: "|", with: "\\|")
                let domain = field.domain.replacingOccurrences(of: "|", with: "\\|")
                lines.append("| `\(field.name)` | `\(field.get(defaults))` | \(domain) | \(doc) |")
            }
            lines.append("")
        }
        lines += ["### Retired", "", "Measured and not adopted. A config or checkpoint that sets one to the value in the second column still loads; any other value is refused with this reason.", "",
                  "| key | the value every run has | why |", "|---|---|---|"]
        for field in Config.retired { lines.append("| `\(field.name)` | `\(field.kept)` | \(field.why). |") }
        return lines.joined(separator: "\n") + "\n"
    }
}
