import Foundation
import Support

// TensorBoard: event files as TensorBoard reads them, written natively (no TensorFlow): the
// record framing (length, masked CRC32C, protobuf, masked CRC32C), the Event and Summary
// protobufs for scalars and session restarts, and the HParams plugin's experiment and session
// summaries. It knows nothing of training or searches; they say what to log.

/// Protocol-buffer encoding of the few messages an event file needs (proto3 wire format).
struct Proto {
    private(set) var bytes: [UInt8] = []

    mutating func varint(_ value: UInt64) {
        var v = value
        while v >= 0x80 { bytes.append(UInt8(v & 0x7f) | 0x80); v >>= 7 }
        bytes.append(UInt8(v))
    }

    mutating func key(_ field: Int, _ wire: Int) { varint(UInt64(field << 3 | wire)) }

    mutating func int(_ field: Int, _ value: Int64) { key(field, 0); varint(UInt64(bitPattern: value)) }

    mutating func double(_ field: Int, _ value: Double) {
        key(field, 1)
        withUnsafeBytes(of: value.bitPattern.littleEndian) { bytes.append(contentsOf: $0) }
    }

    mutating func float(_ field: Int, _ value: Float) {
        key(field, 5)
        withUnsafeBytes(of: value.bitPattern.littleEndian) { bytes.append(contentsOf: $0) }
    }

    mutating func data(_ field: Int, _ value: [UInt8]) { key(field, 2); varint(UInt64(value.count)); bytes.append(contentsOf: value) }

    mutating func string(_ field: Int, _ value: String) { data(field, Array(value.utf8)) }

    mutating func message(_ field: Int, _ value: Proto) { data(field, value.bytes) }

    static func build(_ body: (inout Proto) -> Void) -> Proto {
        var p = Proto()
        body(&p)
        return p
    }
}

/// CRC-32C (Castagnoli), as the TFRecord framing uses it, and its masked form.
enum CRC32C {
    static let table: [UInt32] = (0..<256).map { n in
        var c = UInt32(n)
        for _ in 0..<8 { c = c & 1 != 0 ? 0x82F6_3B78 ^ (c >> 1) : c >> 1 }
        return c
    }

    static func checksum(_ bytes: [UInt8]) -> UInt32 {
        var c: UInt32 = 0xFFFF_FFFF
        for b in bytes { c = table[Int((c ^ UInt32(b)) & 0xff)] ^ (c >> 8) }
        return c ^ 0xFFFF_FFFF
    }

    static func masked(_ bytes: [UInt8]) -> UInt32 {
        let c = checksum(bytes)
        return ((c >> 15) | (c << 17)) &+ 0xA282_EAD8
    }
}

/// One TensorBoard value of the HParams plugin: a number, a string or a boolean.
public enum HParamValue: Equatable, Sendable {
    case number(Double), string(String), bool(Bool)

    var proto: Proto {
        Proto.build { p in
            switch self {
            case .number(let v): p.double(2, v)
            case .string(let s): p.string(3, s)
            case .bool(let b): p.int(4, b ? 1 : 0)
            }
        }
    }
}

/// An append-only TensorBoard event file in `directory`
/// (`events.out.tfevents.<seconds>.<microseconds>.<host>.<pid>.lflow`): one per writer, so a resumed run adds
/// a file and TensorBoard merges them. Every event is flushed as it is written.
public final class EventWriter {
    public let path: String
    private let handle: FileHandle

    public init(directory: String) throws {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let host = ProcessInfo.processInfo.hostName.split(separator: ".").first.map(String.init) ?? "host"
        // Seconds and microseconds first, so names sort in time order (TensorBoard reads a run's
        // files in name order); never an existing name (several writers may start in one second).
        var micros = Int((Date().timeIntervalSince1970 * 1e6).rounded())
        var candidate: String
        repeat {
            candidate = directory + "/events.out.tfevents.\(micros / 1_000_000).\(String(format: "%06d", micros % 1_000_000)).\(host).\(getpid()).lflow"
            micros += 1
        } while FileManager.default.fileExists(atPath: candidate)
        path = candidate
        guard FileManager.default.createFile(atPath: path, contents: nil), let handle = FileHandle(forWritingAtPath: path) else {
            throw FileError("cannot create the TensorBoard event file '\(path)'. Check that '\(directory)' is writable.")
        }
        self.handle = handle
        write(Proto.build { e in e.double(1, Date().timeIntervalSince1970); e.string(3, "brain.Event:2") })
    }

