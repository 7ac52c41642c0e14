import Foundation
import RunFiles
import Model
import Training
import Support

/// A problem with a search's grid, rank layout or run directory, phrased for the person who
/// has to fix it.
public enum SearchFailure {}
public typealias SearchError = Failure<SearchFailure>

/// One `--grid field=v1,v2,…` axis. Values are kept in the field's canonical text form (what
/// `--set` would store and `config.yaml` would show), so "1" and "1.0" name the same point.
public struct SearchAxis: Codable, Equatable, Sendable {
    public let field: String
    public let values: [String]
}

/// One grid point: its index in the grid's order, its parameters and its resolved config.
public struct SearchPoint: Sendable {
    public let index: Int
    public let parameters: [SearchParameter]
    public let config: Config

    /// The trial's directory name, e.g. `t003_mass=1.0_damping=0.3_coupling=0.5`.
    public var name: String {
        String(format: "t%03d", index) + parameters.map { "_\($0.field)=\($0.value)" }.joined()
    }

    public var label: String { parameters.map { "\($0.field)=\($0.value)" }.joined(separator: " ") }
}

/// The cartesian product of the axes, first axis slowest (as itertools.product).
public struct SearchGrid: Codable, Equatable, Sendable {
    /// mass × damping around the spec's defaults (1, 0.55): nine distinct models. (Coupling is
    /// not an axis: mass and coupling act only through coupling/mass, so with both most points
    /// would repeat another.)
    public static let defaultSpecs = ["mass=0.5,1,2", "damping=0.3,0.55,0.8"]

    public let axes: [SearchAxis]

    /// Parses `field=v1,v2,…` specs. Refuses unknown and non-numeric fields, empty value
    /// lists, values that do not parse, and a field given twice.
    public init(specs: [String]) throws {
        guard !specs.isEmpty else { throw SearchError("the grid is empty: give at least one --grid field=v1,v2,… (e.g. --grid mass=0.5,1,2)") }
        var axes: [SearchAxis] = []
        let defaults = Config()
        for spec in specs {
            guard let eq = spec.firstIndex(of: "="), eq != spec.startIndex else {
                throw SearchError("--grid \(spec): expected field=v1,v2,… (e.g. --grid mass=0.5,1,2)")
            }
            let name = String(spec[..<eq]).trimmingCharacters(in: .whitespaces)
            let list = String(spec[spec.index(after: eq)...])
            guard let field = Config.field(named: name) else {
                var probe = defaults
                do { try probe.set(name, "0", source: "--grid \(spec)") } catch { throw SearchError("\(error)") }
                throw SearchError("--grid \(spec): unknown config key '\(name)'")
            }
            guard !(field.json(defaults) is String) else {
                throw SearchError("--grid \(spec): '\(name)' is not numeric (it takes \(field.domain)); --grid sweeps numeric fields. To fix it for the whole search use --set \(name)=…")
            }
            let items = list.split(separator: ",", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
            guard !list.trimmingCharacters(in: .whitespaces).isEmpty, !items.contains(where: \.isEmpty) else {
                throw SearchError("--grid \(spec): \(list.trimmingCharacters(in: .whitespaces).isEmpty ? "no values" : "an empty value in the list"). Give comma-separated values, e.g. --grid \(name)=\(field.get(defaults))")
            }
            guard !axes.contains(where: { $0.field == name }) else {
                throw SearchError("--grid \(spec): '\(name)' is already an axis of the grid; give each field once, with all its values")
            }
            var canonical: [String] = []
            for item in items {
                var probe = defaults
                do { try field.set(&probe, item) } catch { throw SearchError("--grid \(spec): \(error)") }
                let text = field.get(probe)
                guard !canonical.contains(text) else { throw SearchError("--grid \(spec): the value \(item) is listed twice") }
                canonical.append(text)
            }
            axes.append(SearchAxis(field: name, values: canonical))
        }
        self.axes = axes
    }

    public var count: Int { axes.reduce(1) { $0 * $1.values.count } }

    /// Every point with `base` overridden by its values, each validated: an impossible point
    /// (mass ≤ 0, damping outside [0, 1), …) is refused by name before anything trains.
    public func points(base: Config) throws -> [SearchPoint] {
        var points: [SearchPoint] = []
        for index in 0..<count {
            var rest = index, parameters: [SearchParameter] = []
            for axis in axes.reversed() {
                parameters.insert(SearchParameter(field: axis.field, value: axis.values[rest % axis.values.count]), at: 0)
                rest /= axis.values.count
            }
            var config = base
            for p in parameters { try config.set(p.field, p.value, source: "--grid") }
            do { try config.validate() } catch let error as ConfigError {
                let problems = error.message.split(separator: "\n").dropFirst()
                    .map { $0.trimmingCharacters(in: .whitespaces).replacingOccurrences(of: "- ", with: "", options: .anchored) }
                throw SearchError("grid point \(parameters.map { "\($0.field)=\($0.value)" }.joined(separator: ", ")) is impossible: \(problems.joined(separator: "; ")). Change that --grid value.")
            }
            points.append(SearchPoint(index: index, parameters: parameters, config: config))
        }
        return points
    }
}
