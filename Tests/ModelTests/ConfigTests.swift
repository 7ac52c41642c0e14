import Testing
@testable import Model

@Suite("Config")
struct ConfigTests {
    @Test("Every field round-trips through its text form and through JSON")
    func roundTrip() throws {
        var c = Config()
        try c.apply(overrides: ["hidden=32", "potential=diagonal", "mass=2.5", "encoderInput=lagged", "dynamics=firstOrder"])
        #expect(c.hidden == 32 && c.potential == .diagonal && c.mass == 2.5 && c.encoderInput == .lagged)
        let back = try Config.fromJSON(c.json(), source: "test")
        #expect(back == c)
        for field in Config.fields {
            var d = Config()
            try d.set(field.name, field.get(c))
            #expect(field.get(d) == field.get(c), "\(field.name)")
        }
    }

    @Test("Unknown keys and bad values name the key")
    func unknownKey() {
        var c = Config()
        #expect(throws: ConfigError.self) { try c.apply(overrides: ["hiden=3"]) }
        do { try c.apply(overrides: ["hiden=3"]) } catch let e as ConfigError {
            #expect(e.message.contains("unknown config key 'hiden'") && e.message.contains("hidden"))
        } catch { Issue.record("wrong error \(error)") }
        do { try c.apply(overrides: ["mass=heavy"]) } catch let e as ConfigError {
            #expect(e.message.contains("mass must be a finite number"))
        } catch { Issue.record("wrong error \(error)") }
        do { try c.apply(overrides: ["potential=ring"]) } catch let e as ConfigError {
            #expect(e.message.contains("allPairs, diagonal"))
        } catch { Issue.record("wrong error \(error)") }
        #expect(throws: ConfigError.self) { try c.apply(overrides: ["novalue"]) }
    }

    @Test("Impossible configs are refused with the reason",
          arguments: [("mass=0", "mass must be > 0"), ("mass=-1", "mass must be > 0"),
                      ("damping=1", "damping must be in [0, 1)"), ("damping=-0.1", "damping must be in [0, 1)"),
                      ("hidden=30", "divisible by groups"), ("heads=11", "divisible by heads"),
                      ("kernelSize=2", "kernelSize must be odd"), ("cdKeep=0", "cdKeep must be in (0, 1]"),
                      ("factors=-1", "factors must be 0"), ("factors=841", "decoder width 840")])
    func impossible(override: String, expected: String) throws {
        var c = Config()
        try c.apply(overrides: [override])
        do {
            try c.validate()
            Issue.record("\(override) was accepted")
        } catch let e as ConfigError {
            #expect(e.message.contains(expected), "\(e.message)")
        }
    }

    @Test("Retired options load at the value every run now has, and any other value is refused with what replaced it",
          arguments: [("decoderLayers", "1", "3", "The decoder has one layer"), ("lrSchedule", "plateau", "cosine", "plateau schedule"),
                      ("validationMetric", "heldOut", "loss", "held-out NLL")])
    func retired(name: String, kept: String, other: String, replacement: String) throws {
        var c = Config()
        try c.set(name, kept, source: "old.yaml")
        #expect(c == Config())
        // A checkpoint of an earlier version stores every field, so its JSON carries them too.
        #expect(try Config.fromJSON("{\"\(name)\": \"\(kept)\", \"hidden\": 64}", source: "old.h5").hidden == 64)
        do {
            try c.set(name, other, source: "old.yaml")
            Issue.record("\(name)=\(other) was accepted")
        } catch let e as ConfigError {
            #expect(e.message.contains("old.yaml: \(name) \(other): \(name) was retired"), "\(e.message)")
            #expect(e.message.contains(replacement), "\(e.message)")
        }
    }

    @Test("cdGradient's old value name spec reads as droppedAndSampled, and is never written")
    func cdGradientAlias() throws {
        var c = Config()
        c.cdGradient = .dropped
        try c.set("cdGradient", "spec")
        #expect(c.cdGradient == .droppedAndSampled)
        #expect(c.json().contains("\"cdGradient\": \"droppedAndSampled\""))
    }