    deinit { try? handle.close() }

    private func write(_ event: Proto) {
        let data = event.bytes
        var record: [UInt8] = []
        withUnsafeBytes(of: UInt64(data.count).littleEndian) { record.append(contentsOf: $0) }
        withUnsafeBytes(of: CRC32C.masked(Array(record)).littleEndian) { record.append(contentsOf: $0) }
        record.append(contentsOf: data)
        withUnsafeBytes(of: CRC32C.masked(data).littleEndian) { record.append(contentsOf: $0) }
        handle.write(Data(record))
    }

    private func event(step: Int, wallTime: Double, _ body: (inout Proto) -> Void) {
        write(Proto.build { e in
            e.double(1, wallTime)
            e.int(2, Int64(step))
            body(&e)
        })
    }

    /// Scalars at `step` (TensorBoard's x axis), in one event.
    public func scalars(step: Int, _ values: [(tag: String, value: Double)], wallTime: Double = Date().timeIntervalSince1970) {
        let finite = values.filter { $0.value.isFinite }
        guard !finite.isEmpty else { return }
        event(step: step, wallTime: wallTime) { e in
            e.message(5, Proto.build { s in
                for (tag, v) in finite { s.message(1, Proto.build { value in value.string(1, tag); value.float(2, Float(v)) }) }
            })
        }
    }

    /// A session (re)start at `step`: TensorBoard drops what earlier files logged at `step` and
    /// after, so a resumed run's curves continue from its checkpoint instead of doubling back.
    public func sessionStart(step: Int) {
        event(step: step, wallTime: Date().timeIntervalSince1970) { e in e.message(7, Proto.build { log in log.int(1, 1) }) }
    }

    /// An HParams plugin summary (`_hparams_/…`) with the given plugin content.
    private func hparamsSummary(tag: String, content: (inout Proto) -> Void) {
        let pluginData = Proto.build { d in d.int(1, 0); content(&d) }      // version 0
        event(step: 0, wallTime: Date().timeIntervalSince1970) { e in
            e.message(5, Proto.build { s in
                s.message(1, Proto.build { v in
                    v.string(1, tag)
                    v.message(9, Proto.build { m in m.message(1, Proto.build { p in p.string(1, "hparams"); p.message(2, pluginData) }) })
                    // The empty float tensor TensorBoard's own summaries carry (dtype DT_FLOAT, shape [0]).
                    v.message(8, Proto.build { t in t.int(1, 1); t.message(2, Proto.build { shape in shape.message(2, Proto()) }) })
                })
            })
        }
    }

    /// The experiment of a search: its hyperparameters (name and, when numeric, the range or
    /// the values seen) and the metric tags its sessions log.
    public func hparamsExperiment(hparams: [(name: String, values: [HParamValue])], metrics: [(tag: String, description: String)]) {
        hparamsSummary(tag: "_hparams_/experiment") { d in
            d.message(2, Proto.build { x in
                x.double(3, Date().timeIntervalSince1970)
                for (name, values) in hparams {
                    x.message(4, Proto.build { h in
                        h.string(1, name)
                        let numeric = values.allSatisfy { if case .number = $0 { return true } else { return false } }
                        h.int(4, numeric ? 3 : 1)                                   // DATA_TYPE_FLOAT64 / STRING
                        h.message(5, Proto.build { list in for v in values { list.message(1, v.proto) } })
                    })
                }
                for (tag, description) in metrics {
                    x.message(5, Proto.build { m in
                        m.message(1, Proto.build { n in n.string(2, tag) })
                        m.string(4, description)
                        m.int(5, 2)                                                 // DATASET_VALIDATION
                    })
                }
            })
        }
    }

    /// A session (a search's trial) starts: its hyperparameter values.
    public func hparamsSessionStart(_ values: [(name: String, value: HParamValue)], group: String) {
        hparamsSummary(tag: "_hparams_/session_start_info") { d in
            d.message(3, Proto.build { s in
                for (name, value) in values {
                    s.message(1, Proto.build { entry in entry.string(1, name); entry.message(2, value.proto) })
                }
                s.string(4, group)
                s.double(5, Date().timeIntervalSince1970)
            })
        }
    }

    /// A session ends: success or failure.
    public func hparamsSessionEnd(success: Bool) {
        hparamsSummary(tag: "_hparams_/session_end_info") { d in
            d.message(4, Proto.build { s in s.int(1, success ? 1 : 2); s.double(2, Date().timeIntervalSince1970) })
        }
    }
}
