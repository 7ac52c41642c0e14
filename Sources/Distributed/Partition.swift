/// How work splits over ranks: the one rule for every split (the trials of a global batch, the
/// chunks of a prediction, the neurons of the baseline). `count` items go to `parts` contiguous
/// ranges in order, the first `count % parts` of them one item longer, so the parts in rank
/// order are the items in order, and no part is more than one item longer than another.
public struct Partition: Equatable, Sendable {
    public let count: Int
    public let parts: Int

    public init(count: Int, parts: Int) {
        precondition(count >= 0 && parts >= 1, "a partition of \(count) items into \(parts) parts")
        self.count = count
        self.parts = parts
    }

    /// The items of part `part`.
    public func range(_ part: Int) -> Range<Int> {
        let base = count / parts, extra = count % parts
        let start = part * base + min(part, extra)
        return start..<(start + base + (part < extra ? 1 : 0))
    }

    /// The size of every part, in order.
    public var sizes: [Int] { (0..<parts).map { range($0).count } }
}

extension Communicator {
    /// This rank's share of `count` items.
    public func share(of count: Int) -> Range<Int> { Partition(count: count, parts: size).range(rank) }

    /// This rank's contiguous share of `items`.
    public func share<T>(_ items: [T]) -> [T] { Array(items[share(of: items.count)]) }
}
