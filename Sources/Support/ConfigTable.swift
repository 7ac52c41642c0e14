import Foundation

// The rule for config fields, written once: how a field of any part of the config (the model's,
// the training's, the run's) is named, documented, parsed, printed and stored as JSON. Each
// part keeps its own table of `ConfigField<Part>` rows in the module that owns the part; the
// whole config lifts them into one table with `lifted(_:)`.

/// A config problem, phrased for the person who has to fix it.
public enum ConfigFailure {}
public typealias ConfigError = Failure<ConfigFailure>

/// One row of a config table: a field of `Root` with its name, meaning, accepted values and
/// text and JSON forms.
public struct ConfigField<Root>: Sendable {
    public let name: String
    public let doc: String
    /// The accepted values, for `--help` and the README (e.g. "current | lagged", "> 0").
    public let domain: String
    public let get: @Sendable (Root) -> String
    public let set: @Sendable (inout Root, String) throws -> Void
    /// The value as JSON (number or string), for the checkpoint's attributes.
    public let json: @Sendable (Root) -> Any
    /// "int", "real" or "choice": how the value is parsed (`lflow-dist config --fields --json`).
    public var kind = "real"
    /// A choice field's values, in order.
    public var choices: [String] = []
    /// A choice field's old value names, read as the new ones.
    public var aliases: [String: String] = [:]

    public init(name: String, doc: String, domain: String, get: @escaping @Sendable (Root) -> String,
                set: @escaping @Sendable (inout Root, String) throws -> Void, json: @escaping @Sendable (Root) -> Any,
                kind: String = "real", choices: [String] = [], aliases: [String: String] = [:]) {
        self.name = name; self.doc = doc; self.domain = domain
        self.get = get; self.set = set; self.json = json
        self.kind = kind; self.choices = choices; self.aliases = aliases
    }

    public static func int(_ name: String, _ key: WritableKeyPath<Root, Int> & Sendable, _ domain: String, _ doc: String) -> ConfigField {
        ConfigField(
            name: name, doc: doc, domain: domain, get: { String($0[keyPath: key]) },
            set: { root, text in
                guard let v = Int(text.trimmingCharacters(in: .whitespaces)) else {
                    throw ConfigError("\(name) must be an integer, got '\(text)'")
                }
                root[keyPath: key] = v
            },
            json: { $0[keyPath: key] }, kind: "int")
    }

    public static func real(_ name: String, _ key: WritableKeyPath<Root, Double> & Sendable, _ domain: String, _ doc: String) -> ConfigField {
        ConfigField(
            name: name, doc: doc, domain: domain, get: { "\($0[keyPath: key])" },
            set: { root, text in
                guard let v = Double(text.trimmingCharacters(in: .whitespaces)), v.isFinite else {
                    throw ConfigError("\(name) must be a finite number, got '\(text)'")
                }
                root[keyPath: key] = v
            },
            json: { $0[keyPath: key] })
    }

    /// `aliases`: old names of values, still read (config files and checkpoints of earlier
    /// versions), never written.
    public static func choice<E: RawRepresentable & CaseIterable & Sendable>(
        _ name: String, _ key: WritableKeyPath<Root, E> & Sendable, _ doc: String, aliases: [String: String] = [:]
    ) -> ConfigField where E.RawValue == String {
        let options = E.allCases.map(\.rawValue)
        return ConfigField(
            name: name, doc: doc, domain: options.joined(separator: " | "), get: { $0[keyPath: key].rawValue },
            set: { root, text in
                let given = text.trimmingCharacters(in: .whitespaces)
                guard let v = E(rawValue: aliases[given] ?? given) else {
                    throw ConfigError("\(name) must be one of \(options.joined(separator: ", ")), got '\(text)'")
                }
                root[keyPath: key] = v
            },
            json: { $0[keyPath: key].rawValue }, kind: "choice", choices: options, aliases: aliases)
    }

