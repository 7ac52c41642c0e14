import Foundation
import Testing
import Checkpoint
import Data
import HDF5
import Kernels
import Model
import Evaluation
import Inference
import Recipes
import Support
import Training

/// A fresh directory per test.
func temporaryDirectory() -> String {
    let path = NSTemporaryDirectory() + "lflow-io-\(UUID().uuidString)"
    try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
}

/// A small valid NLB tensor file; `edit` may change or drop arrays before writing.
func writeNLB(_ path: String, trials: Int = 6, bins: Int = 5, forward: Int = 2, heldIn: Int = 4, heldOut: Int = 3,
              datasetName: String? = nil, edit: (inout [String: ([Int], [Float])]) -> Void = { _ in }) throws {
    func counts(_ shape: [Int], _ salt: Int) -> ([Int], [Float]) {
        (shape, (0..<shape.reduce(1, *)).map { Float(($0 * 7 + salt) % 4) })
    }
    var arrays: [String: ([Int], [Float])] = [
        "train_spikes_heldin": counts([trials, bins, heldIn], 1),
        "train_spikes_heldout": counts([trials, bins, heldOut], 2),
        "train_spikes_heldin_forward": counts([trials, forward, heldIn], 3),
        "train_spikes_heldout_forward": counts([trials, forward, heldOut], 4),
        "train_behavior": counts([trials, bins, 2], 5),
        "eval_spikes_heldin": counts([2, bins, heldIn], 6),
    ]
    edit(&arrays)
    let file = try H5File.create(path)
    for (key, (shape, values)) in arrays { try file.write(key, shape: shape, floats: values) }
    if let datasetName { try file.writeAttribute("dataset_name", string: datasetName) }
}

