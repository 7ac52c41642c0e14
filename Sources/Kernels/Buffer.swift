// Kernels: flat buffers, the Float/Double scalar protocol, the GEMM entry point (oneDNN,
// OpenBLAS), element-wise kernels, Philox noise and the phase clock. It owns arithmetic only: no
// model, file or MPI logic.

/// A fixed-size, zero-initialised, heap-allocated array of scalars with a stable address.
///
/// Every large array in the project (parameters, gradients, Adam moments, activation caches)
/// is a `Buffer`: allocated once, addressed through `ptr`, freed in `deinit`. Kernels take raw
/// pointers into these, so nothing is allocated or bounds-checked in the hot loops.
///
/// A buffer may instead be a view of part of another (`init(viewing:offset:count:)`): memory a
/// layer lends while it holds nothing another needs (see `LangevinFlow`'s shared scratch).
public final class Buffer<S: Scalar>: @unchecked Sendable {
    public let count: Int
    public let ptr: UnsafeMutablePointer<S>
    /// The buffer whose memory this one views (kept alive by it); nil when this one owns `ptr`.
    let base: Buffer<S>?

    public init(count: Int) {
        precondition(count >= 0, "Buffer count must be non-negative")
        self.count = count
        ptr = .allocate(capacity: max(count, 1))
        ptr.initialize(repeating: 0, count: max(count, 1))
        base = nil
    }

    /// `count` elements of `base` from `offset`: no memory of its own.
    public init(viewing base: Buffer<S>, offset: Int = 0, count: Int) {
        precondition(offset >= 0 && count >= 0 && offset + count <= base.count,
                     "Buffer view \(offset)..<\(offset + count) is outside its base of \(base.count)")
        self.count = count
        ptr = base.ptr + offset
        self.base = base
    }

    public convenience init(_ values: [S]) {
        self.init(count: values.count)
        values.withUnsafeBufferPointer { src in
            if let base = src.baseAddress { ptr.update(from: base, count: values.count) }
        }
    }

    deinit { if base == nil { ptr.deallocate() } }

    public var buffer: UnsafeMutableBufferPointer<S> { .init(start: ptr, count: count) }
    public var array: [S] { Array(buffer) }

    @inlinable public subscript(i: Int) -> S {
        get { ptr[i] }
        set { ptr[i] = newValue }
    }

    /// Overwrites every element with zero.
    public func zero() { ptr.update(repeating: 0, count: count) }

    /// Overwrites this buffer with `other`, which must have the same count.
    public func copy(from other: Buffer<S>) {
        precondition(other.count == count, "Buffer.copy: count \(other.count) != \(count)")
        ptr.update(from: other.ptr, count: count)
    }
}
