import Kernels

/// The model's parameters and their gradients: two flat buffers with the layout's offsets.
public final class ParameterSet<S: Scalar> {
    public let layout: ParameterLayout
    /// Every parameter, concatenated in layout order.
    public let values: Buffer<S>
    /// Gradients, same layout as `values`. The model accumulates into it; the trainer zeroes it.
    public let grads: Buffer<S>

    public init(layout: ParameterLayout) {
        self.layout = layout
        values = Buffer(count: layout.totalCount)
        grads = Buffer(count: layout.totalCount)
    }

    /// Seeded PyTorch-default initialisation (spec "Initialisation"). Tensor i of the layout
    /// draws from its own keyed stream, so adding a tensor never shifts another's values.
    public func initialise(seed: Int) {
        let stream = NoiseStream(seed: UInt64(seed), purpose: .initialisation)
        for (i, entry) in layout.entries.enumerated() {
            let p = values.ptr + entry.offset
            switch entry.initRule {
            case .constant(let c):
                p.update(repeating: S(c), count: entry.count)
            case .uniform(let bound):
                stream.fillUniform(trial: i, into: p, count: entry.count)
                for j in 0..<entry.count { p[j] = S(bound) * (2 * p[j] - 1) }
            case .normal(let std):
                stream.fillNormal(trial: i, into: p, count: entry.count)
                for j in 0..<entry.count { p[j] *= S(std) }
            }
        }
    }

    public func value(_ name: String) -> UnsafeMutablePointer<S> { values.ptr + offset(name) }
    public func grad(_ name: String) -> UnsafeMutablePointer<S> { grads.ptr + offset(name) }

    private func offset(_ name: String) -> Int {
        guard let entry = layout[name] else { preconditionFailure("no parameter named \(name) in this layout") }
        return entry.offset
    }
}