func expectError<E: Error & CustomStringConvertible>(_: E.Type, containing parts: [String], _ body: () throws -> Void) {
    do {
        try body()
        Issue.record("no error; expected one containing \(parts)")
    } catch let error as E {
        for part in parts { #expect(error.description.contains(part), "'\(error.description)' lacks '\(part)'") }
    } catch {
        Issue.record("unexpected error type: \(error)")
    }
}

@Suite("HDF5 wrapper")
struct HDF5Tests {
    @Test("Datasets and attributes round-trip, nested groups, dotted names, int → double")
    func roundTrip() throws {
        let path = temporaryDirectory() + "/a.h5"
        do {
            let f = try H5File.create(path)
            try f.write("model/encoder.weight_ih", shape: [2, 3], floats: [1, 2, 3, 4, 5, 6])
            try f.write("x/y/z", shape: [2], doubles: [0.1, 1e-300])
            try f.write("ints", shape: [3], int64s: [-5, 0, 1 << 40])
            try f.write("scalar", shape: [], doubles: [3.5])
            try f.writeAttribute("config", string: "{\"a\": \"ünïcode\"}")
            try f.writeAttribute("step", int: 42)
            try f.writeAttribute("loss", double: 0.25, on: "model")
        }
        let f = try H5File.open(path)
        #expect(try f.readFloats("model/encoder.weight_ih").values == [1, 2, 3, 4, 5, 6])
        #expect(try f.shape(of: "model/encoder.weight_ih") == [2, 3])
        #expect(try f.readDoubles("x/y/z").values == [0.1, 1e-300])
        #expect(try f.readDoubles("ints").values == [-5, 0, Double(1 << 40)])
        #expect(try f.readDoubles("scalar").shape == [])
        #expect(try f.readAttributeString("config") == "{\"a\": \"ünïcode\"}")
        #expect(try f.readAttributeInt("step") == 42)
        #expect(try f.readAttributeDouble("loss", on: "model") == 0.25)
        #expect(f.has("x/y/z") && !f.has("x/q/z") && !f.has("nope"))
        #expect(try f.children(of: "model") == ["encoder.weight_ih"])
        #expect(try f.children(groups: true).sorted() == ["model", "x"])
    }

    @Test("Missing files, non-HDF5 files and missing datasets are clear errors")
    func errors() throws {
        let dir = temporaryDirectory()
        expectError(HDF5Error.self, containing: ["\(dir)/none.h5", "no such file"]) { _ = try H5File.open("\(dir)/none.h5") }
        try Data("not hdf5 at all".utf8).write(to: URL(fileURLWithPath: "\(dir)/junk.h5"))
        expectError(HDF5Error.self, containing: ["junk.h5", "not an HDF5 file"]) { _ = try H5File.open("\(dir)/junk.h5") }
        expectError(HDF5Error.self, containing: ["cannot be created"]) { _ = try H5File.create("\(dir)/no/such/dir/x.h5") }
        let f = try H5File.create("\(dir)/ok.h5")
        expectError(HDF5Error.self, containing: ["'absent'", "missing"]) { _ = try f.readFloats("absent") }
    }
}

@Suite("NLB tensor files")
struct NLBTests {
    @Test("A valid file loads with its sizes; NaN is kept as missing")
    func valid() throws {
        let path = temporaryDirectory() + "/nlb.h5"
        try writeNLB(path) { $0["train_spikes_heldin"]!.1[3] = .nan }
        let t = try NLBTensors.load(path: path)
        #expect(t.trainCount == 6 && t.bins == 5 && t.forwardBins == 2 && t.heldIn == 4 && t.heldOut == 3 && t.evalCount == 2)
        #expect(t.trainHeldIn.values[3].isNaN)
        #expect(t.trainBehavior?.channels == 2)
    }

    @Test("Training keys: eval trials bring their held-in spikes only, never their held-out neurons or forward bins")
    func evalTrialsInTraining() throws {
        let path = temporaryDirectory() + "/val-phase.h5"
        // A 'val'-phase file: it also holds the eval trials' held-out spikes, which training must not read.
        try writeNLB(path) { $0["eval_spikes_heldout"] = ([2, 5, 3], [Float](repeating: 3, count: 30)) }
        let t = try NLBTensors.load(path: path)
        let dims = DataDims(t)
        let batch = Batch<Float>(dims: dims, capacity: 3)
        batch.load(trainingKeys: [4, t.trainCount + 1, 0], from: t)
        let reference = Batch<Float>(dims: dims, capacity: 3)
        for (b, (trials, set)) in [([4], TrialSet.train), ([1], .eval), ([0], .train)].enumerated() {
            reference.load(trials: trials, split: set, from: t)
            for step in 0..<dims.steps {
                for n in 0..<dims.outputs {
                    let got = batch.targets[(step * 3 + b) * dims.outputs + n], want = reference.targets[step * dims.outputs + n]
                    if b == 1 && (n >= dims.heldIn || step >= dims.bins) {
                        #expect(got.isNaN, "eval trial, step \(step), neuron \(n): \(got), not masked")
                    } else {
                        #expect(got == want || (got.isNaN && want.isNaN), "row \(b), step \(step), neuron \(n): \(got) vs \(want)")
                    }
                }
            }
        }
    }

    @Test("Integer dtypes are read as counts")
    func integerDtype() throws {
        let path = temporaryDirectory() + "/int.h5"
        do {
            let f = try H5File.create(path)
            try f.write("train_spikes_heldin", shape: [2, 3, 2], int64s: (0..<12).map { Int64($0 % 3) })
            try f.write("train_spikes_heldout", shape: [2, 3, 1], int64s: [1, 0, 2, 0, 1, 1])
        }
        let t = try NLBTensors.load(path: path)
        #expect(t.trainHeldIn.values == (0..<12).map { Float($0 % 3) } && t.forwardBins == 0)
    }

    @Test("Missing keys, disagreeing shapes and bad counts name the file and key")
    func invalid() throws {
        let dir = temporaryDirectory()
        try writeNLB("\(dir)/missing.h5") { $0["train_spikes_heldout"] = nil }
        expectError(DataError.self, containing: ["missing.h5", "train_spikes_heldout", "found: "]) {
            _ = try NLBTensors.load(path: "\(dir)/missing.h5")
        }
        try writeNLB("\(dir)/trials.h5") { $0["train_spikes_heldout"] = ([5, 5, 3], [Float](repeating: 0, count: 75)) }
        expectError(DataError.self, containing: ["train_spikes_heldin has 6 trials", "train_spikes_heldout has 5"]) {
            _ = try NLBTensors.load(path: "\(dir)/trials.h5")
        }
        try writeNLB("\(dir)/neurons.h5") { $0["eval_spikes_heldin"] = ([2, 5, 9], [Float](repeating: 0, count: 90)) }
        expectError(DataError.self, containing: ["train_spikes_heldin has 4 neurons", "eval_spikes_heldin has 9"]) {
            _ = try NLBTensors.load(path: "\(dir)/neurons.h5")
        }
        try writeNLB("\(dir)/negative.h5") { $0["train_spikes_heldout_forward"]!.1[7] = -1 }
        expectError(DataError.self, containing: ["negative.h5", "train_spikes_heldout_forward", "-1.0", "trial 1"]) {
            _ = try NLBTensors.load(path: "\(dir)/negative.h5")
        }
        try writeNLB("\(dir)/inf.h5") { $0["train_spikes_heldin"]!.1[0] = .infinity }
        expectError(DataError.self, containing: ["train_spikes_heldin", "inf", "NaN to mark a missing bin"]) {
            _ = try NLBTensors.load(path: "\(dir)/inf.h5")
        }
        try writeNLB("\(dir)/rank.h5") { $0["train_spikes_heldin"] = ([6, 20], [Float](repeating: 0, count: 120)) }
        expectError(DataError.self, containing: ["expected 3 dimensions"]) { _ = try NLBTensors.load(path: "\(dir)/rank.h5") }
        for key in ["train_spikes_heldin", "train_spikes_heldout"] {
            try writeNLB("\(dir)/\(key)-nan.h5") { $0[key]!.1 = $0[key]!.1.map { _ in .nan } }
            expectError(DataError.self, containing: ["\(key)-nan.h5", "'\(key)'", "every entry is NaN"]) {
                _ = try NLBTensors.load(path: "\(dir)/\(key)-nan.h5")
            }
        }
        try Data("garbage".utf8).write(to: URL(fileURLWithPath: "\(dir)/junk.h5"))
        expectError(DataError.self, containing: ["junk.h5", "not an HDF5 file"]) { _ = try NLBTensors.load(path: "\(dir)/junk.h5") }
    }

    @Test("The input file nlb_tools writes (make_*_input_tensors + save_to_h5, float32 spikes) loads")
    func nlbToolsInput() throws {
        let fixture = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("MetricsTests/Fixtures/nlbinput.h5").path
        let t = try NLBTensors.load(path: fixture)
        #expect(t.trainCount == 40 && t.evalCount == 24 && t.bins == 35 && t.forwardBins == 10 && t.heldIn == 20 && t.heldOut == 8)
        #expect(t.trainBehavior?.channels == 2 && t.evalHeldOut != nil)
    }

    @Test("The submission group: --dataset-name, else the file's dataset_name, else the NLB dataset of its shapes, else the stem with a warning")
    func submissionGroup() throws {
        #expect(Submission.nlbDataset(heldIn: 137, heldOut: 45, bins: 35) == "mc_maze_20")
        #expect(Submission.nlbDataset(heldIn: 137, heldOut: 45, bins: 140) == "mc_maze")
        #expect(Submission.nlbDataset(heldIn: 98, heldOut: 32, bins: 30) == "mc_rtt_20")
        #expect(Submission.nlbDataset(heldIn: 40, heldOut: 14, bins: 75) == "dmfc_rsg_20")
        #expect(Submission.nlbDataset(heldIn: 137, heldOut: 44, bins: 35) == nil)
        let dir = temporaryDirectory()
        try writeNLB("\(dir)/mine.h5")
        let t = try NLBTensors.load(path: "\(dir)/mine.h5")
        let stem = Submission.group(dataPath: "\(dir)/mine.h5", tensors: t, explicit: nil)
        #expect(stem.name == "mine" && stem.note?.contains("--dataset-name") == true && stem.note?.contains("will not score") == true)
        #expect(Submission.group(dataPath: "\(dir)/mine.h5", tensors: t, explicit: "mc_rtt").name == "mc_rtt")
        try writeNLB("\(dir)/named.h5", datasetName: "area2_bump_20")
        let named = Submission.group(dataPath: "\(dir)/named.h5", tensors: t, explicit: nil)
        #expect(named.name == "area2_bump_20" && named.note == nil)
    }

    @Test("The Lorenz generator is seeded and writes the NLB layout")
    func lorenz() throws {
        var spec = LorenzSpec()
        spec.conditions = 3
        spec.trialsPerCondition = 5
        let a = Lorenz.generate(spec), b = Lorenz.generate(spec)
        #expect(a.tensors == b.tensors && a.truth == b.truth)
        spec.seed = 1
        #expect(Lorenz.generate(spec).tensors != a.tensors)
        let path = temporaryDirectory() + "/lorenz.h5"
        try a.write(path: path)
        let t = try NLBTensors.load(path: path)
        #expect(t.trainCount == 12 && t.evalCount == 3 && t.bins == 50 && t.forwardBins == 10 && t.heldIn == 22 && t.heldOut == 7)
        let counts = t.trainHeldIn.values
        let mean = counts.reduce(0, +) / Float(counts.count)
        #expect(mean > 0.1 && mean < 1, "mean count per bin \(mean)")
    }
}

@Suite("Checkpoints")
struct CheckpointTests {
    let dims = DataDims(bins: 5, forwardBins: 2, heldIn: 4, heldOut: 3)

    func tinyConfig(hidden: Int = 8) -> ModelConfig {
        var c = ModelConfig()
        c.hidden = hidden
        c.feedForward = 16
        return c
    }

    @Test("Write then read gives identical parameters and config; no temp file is left")
    func roundTrip() throws {
        let dir = temporaryDirectory()
        let config = tinyConfig()
        let params = ParameterSet<Float>(layout: ParameterLayout(config: config, dims: dims))
        params.initialise(seed: 5)
        try CheckpointIO.write(path: "\(dir)/c.h5", layout: params.layout, values: params.values, config: config)
        let back = ParameterSet<Float>(layout: params.layout)
        try CheckpointIO.read(path: "\(dir)/c.h5", into: back.values, layout: back.layout)
        #expect(back.values.array == params.values.array)
        #expect(try CheckpointIO.readConfig(path: "\(dir)/c.h5") == config)
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir) == ["c.h5"])
        let file = try H5File.open("\(dir)/c.h5")
        #expect(try file.shape(of: "model/decoder.self_attn.in_proj_weight") == [72, 24])
    }

    @Test("A schema-1 checkpoint (every field in `config`) still loads: the model reads its part, training the rest; schema 2 keeps `config` strict")
    func schemaOne() throws {
        let dir = temporaryDirectory()
        let model = tinyConfig()
        let params = ParameterSet<Float>(layout: ParameterLayout(config: model, dims: dims))
        params.initialise(seed: 5)
        var whole = Config(model: model)
        whole.train.learningRate = 0.005
        whole.run.maxMinutes = 12
        func write(_ path: String, config: String, schema: Int64) throws {
            let file = try H5File.create(path)
            try CheckpointIO.writeGroup("model", of: params.values, layout: params.layout, to: file)
            try file.writeAttribute("config", string: config)
            try file.writeAttribute("schema_version", int: schema)
            try file.flush()
        }
        // What an earlier lflow-dist wrote: one flat object, with a retired key at its kept value.
        let flat = whole.json().replacingOccurrences(of: "{\n", with: "{\n  \"decoderLayers\": 1,\n")
        try write("\(dir)/old.h5", config: flat, schema: 1)
        #expect(try CheckpointIO.readConfig(path: "\(dir)/old.h5") == model)
        #expect(try Config.read(checkpoint: "\(dir)/old.h5") == whole)
        // Schema 2's `config` is the model's alone: a training key there is refused by name.
        try write("\(dir)/new.h5", config: "{\"hidden\": 8, \"learningRate\": 0.1}", schema: 2)
        expectError(CheckpointError.self, containing: ["new.h5", "unknown model config key 'learningRate'"]) {
            _ = try CheckpointIO.readConfig(path: "\(dir)/new.h5")
        }
    }

    @Test("Every tensor group carries checksums; a mismatch is refused as corrupt")
    func checksums() throws {
        let dir = temporaryDirectory()
        let config = tinyConfig()
        let params = ParameterSet<Float>(layout: ParameterLayout(config: config, dims: dims))
        params.initialise(seed: 1)
        try CheckpointIO.write(path: "\(dir)/bad.h5", config: config) { file in
            try CheckpointIO.writeGroup("model", of: params.values, layout: params.layout, to: file)
            // Claim a different digest for one tensor, as a flipped bit on disk would.
            try file.writeAttribute("checksums", string: "{\"readout.bias\": \"0\"}", on: "model")
        }
        expectError(CheckpointError.self, containing: ["bad.h5", "readout.bias", "checksum", "corrupt"]) {
            try CheckpointIO.read(path: "\(dir)/bad.h5", into: params.values, layout: params.layout)
        }
        try CheckpointIO.write(path: "\(dir)/good.h5", layout: params.layout, values: params.values, config: config)
        #expect(try H5File.open("\(dir)/good.h5").readAttributeString("checksums", on: "model").contains("readout.bias"))
    }

    @Test("A checkpoint of other sizes is refused, naming the parameter")
    func mismatch() throws {
        let dir = temporaryDirectory()
        let small = ParameterSet<Float>(layout: ParameterLayout(config: tinyConfig(hidden: 8), dims: dims))
        try CheckpointIO.write(path: "\(dir)/c.h5", layout: small.layout, values: small.values, config: tinyConfig(hidden: 8))
        let big = ParameterSet<Float>(layout: ParameterLayout(config: tinyConfig(hidden: 12), dims: dims))
        expectError(CheckpointError.self, containing: ["encoder.weight_ih", "[24, 4]", "[36, 4]", "other sizes"]) {
            try CheckpointIO.read(path: "\(dir)/c.h5", into: big.values, layout: big.layout)
        }
        var linear = tinyConfig(hidden: 8)
        linear.decoder = .linear
        let noDecoder = ParameterSet<Float>(layout: ParameterLayout(config: linear, dims: dims))
        expectError(CheckpointError.self, containing: ["decoder.linear1.bias", "not in this model"]) {
            try CheckpointIO.read(path: "\(dir)/c.h5", into: noDecoder.values, layout: noDecoder.layout)
        }
    }

    @Test("Unwritable destinations and corrupt files are clear errors, and leave nothing behind")
    func failures() throws {
        let dir = temporaryDirectory()
        let config = tinyConfig()
        let params = ParameterSet<Float>(layout: ParameterLayout(config: config, dims: dims))
        expectError(CheckpointError.self, containing: ["does not exist"]) {
            try CheckpointIO.write(path: "\(dir)/missing/c.h5", layout: params.layout, values: params.values, config: config)
        }
        // A failure while writing (here: a dataset name that already exists) removes the temp file
        // and keeps the previous checkpoint.
        try CheckpointIO.write(path: "\(dir)/c.h5", layout: params.layout, values: params.values, config: config)
        expectError(CheckpointError.self, containing: ["c.h5", "Nothing was written"]) {
            try CheckpointIO.write(path: "\(dir)/c.h5", layout: params.layout, values: params.values, config: config) { file in
                try file.write("model/readout.bias", shape: [1], floats: [0])
            }
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir) == ["c.h5"])
        try CheckpointIO.read(path: "\(dir)/c.h5", into: params.values, layout: params.layout)
        // A truncated checkpoint.
        let bytes = try Data(contentsOf: URL(fileURLWithPath: "\(dir)/c.h5"))
        try bytes.prefix(bytes.count / 2).write(to: URL(fileURLWithPath: "\(dir)/half.h5"))
        expectError(CheckpointError.self, containing: ["half.h5"]) {
            try CheckpointIO.read(path: "\(dir)/half.h5", into: params.values, layout: params.layout)
        }
        expectError(CheckpointError.self, containing: ["nope.h5", "no such file"]) { _ = try CheckpointIO.readConfig(path: "\(dir)/nope.h5") }
    }
}