    /// The same field, read and written through `part`: a row of a part's table as a row of
    /// the whole config's.
    public func lifted<Whole>(_ part: WritableKeyPath<Whole, Root> & Sendable) -> ConfigField<Whole> {
        let get = self.get, set = self.set, json = self.json
        return ConfigField<Whole>(
            name: name, doc: doc, domain: domain, get: { get($0[keyPath: part]) },
            set: { whole, text in try set(&whole[keyPath: part], text) },
            json: { json($0[keyPath: part]) }, kind: kind, choices: choices, aliases: aliases)
    }
}

/// Config tables' shared reading and writing: a JSON object in table order, and one from it.
public enum ConfigTable {
    /// The fields of `value` as a JSON object, keys in table order.
    public static func json<Root>(_ value: Root, _ fields: [ConfigField<Root>]) -> String {
        let body = fields.map { field -> String in
            let json = field.json(value)
            let text: String
            if let s = json as? String { text = "\"\(s)\"" } else { text = field.get(value) }
            return "  \"\(field.name)\": \(text)"
        }
        return "{\n" + body.joined(separator: ",\n") + "\n}"
    }

    /// The pairs of a JSON object as (key, text form), in key order; `source` names it in the
    /// error.
    public static func pairs(_ text: String, source: String) throws -> [(key: String, value: String)] {
        guard let data = text.data(using: .utf8),
              let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw ConfigError("\(source): the config is not a JSON object")
        }
        return object.sorted(by: { $0.key < $1.key }).map { key, value in
            if let n = value as? NSNumber, !(value is String) { return (key, n.stringValue) }
            return (key, "\(value)")
        }
    }

    /// Sets `key` of `root` from its text form through `fields`, as config files, `--set` and
    /// checkpoints do: a retired key is checked against the value it kept, a field's own error
    /// is prefixed with `source`, and an unknown key is refused as `unknown.kind` with the close
    /// names and `unknown.advice`, or skipped when `unknown` is nil.
    public static func set<Root>(_ root: inout Root, _ key: String, _ value: String, source: String, fields: [ConfigField<Root>],
                                 retired: [RetiredField], unknown: (kind: String, advice: String)?) throws {
        if let retired = retired.first(where: { $0.name == key }) { return try retired.check(value, source: source) }
        guard let field = fields.first(where: { $0.name == key }) else {
            guard let unknown else { return }
            throw ConfigError("\(source): unknown \(unknown.kind) '\(key)'.\(hint(key, among: fields.map(\.name))) \(unknown.advice)")
        }
        do { try field.set(&root, value) } catch let error as ConfigError {
            throw ConfigError("\(source): \(error.message)")
        }
    }

    /// Close names in `names`, for a "did you mean" hint ("" when none is close).
    public static func hint(_ key: String, among names: [String]) -> String {
        let close = names.filter { editDistance($0.lowercased(), key.lowercased()) <= 2 }
        return close.isEmpty ? "" : " Did you mean \(close.joined(separator: " or "))?"
    }
}

/// Levenshtein distance, for "did you mean" hints.
func editDistance(_ a: String, _ b: String) -> Int {
    let a = Array(a), b = Array(b)
    var previous = Array(0...b.count)
    for i in 1...max(a.count, 1) where !a.isEmpty {
        var current = [i] + Array(repeating: 0, count: b.count)
        for j in stride(from: 1, through: b.count, by: 1) {
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
        }
        previous = current
    }
    return a.isEmpty ? b.count : previous[b.count]
}

/// An option measured and not adopted. A config file or a checkpoint of an earlier version that
/// sets it to `kept`, the value every run now has, still loads; any other value is refused
/// with `why`: the measurement that retired it and what replaced it.
public struct RetiredField: Sendable {
    public let name: String
    public let kept: String
    public let why: String

    public init(_ name: String, kept: String, why: String) { self.name = name; self.kept = kept; self.why = why }

    /// Accepts `kept` (as text, or as the same number), refuses anything else.
    public func check(_ value: String, source: String) throws {
        let given = value.trimmingCharacters(in: .whitespaces)
        guard given == kept || Double(given).map({ Double(kept) == $0 }) == true else {
            throw ConfigError("\(source): \(name) \(given): \(why).")
        }
    }
}
