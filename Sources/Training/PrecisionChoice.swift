import Checkpoint
import Distributed
import Foundation
import Kernels
import Model
import RunFiles
import Support

/// `precision: auto`, resolved: the run times its own products in float32 and bf16 on this CPU
/// (`PrecisionProbe` on rank 0: about 0.1 s at the main job's size, 15 s at paper size on one rank)
/// and trains with the faster one. The
/// choice and its timings are kept in the run directory (`precision.json`), so a resumed run,
/// on any machine, continues in the precision it started with; a run that continues another's
/// checkpoint (PBT's warm start) takes that checkpoint's. Every rank uses rank 0's choice.
/// With `precision: bf16` set by hand the run also times both, and warns when bf16 is slower.
enum PrecisionChoice {
    struct Record: Codable {
        var choice: String
        var timing: PrecisionProbe.Timing
        /// The CPU (model name) and oneDNN's instruction set the timings were taken on.
        var cpu: String
        var isa: String
        var shapes: [[Int]]
    }

    static func resolve(_ config: Config, dims: DataDims, run: RunDirectory, warmStart: WarmStart?, comm: Communicator,
                        log: (String) -> Void) throws -> Config {
        let setting = config.model.precision
        guard setting != .float32 else { return config }
        var resolved = config
        var code: [Double] = [0]
        if comm.isRoot {
            let choice: Precision
            if setting == .bf16 {
                let record = measure(config, dims: dims, ranks: comm.size)
                if OneDNN.bf16Path == .emulated {
                    log("warning: precision bf16 runs emulated on this CPU (no AVX512-BF16): the same bf16 arithmetic, slower than float32 (\(record.timing.summary)); precision: auto (the default) or float32 is faster here")
                } else if record.timing.faster == .float32 {
                    log("warning: precision bf16 is slower than float32 on this CPU at this run's shapes (\(record.timing.summary)); precision: auto (the default) would choose float32")
                }
                choice = .bf16
            } else if let warmStart {
                choice = try CheckpointIO.readConfig(path: warmStart.checkpoint).precision == .bf16 ? .bf16 : .float32
                log("precision auto: \(choice.rawValue), as the checkpoint this run continues (\(warmStart.checkpoint))")
            } else if let kept = JSON.read(Record.self, from: run.precision), let earlier = Precision(rawValue: kept.choice) {
                choice = earlier
                log("precision auto: \(choice.rawValue), chosen when this run started (\(kept.timing.summary) on \(kept.cpu), oneDNN \(kept.isa))")
            } else {
                let record = measure(config, dims: dims, ranks: comm.size)
                choice = record.timing.faster
                try FileManager.default.createDirectory(atPath: run.path, withIntermediateDirectories: true)
                try JSON.write(record, to: run.precision)
                log("precision auto: \(choice.rawValue), the faster here (\(record.timing.summary) for this run's products on \(record.cpu), oneDNN \(record.isa))")
            }
            code[0] = choice == .bf16 ? 1 : 0
        }
        try comm.broadcast(&code, count: 1, root: 0)
        resolved.model.precision = code[0] == 1 ? .bf16 : .float32
        return resolved
    }

    /// Times the run's products at its per-rank batch.
    static func measure(_ config: Config, dims: DataDims, ranks: Int) -> Record {
        let batch = max(1, (config.train.batchSize + ranks - 1) / ranks)
        let shapes = config.model.productShapes(dims: dims, batch: batch)
        let timing = PrecisionProbe.measure(shapes)
        return Record(choice: timing.faster.rawValue, timing: timing, cpu: PrecisionProbe.cpuModel, isa: OneDNN.isa,
                      shapes: shapes.map { [$0.m, $0.n, $0.k] })
    }
}