@Suite("Built-in defaults")
struct BuiltInTests {
    @Test("Configs/lorenz.yaml and Configs/nlb.yaml are the embedded lorenz config and NLB recipe")
    func lorenzConfig() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
        let fromFile = try ConfigFile.resolve(path: root + "/Configs/lorenz.yaml", overrides: [])
        #expect(fromFile == (try BuiltIn.lorenzConfig(overrides: [])))
        #expect(try ConfigFile.resolve(path: root + "/Configs/nlb.yaml", overrides: []) == (try BuiltIn.nlbConfig(trainTrials: 1500, overrides: [])))
        for name in ["tiny", "mc_maze", "mc_rtt", "area2_bump", "dmfc_rsg"] {
            _ = try ConfigFile.resolve(path: root + "/Configs/\(name).yaml", overrides: [])
        }
    }

    @Test("base: profiles and files apply first, in order; the file's own keys win; spec is the defaults; cycles and unknown bases are refused")
    func profiles() throws {
        let dir = temporaryDirectory()
        func write(_ name: String, _ text: String) throws { try text.write(toFile: "\(dir)/\(name).yaml", atomically: true, encoding: .utf8) }
        try write("spec", "base: spec\n")
        var spec = Config()
        spec.model.precision = .float32
        #expect(try ConfigFile.resolve(path: "\(dir)/spec.yaml", overrides: []) == spec)
        try write("parent", "base: nlb\nhidden: 64\ncdKeep: 0.6\n")
        try write("child", "base: [parent, smallData]\ncdKeep: 0.7\n")
        let child = try ConfigFile.resolve(path: "\(dir)/child.yaml", overrides: [])
        let expected = try BuiltIn.nlbConfig(trainTrials: 0, overrides: ["hidden=64", "cdKeep=0.7"])
        #expect(child == expected)
        try write("a", "base: b\n")
        try write("b", "base: a\n")
        expectError(ConfigError.self, containing: ["leads back to itself", "a.yaml"]) { _ = try ConfigFile.resolve(path: "\(dir)/a.yaml", overrides: []) }
        try write("unknown", "base: mc_mace\n")
        expectError(ConfigError.self, containing: ["mc_mace", "neither a profile", "nlb, smallData, spec"]) {
            _ = try ConfigFile.resolve(path: "\(dir)/unknown.yaml", overrides: [])
        }
    }

    @Test("The small-data rule: the built-in recipe applies it under the threshold only, and the small presets' configs carry it")
    func smallData() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
        let large = try BuiltIn.nlbConfig(trainTrials: SmallData.trainTrialThreshold, overrides: [])
        #expect(large == (try ConfigFile.resolve(path: root + "/Configs/nlb.yaml", overrides: [])))
        let small = try BuiltIn.nlbConfig(trainTrials: SmallData.trainTrialThreshold - 1, overrides: [])
        #expect(small == (try ConfigFile.resolve(path: root + "/Configs/nlb.yaml", overrides: SmallData.overrides)))
        #expect(small != large)
        // The command line still wins over the rule.
        #expect(try BuiltIn.nlbConfig(trainTrials: 75, overrides: ["evalTrials=ignore"]).train.evalTrials == .ignore)
        // mc_maze_{small,medium,large}.yaml are mc_maze.yaml with the rule; area2_bump.yaml has it.
        let maze = try ConfigFile.resolve(path: root + "/Configs/mc_maze.yaml", overrides: SmallData.overrides)
        for size in ["small", "medium", "large"] {
            #expect(try ConfigFile.resolve(path: root + "/Configs/mc_maze_\(size).yaml", overrides: []) == maze, "mc_maze_\(size).yaml")
        }
        let area2 = try ConfigFile.resolve(path: root + "/Configs/area2_bump.yaml", overrides: [])
        #expect(area2 == (try ConfigFile.resolve(path: root + "/Configs/area2_bump.yaml", overrides: SmallData.overrides)))
        // The run's note: present under the threshold only, and it names what a config lacks.
        #expect(SmallData.note(trainTrials: 1500, trainingTrials: 1200, parameters: 100_000, config: large) == nil)
        let lacking = try #require(SmallData.note(trainTrials: 75, trainingTrials: 60, parameters: 100_000, config: large))
        #expect(lacking.contains("75 train trials") && lacking.contains("--set evalTrials=heldIn"))
        let having = try #require(SmallData.note(trainTrials: 75, trainingTrials: 60, parameters: 100_000, config: small))
        #expect(having.contains("has the small-data settings") && !having.contains("--set"))
    }
}
