import Testing
@testable import Model
@testable import Training
import Support

@Suite("Config")
struct ConfigTests {
    @Test("Every field round-trips through its text form and through JSON")
    func roundTrip() throws {
        var c = Config()
        try c.apply(overrides: ["hidden=32", "potential=diagonal", "mass=2.5", "encoderInput=lagged", "dynamics=firstOrder"])
        #expect(c.model.hidden == 32 && c.model.potential == .diagonal && c.model.mass == 2.5 && c.model.encoderInput == .lagged)
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
        #expect(try Config.fromJSON("{\"\(name)\": \"\(kept)\", \"hidden\": 64}", source: "old.h5").model.hidden == 64)
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
        c.model.cdGradient = .dropped
        try c.set("cdGradient", "spec")
        #expect(c.model.cdGradient == .droppedAndSampled)
        #expect(c.json().contains("\"cdGradient\": \"droppedAndSampled\""))
    }

    @Test("The defaults validate, their integrator is stable on MC_Maze's 45 steps, and the decoder reads [z, v, h]")
    func defaults() throws {
        var c = Config()
        try c.validate()
        #expect(LangevinStability.problem(c.model, steps: 45) == nil)
        #expect(c.model.decoderWidth == 3 * c.model.hidden)
        c.model.decoderInput = .zv
        #expect(c.model.decoderWidth == 2 * c.model.hidden)
        c.model.dynamics = .firstOrder
        #expect(c.model.decoderWidth == c.model.hidden)
    }

    @Test("KL and weight-decay warm-up")
    func schedules() {
        var c = Config()
        c.model.klWeight = 0.1
        c.train.klWarmupEpochs = 500
        c.train.weightDecay = 2e-5
        c.train.weightDecayWarmupEpochs = 500
        #expect(c.klWeight(atEpoch: 0) == 0)
        #expect(abs(c.klWeight(atEpoch: 250) - 0.05) < 1e-15)
        #expect(c.klWeight(atEpoch: 900) == 0.1)
        #expect(abs(c.weightDecay(atEpoch: 100) - 4e-6) < 1e-18)
        c.train.klWarmupEpochs = 0
        #expect(c.klWeight(atEpoch: 0) == 0.1)
    }
}
