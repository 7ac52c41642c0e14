import CMPI
import CShims
import Foundation
#if canImport(Glibc)
import Glibc
#endif

// GradientReduction: the sum over ranks of the flat gradient buffer, as a training step takes it.
// It owns three things:
//  - the summation order: every element is summed in rank order, ((g₀ + g₁) + g₂) + … in Float,
//    wherever it falls (`allreduceSumInRankOrder`: a reduce-scatter by MPI_Alltoallv, the local sum
//    in rank order, then MPI_Allgatherv; the bytes a ring moves). So cutting the buffer into
//    buckets changes no bit. At 2 ranks it is a + b, what any MPI allreduce computes, so there it
//    is MPI_Iallreduce itself.
//  - the buckets: fixed cuts of the buffer (the layer groups' starts), the same on every rank,
//    handed over as the backward reports each group complete (`final(from:)`): the buffer is in
//    Layout order, the backward in reverse layer order (readout, decoder, dynamics, encoder), so
//    the buckets go from the end of the buffer to its start. A rank without a slice in a step
//    hands them all over at `finish`, the same buckets in the same order, so the collectives match.
//  - the communication thread that reduces them while the backward goes on, polling MPI (Open MPI
//    makes no progress on its own). MPI runs at MPI_THREAD_SERIALIZED: while a step's buckets are
//    in flight only this thread calls MPI, and the step waits for the last bucket (`finish`)
//    before anything else calls MPI. With `overlap` off the whole buffer is reduced at `finish` on
//    the caller's thread, in the same order: the same bits. With 1 rank there is nothing to send.
//    While the backward computes, the thread sleeps between its tests of MPI (50 µs doubling to
//    1 ms), leaving the core to the computation; once the step waits for it, it spins as a
//    blocking collective would.

/// The gradient reduction of one training step (see the file's comment).
public final class GradientReduction {
    public let overlap: Bool
    let comm: Communicator
    let buffer: UnsafeMutablePointer<Float>
    let count: Int
    /// Where the buckets start, falling, the last 0: bucket k is starts[k] ..< starts[k−1] (count for k = 0).
    public let starts: [Int]
    /// The buckets handed over in this step.
    var handedOver = 0
    let worker: Worker?

    /// `buffer` (`count` floats) is reduced in place, every step. `overlap`: by a communication
    /// thread, in buckets cut at `bucketStarts` during the backward; else all at once in `finish`.
    public init(comm: Communicator, buffer: UnsafeMutablePointer<Float>, count: Int, bucketStarts: [Int], overlap: Bool) {
        self.comm = comm
        self.buffer = buffer
        self.count = count
        self.overlap = overlap
        starts = Set(bucketStarts.filter { $0 > 0 && $0 < count }).sorted(by: >) + [0]
        if overlap {
            let worker = Worker(comm: comm, buffer: buffer)
            let thread = Thread { worker.run() }
            thread.name = "gradient reduction"
            thread.start()
            self.worker = worker
        } else {
            worker = nil
        }
    }

    deinit { worker?.stop() }

    /// A step begins: nothing of the buffer is final yet. Fails when the MPI library cannot
    /// give the communication thread what it needs.
    public func begin() throws {
        if overlap && !comm.allowsCommunicationThread {
            throw CommunicatorError("overlapAllreduce: on needs MPI_THREAD_SERIALIZED, and this MPI library provides less "
                                    + "(MPI_Query_thread): use an MPI built with thread support, or set overlapAllreduce: off")
        }
        handedOver = 0
    }

    /// Everything from `offset` to the end of the buffer is final: the buckets inside it not
    /// handed over yet are reduced from now on (with `overlap`).
    public func final(from offset: Int) {
        guard let worker else { return }
        while handedOver < starts.count && starts[handedOver] >= offset {
            worker.enqueue(starts[handedOver]..<(handedOver == 0 ? count : starts[handedOver - 1]))
            handedOver += 1
        }
    }

    /// The rest of the buffer is final: reduces it and waits for every bucket. Throws what a
    /// bucket's reduction threw (a `CollectiveTimeout`, an MPI error).
    public func finish() throws {
        guard let worker else {
            try comm.allreduceSumInRankOrder(buffer, count: count)
            return
        }
        final(from: 0)
        try worker.waitUntilIdle()
    }

    /// The communication thread's side: a queue of buckets, reduced in the order given (every
    /// rank hands over the same buckets in the same order, so the collectives match).
    final class Worker: @unchecked Sendable {
        let comm: Communicator
        let buffer: UnsafeMutablePointer<Float>
        let condition = NSCondition()
        var queue: [Range<Int>] = []
        /// `waiting`: the step waits in `finish` (the thread may spin on MPI; before, it naps
        /// between tests and leaves the core to the backward).
        var busy = false, stopping = false, waiting = false
        var failure: Error?