    @Test("The defaults validate, their integrator is stable on MC_Maze's 45 steps, and the decoder reads [z, v, h]")
    func defaults() throws {
        var c = Config()
        try c.validate()
        #expect(LangevinStability.problem(c, steps: 45) == nil)
        #expect(c.decoderWidth == 3 * c.hidden)
        c.decoderInput = .zv
        #expect(c.decoderWidth == 2 * c.hidden)
        c.dynamics = .firstOrder
        #expect(c.decoderWidth == c.hidden)
    }
}

@Suite("Parameter layout")
struct LayoutTests {
    @Test("Names, shapes and offsets follow the spec's state_dict")
    func layout() {
        var c = Config()
        c.hidden = 8
        c.feedForward = 16
        let dims = DataDims(bins: 5, forwardBins: 2, heldIn: 7, heldOut: 3)
        let layout = ParameterLayout(config: c, dims: dims)
        #expect(layout["encoder.weight_ih"]?.shape == [24, 7])
        #expect(layout["encoder.weight_hh"]?.shape == [24, 8])
        #expect(layout["linear_v_logvar.weight"]?.shape == [8, 8])
        #expect(layout["potential.conv_z"]?.shape == [4, 4, 3])
        #expect(layout["decoder.self_attn.in_proj_weight"]?.shape == [72, 24])
        #expect(layout["decoder.linear1.weight"]?.shape == [16, 24])
        #expect(layout["decoder.linear2.weight"]?.shape == [24, 16])
        #expect(layout["readout.weight"]?.shape == [10, 24])
        var offset = 0
        for e in layout.entries {
            #expect(e.offset == offset)
            offset += e.count
        }
        #expect(layout.totalCount == offset)
        #expect(layout.entries.count == 4 + 8 + 1 + 12 + 2)
        c.decoder = .linear
        c.dynamics = .firstOrder
        let small = ParameterLayout(config: c, dims: dims)
        #expect(small["decoder.norm1.weight"] == nil && small["linear_v_means.weight"] == nil)
        #expect(small["readout.weight"]?.shape == [10, 16])
        c.factors = 5
        let factored = ParameterLayout(config: c, dims: dims)
        #expect(factored["factors.weight"]?.shape == [5, 16])
        #expect(factored["readout.weight"]?.shape == [10, 5])
        #expect(factored.entries.map(\.name).suffix(3) == ["factors.weight", "readout.weight", "readout.bias"])
    }

    @Test("Seeded initialisation is reproducible and follows PyTorch's bounds")
    func initialisation() {
        let c = Config()
        let dims = DataDims(bins: 35, forwardBins: 10, heldIn: 137, heldOut: 45)
        let layout = ParameterLayout(config: c, dims: dims)
        let a = ParameterSet<Float>(layout: layout), b = ParameterSet<Float>(layout: layout), other = ParameterSet<Float>(layout: layout)
        a.initialise(seed: 1)
        b.initialise(seed: 1)
        other.initialise(seed: 2)
        #expect(a.values.array == b.values.array)
        #expect(a.values.array != other.values.array)
        let hh = layout["encoder.weight_hh"]!
        let bound = Float(1 / Double(280).squareRoot())
        let values = a.values.array[hh.range]
        #expect(values.allSatisfy { abs($0) <= bound } && values.max()! > 0.9 * bound)
        let norm = layout["decoder.norm1.weight"]!
        #expect(a.values.array[norm.range].allSatisfy { $0 == 1 })
        let inBias = layout["decoder.self_attn.in_proj_bias"]!
        #expect(a.values.array[inBias.range].allSatisfy { $0 == 0 })
        let conv = a.values.array[layout["potential.conv_z"]!.range].map(Double.init)
        let std = (conv.map { $0 * $0 }.reduce(0, +) / Double(conv.count)).squareRoot()
        #expect(std > 0.05 && std < 0.16, "conv_z std \(std)")
    }
}
