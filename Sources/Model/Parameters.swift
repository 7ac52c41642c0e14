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

    @inlinable public func value(_ slot: ParameterSlot) -> UnsafeMutablePointer<S> { values.ptr + slot.offset }
    @inlinable public func grad(_ slot: ParameterSlot) -> UnsafeMutablePointer<S> { grads.ptr + slot.offset }

    /// By name, for tests and tools; layers resolve slots once instead.
    public func value(_ name: String) -> UnsafeMutablePointer<S> { value(layout.slot(name)) }
    public func grad(_ name: String) -> UnsafeMutablePointer<S> { grad(layout.slot(name)) }
}
