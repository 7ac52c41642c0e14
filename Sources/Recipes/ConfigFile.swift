import Foundation
import Model
import Yams

/// Config files: a flat YAML mapping of `key: value`, every key a `Config` field.
public enum ConfigFile {
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

    /// Applies every `key: value` of YAML `text`; `source` names it in errors.
    public static func apply(text: String, source path: String, to config: inout Config) throws {
        let node: Any?
        do { node = try Yams.load(yaml: text) } catch {
            throw ConfigError("\(path): not valid YAML (\(error)). A config is a flat list of `key: value` lines.")
        }
        guard let node else { return }                          // an empty file keeps the defaults
        guard let mapping = node as? [String: Any] else {
            throw ConfigError("\(path): a config must be a flat mapping of `key: value` lines")
        }
        for key in mapping.keys.sorted() {
            let value = mapping[key]!
            if value is [Any] || value is [String: Any] {
                throw ConfigError("\(path): '\(key)' must be a single value, not a list or mapping")
            }
            try config.set(key, "\(value)", source: path)
        }
    }

    /// The config as YAML, in field-table order, with each field's doc as a comment.
    public static func yaml(_ config: Config) -> String {
        Config.fields.map { "\($0.name): \($0.get(config))    # \($0.doc)" }.joined(separator: "\n") + "\n"
    }

    /// The Markdown table of every field (Configs/README.md is generated from it).
    /// Every field as JSON, in table order: name, kind (int, real, choice), default, choices and
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
            var parts = ["\"name\": \(quoted(field.name))", "\"kind\": \(quoted(field.kind))", "\"default\": \(value)"]
            if !field.choices.isEmpty { parts.append("\"choices\": [" + field.choices.map(quoted).joined(separator: ", ") + "]") }
            if !field.aliases.isEmpty {
                parts.append("\"aliases\": {" + field.aliases.sorted { $0.key < $1.key }.map { "\(quoted($0.key)): \(quoted($0.value))" }.joined(separator: ", ") + "}")
            }
            parts += ["\"domain\": \(quoted(field.domain))", "\"doc\": \(quoted(field.doc))"]
            return "    {" + parts.joined(separator: ", ") + "}"
        }
        let retired = Config.retired.map { "    {\"name\": \(quoted($0.name)), \"kept\": \(quoted($0.kept)), \"why\": \(quoted($0.why))}" }
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
        var lines = ["| key | default | allowed | meaning |", "|---|---|---|---|"]
        for field in Config.fields {
            let doc = field.doc.replacingOccurrences(of: "|", with: "\\|")
            let domain = field.domain.replacingOccurrences(of: "|", with: "\\|")
            lines.append("| `\(field.name)` | `\(field.get(defaults))` | \(domain) | \(doc) |")
        }
        return lines.joined(separator: "\n") + "\n"
    }
}
