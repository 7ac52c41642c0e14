import Foundation

/// The JSON settings of every file lflow-dist writes and reads (metrics.jsonl, validation.json,
/// status.json, checkpoint attributes, caches): keys sorted, so equal values give equal bytes,
/// and non-finite numbers as the strings "nan", "inf", "-inf" rather than an encoding error.
public enum JSON {
    /// One line per value (metrics.jsonl, attributes), or indented for files people read.
    public static func encoder(pretty: Bool = false) -> JSONEncoder {
        let e = JSONEncoder()
        e.outputFormatting = pretty ? [.prettyPrinted, .sortedKeys] : [.sortedKeys]
        e.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        return e
    }

    public static func decoder() -> JSONDecoder {
        let d = JSONDecoder()
        d.nonConformingFloatDecodingStrategy = .convertFromString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        return d
    }

    /// `value` as one line of JSON text.
    public static func string<T: Encodable>(_ value: T) throws -> String {
        String(decoding: try encoder().encode(value), as: UTF8.self)
    }

    public static func decode<T: Decodable>(_ type: T.Type, from text: String) throws -> T {
        try decoder().decode(type, from: Data(text.utf8))
    }

    /// Writes `value` to `path` atomically (indented unless `pretty` is false).
    public static func write<T: Encodable>(_ value: T, to path: String, pretty: Bool = true) throws {
        try encoder(pretty: pretty).encode(value).write(to: URL(fileURLWithPath: path), options: .atomic)
    }

    /// The value in the file at `path`; nil when it is missing or not this type.
    public static func read<T: Decodable>(_ type: T.Type, from path: String) -> T? {
        guard let data = FileManager.default.contents(atPath: path) else { return nil }
        return try? decoder().decode(type, from: data)
    }
}
