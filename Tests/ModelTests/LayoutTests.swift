import Testing
@testable import Model

@Suite("Parameter layout")
struct LayoutTests {
    @Test("Names, shapes and offsets follow the spec's state_dict")
    func layout() {
        var c = ModelConfig()
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
        let c = ModelConfig()
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
