import Foundation
import Model
import Training
import Yams

/// One explored field of a PBT search: its bounds and how far a perturbation may move it.
public struct ExploredField: Codable, Equatable, Sendable {
    public let field: String
    public let lower: Double
    public let upper: Double
    /// A perturbation multiplies the value by 1 ± u, u ~ U(0.002·weight, weight), then clamps
    /// it to the bounds (AutoLFADS' rule).
    public let weight: Double
    /// Initial samples are log-uniform when the bounds span more than a factor 10 (rates,
    /// weights), uniform otherwise.
    public var logScale: Bool { lower > 0 && upper / lower > 10 }
}

/// The fields PBT explores, from `--explore field=lo:hi[:weight]` and a YAML search file
/// (`field: [lo, hi]` or `field: [lo, hi, weight]` per line).
public struct SearchSpace: Codable, Equatable, Sendable {
    /// What PBT may explore: the physics and the training fields AutoLFADS and the released
    /// code tune (a field outside it would change the model's shapes or the data it sees).
    public static let explorable: Set<String> = [
        "learningRate", "dropout", "decoderDropout", "cdKeep", "klWeight", "weightDecay",
        "damping", "coupling", "mass", "temperature", "dt",
    ]
    public static let defaultWeight = 0.3

    public let fields: [ExploredField]

    public init(fields: [ExploredField]) { self.fields = fields }

    public init(specs: [String], file: String?) throws {
        var fields: [ExploredField] = []
        func add(_ name: String, _ numbers: [Double], source: String) throws {
            guard Self.explorable.contains(name) else {
                throw SearchError("\(source): PBT cannot explore '\(name)'; it explores \(Self.explorable.sorted().joined(separator: ", "))")
            }
            guard numbers.count == 2 || numbers.count == 3, numbers.allSatisfy(\.isFinite), numbers[0] < numbers[1] else {
                throw SearchError("\(source): give '\(name)' as lower:upper[:weight] with lower < upper, e.g. --explore learningRate=0.0003:0.01")
            }
            let weight = numbers.count == 3 ? numbers[2] : Self.defaultWeight
            guard weight > 0 && weight < 1 else { throw SearchError("\(source): the perturbation weight of '\(name)' must be in (0, 1), got \(weight)") }
            guard !fields.contains(where: { $0.field == name }) else { throw SearchError("\(source): '\(name)' is explored twice") }
            fields.append(ExploredField(field: name, lower: numbers[0], upper: numbers[1], weight: weight))
        }
        if let file {
            guard let text = try? String(contentsOfFile: file, encoding: .utf8) else { throw SearchError("search file '\(file)' cannot be read") }
            let node: Any?
            do { node = try Yams.load(yaml: text) } catch { throw SearchError("\(file): not valid YAML (\(error))") }
            guard let mapping = node as? [String: Any] else { throw SearchError("\(file): expected lines of field: [lower, upper] or field: [lower, upper, weight]") }
            for name in mapping.keys.sorted() {
                guard let list = mapping[name] as? [Any] else { throw SearchError("\(file): '\(name)' must be [lower, upper] or [lower, upper, weight]") }
                try add(name, list.map { Double("\($0)") ?? .nan }, source: file)
            }
        }
        for spec in specs {
            guard let eq = spec.firstIndex(of: "=") else { throw SearchError("--explore \(spec): expected field=lower:upper[:weight]") }
            try add(String(spec[..<eq]), spec[spec.index(after: eq)...].split(separator: ":").map { Double($0) ?? .nan }, source: "--explore \(spec)")
        }
        self.fields = fields
    }

    /// The default space: learning rate, dropout, coordinated-dropout keep rate, KL and weight
    /// decay (AutoLFADS' seven, in lflow-dist's fields) and damping (the released code's hand-tuned physics).
    public static let standard = SearchSpace(fields: [
        ExploredField(field: "learningRate", lower: 1e-4, upper: 1e-2, weight: defaultWeight),
        ExploredField(field: "dropout", lower: 0.01, upper: 0.5, weight: defaultWeight),
        ExploredField(field: "decoderDropout", lower: 0.01, upper: 0.5, weight: defaultWeight),
        ExploredField(field: "cdKeep", lower: 0.2, upper: 0.95, weight: defaultWeight),
        ExploredField(field: "klWeight", lower: 1e-3, upper: 1, weight: defaultWeight),
        ExploredField(field: "weightDecay", lower: 1e-7, upper: 1e-3, weight: defaultWeight),
        ExploredField(field: "damping", lower: 0.05, upper: 0.95, weight: defaultWeight),
    ])

    /// Canonical text of `value` for `field` (what --set stores), or nil if the config refuses it.
    static func text(_ field: String, _ value: Double, base: Config) -> String? {
        var probe = base
        guard let f = Config.field(named: field), (try? f.set(&probe, "\(value)")) != nil else { return nil }
        return f.get(probe)
    }
}
