/// The sizes that come from the data rather than the config.
public struct DataDims: Equatable, Sendable {
    /// T: observed bins per trial.
    public var bins: Int
    /// F: forward-prediction bins after the window.
    public var forwardBins: Int
    /// Nin: held-in neurons (the encoder's input).
    public var heldIn: Int
    /// Nho: held-out neurons (predicted, never seen by the encoder).
    public var heldOut: Int

    public init(bins: Int, forwardBins: Int, heldIn: Int, heldOut: Int) {
        self.bins = bins
        self.forwardBins = forwardBins
        self.heldIn = heldIn
        self.heldOut = heldOut
    }

    /// T + F: the steps the model runs.
    public var steps: Int { bins + forwardBins }
    /// Nout = Nin + Nho.
    public var outputs: Int { heldIn + heldOut }
}

/// How a parameter tensor is initialised (PyTorch defaults, spec "Initialisation").
public enum InitRule: Equatable, Sendable {
    /// U(-bound, bound)
    case uniform(Double)
    /// N(0, std²)
    case normal(Double)
    case constant(Double)
}

/// One named parameter tensor inside the flat buffers.
public struct ParameterEntry: Equatable, Sendable {
    /// PyTorch state_dict name, e.g. `encoder.weight_ih`.
    public let name: String
    /// PyTorch shape, row-major.
    public let shape: [Int]
    /// Offset of the first element in every flat role buffer (values, grads, Adam m and v).
    public let offset: Int
    public let initRule: InitRule
    public var count: Int { shape.reduce(1, *) }
    public var range: Range<Int> { offset..<(offset + count) }
}

/// A parameter tensor's place in the flat buffers, resolved by name once (at layer
/// construction) so that the training step does no name lookups.
public struct ParameterSlot: Equatable, Sendable {
    public let offset: Int
    public let count: Int
}

/// The single source of truth for the parameters: names, shapes, offsets and initialisation.
/// Allocation, initialisation, checkpoint names and gradient-check names all derive from it.
public struct ParameterLayout: Equatable, Sendable {
    public let entries: [ParameterEntry]
    public let totalCount: Int
    private let index: [String: Int]

    init(_ items: [(String, [Int], InitRule)]) {
        var offset = 0
        var entries: [ParameterEntry] = []
        for (name, shape, rule) in items {
            let entry = ParameterEntry(name: name, shape: shape, offset: offset, initRule: rule)
            entries.append(entry)
            offset += entry.count
        }
        self.entries = entries
        totalCount = offset
        index = Dictionary(uniqueKeysWithValues: entries.enumerated().map { ($1.name, $0) })
    }

    public subscript(name: String) -> ParameterEntry? { index[name].map { entries[$0] } }

    /// The slot of a parameter the layout must have (a missing name is a programming error).
    public func slot(_ name: String) -> ParameterSlot {
        guard let entry = self[name] else { preconditionFailure("no parameter named \(name) in this layout") }
        return ParameterSlot(offset: entry.offset, count: entry.count)
    }

    /// The LangevinFlow layout for a config and data sizes, in the spec's order.
    public init(config c: ModelConfig, dims: DataDims) {
        let h = c.hidden, d = c.decoderWidth, nIn = dims.heldIn, nOut = dims.outputs
        func linearBound(_ fanIn: Int) -> InitRule { .uniform(1 / Double(fanIn).squareRoot()) }
        // T-Fixup (spec "Initialisation"): linear1, linear2 and out_proj weights × 0.67·3^(-1/4).
        let tFixup = 0.67 * 1 / Double.root4(3)
        var items: [(String, [Int], InitRule)] = []
        // GRUCell: every tensor U(-1/√H, 1/√H), as torch.nn.GRUCell.reset_parameters; the
        // spec's `encoder.*`, then with `encoder: bidirectional` the reverse GRU's, the same shapes.
        for reversed in c.encoder == .bidirectional ? [false, true] : [false] {
            let p = GRUEncoder<Double>.prefix(reversed: reversed)
            items += [
                ("\(p).weight_ih", [3 * h, nIn], linearBound(h)),
                ("\(p).weight_hh", [3 * h, h], linearBound(h)),
                ("\(p).bias_ih", [3 * h], linearBound(h)),
                ("\(p).bias_hh", [3 * h], linearBound(h)),
            ]
        }
        let heads = c.dynamics == .secondOrder
            ? ["linear_z_means", "linear_z_logvar", "linear_v_means", "linear_v_logvar"]
            : ["linear_z_means", "linear_z_logvar"]
        for head in heads {
            items.append(("\(head).weight", [h, h], linearBound(h)))
            items.append(("\(head).bias", [h], linearBound(h)))
        }
        // posterior perStep: the innovation heads on h_t, the initial heads' shapes and rules.
        if c.posterior == .perStep {
            for head in ["linear_u_means", "linear_u_logvar"] {
                items.append(("\(head).weight", [h, h], linearBound(h)))
                items.append(("\(head).bias", [h], linearBound(h)))
            }
        }
        items.append(("potential.conv_z", [c.groups, c.groups, c.kernelSize], .normal(0.1)))
        // potentialInput spikes: φ = nn.Sequential(KernelNormalizedLinear(Nin, H), ReLU,
        // KernelNormalizedLinear(H, H)), so its entries are layer_x.0 and layer_x.2 (nn.Linear's init).
        if c.potentialInput == .spikes {
            items += [
                ("potential.layer_x.0.weight", [h, nIn], linearBound(nIn)),
                ("potential.layer_x.0.bias", [h], linearBound(nIn)),
                ("potential.layer_x.2.weight", [h, h], linearBound(h)),
                ("potential.layer_x.2.bias", [h], linearBound(h)),
            ]
        }
        if c.decoder == .transformer {
            let f = c.feedForward
            do {
                let p = TransformerLayer<Double>.prefix
                items += [
                    // xavier_uniform on (3D, D): bound √(6 / (D + 3D)); bias zero.
                    ("\(p)self_attn.in_proj_weight", [3 * d, d], .uniform((6.0 / Double(4 * d)).squareRoot())),
                    ("\(p)self_attn.in_proj_bias", [3 * d], .constant(0)),
                    ("\(p)self_attn.out_proj.weight", [d, d], .uniform(tFixup / Double(d).squareRoot())),
                    ("\(p)self_attn.out_proj.bias", [d], .constant(0)),
                    ("\(p)linear1.weight", [f, d], .uniform(tFixup / Double(d).squareRoot())),
                    ("\(p)linear1.bias", [f], linearBound(d)),
                    ("\(p)linear2.weight", [d, f], .uniform(tFixup / Double(f).squareRoot())),
                    ("\(p)linear2.bias", [d], linearBound(f)),
                    ("\(p)norm1.weight", [d], .constant(1)),
                    ("\(p)norm1.bias", [d], .constant(0)),
                    ("\(p)norm2.weight", [d], .constant(1)),
                    ("\(p)norm2.bias", [d], .constant(0)),
                ]
            }
        }
        // With factors F > 0: a bias-free D→F map, then the readout from F (nn.Linear's init).
        if c.factors > 0 { items.append(("factors.weight", [c.factors, d], linearBound(d))) }
        let r = c.factors > 0 ? c.factors : d
        items.append(("readout.weight", [nOut, r], linearBound(r)))
        items.append(("readout.bias", [nOut], linearBound(r)))
        self.init(items)
    }
}

private extension Double {
    static func root4(_ x: Double) -> Double { x.squareRoot().squareRoot() }
}