        init(comm: Communicator, buffer: UnsafeMutablePointer<Float>) {
            self.comm = comm
            self.buffer = buffer
        }

        func enqueue(_ bucket: Range<Int>) {
            condition.lock()
            queue.append(bucket)
            condition.broadcast()
            condition.unlock()
        }

        func waitUntilIdle() throws {
            condition.lock()
            waiting = true
            while busy || !queue.isEmpty { condition.wait() }
            waiting = false
            let failure = self.failure
            self.failure = nil
            condition.unlock()
            if let failure { throw failure }
        }

        func stop() {
            condition.lock()
            stopping = true
            condition.broadcast()
            condition.unlock()
        }

        func run() {
            condition.lock()
            while true {
                while queue.isEmpty && !stopping { condition.wait() }
                if queue.isEmpty { break }
                let bucket = queue.removeFirst()
                // After a failure the step throws it; the rest of its buckets are not reduced.
                let skip = failure != nil
                busy = true
                condition.unlock()
                var error: Error?
                if !skip {
                    do {
                        try comm.allreduceSumInRankOrder(buffer + bucket.lowerBound, count: bucket.count, spin: { [unowned self] in
                            condition.lock()
                            defer { condition.unlock() }
                            return waiting
                        })
                    } catch let e { error = e }
                }
                condition.lock()
                busy = false
                if let error, failure == nil { failure = error }
                condition.broadcast()
            }
            condition.unlock()
        }
    }
}

extension MPICommunicator {
    public var allowsCommunicationThread: Bool {
        var level: Int32 = 0
        MPI_Query_thread(&level)
        return level >= lf_mpi_thread_serialized()
    }

    /// Rank r owns elements [r·count/p, (r+1)·count/p) of the buffer: it receives that segment
    /// from every rank (MPI_Alltoallv), sums it in rank order and sends the sum to every rank
    /// (MPI_Allgatherv in place). Each rank sends and receives 2(p−1)/p of the buffer, as in a ring.
    public func allreduceSumInRankOrder(_ buffer: UnsafeMutablePointer<Float>, count: Int, spin: () -> Bool) throws {
        guard size > 1, count > 0 else { return }
        let p = size
        // Two ranks: every element is g₀ + g₁ whichever rank adds it (IEEE addition commutes),
        // so MPI's own allreduce is already the rank-ordered sum, in one collective instead of two.
        if p == 2 {
            try polled("MPI_Iallreduce (the rank-ordered sum of 2 ranks) of \(count) floats", spin: spin) {
                MPI_Iallreduce(lf_mpi_in_place(), buffer, Int32(count), lf_mpi_float(), lf_mpi_sum(), comm, $0)
            }
            return
        }
        let counts = UnsafeMutablePointer<Int32>.allocate(capacity: 4 * p)
        defer { counts.deallocate() }
        let offsets = counts + p, receiveCounts = counts + 2 * p, receiveOffsets = counts + 3 * p
        for r in 0..<p {
            let start = r * count / p, end = (r + 1) * count / p
            offsets[r] = Int32(start)
            counts[r] = Int32(end - start)
        }
        let mine = Int(counts[rank])
        for r in 0..<p {
            receiveCounts[r] = Int32(mine)
            receiveOffsets[r] = Int32(r * mine)
        }
        if orderedScratchCount < p * mine {
            orderedScratch?.deallocate()
            orderedScratch = .allocate(capacity: p * mine)
            orderedScratchCount = p * mine
        }
        let scratch = orderedScratch!
        // Non-blocking and polled even without a deadline: a blocking collective would spin on
        // the core the backward computes on.
        try polled("MPI_Ialltoallv (the rank-ordered sum's reduce-scatter) of \(count) floats", spin: spin) {
            MPI_Ialltoallv(buffer, counts, offsets, lf_mpi_float(), scratch, receiveCounts, receiveOffsets, lf_mpi_float(), comm, $0)
        }
        // g₀ + g₁ + … + g_{p−1} for each element of this rank's segment, in that order.
        let out = buffer + Int(offsets[rank])
        out.update(from: scratch, count: mine)
        for r in 1..<p {
            let g = scratch + r * mine
            for j in 0..<mine { out[j] += g[j] }
        }
        try polled("MPI_Iallgatherv (the rank-ordered sum's gather) of \(count) floats", spin: spin) {
            MPI_Iallgatherv(lf_mpi_in_place(), 0, lf_mpi_float(), buffer, counts, offsets, lf_mpi_float(), comm, $0)
        }
    }

    /// Starts a non-blocking collective and waits for it (with the watchdog's deadline, if any).
    func polled(_ name: @autoclosure () -> String, spin: () -> Bool, start: (UnsafeMutablePointer<MPI_Request?>) -> Int32) throws {
        var request: MPI_Request?
        try check(start(&request), name())
        try wait(&request, name(), deadline: deadline, spin: spin)
    }
}
