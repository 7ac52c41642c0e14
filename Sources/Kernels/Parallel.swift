import CBLAS
import Dispatch

/// Element-wise work split over the cores that BLAS uses (OpenBLAS threads), so that with
/// 2 threads the parts of a step between matrix products are not single-threaded. With one
/// thread (one rank per core under mpirun) everything runs inline.
///
/// Only pure maps go through here: each output element is computed by the same instructions
/// whatever the split, so results are bit-identical at any thread count. Reductions stay serial.
public enum Parallel {
    /// Worker count; `setBLASThreads` keeps it equal to the BLAS thread count.
    public static var workers: Int {
        get { scopedWorkers ?? configuredWorkers }
        set { configuredWorkers = max(1, newValue) }
    }
    nonisolated(unsafe) static var configuredWorkers = max(1, Int(openblas_get_num_threads()))

    /// A worker count for the current task only (tests compare counts side by side without
    /// touching the process-wide setting): `Parallel.$scopedWorkers.withValue(3) { ... }`.
    @TaskLocal public static var scopedWorkers: Int?

    /// Calls `body(i)` for every i in 0..<count, in `workers` contiguous chunks.
    @inlinable
    public static func forEach(_ count: Int, _ body: (Int) -> Void) {
        let chunks = min(workers, count)
        guard chunks > 1 else {
            for i in 0..<count { body(i) }
            return
        }
        // The chunks touch disjoint outputs (the callers' contract), so sharing `body` across
        // the workers is safe although the compiler cannot prove it.
        withoutActuallyEscaping(body) { body in
            nonisolated(unsafe) let body = body
            DispatchQueue.concurrentPerform(iterations: chunks) { chunk in
                for i in (count * chunk / chunks)..<(count * (chunk + 1) / chunks) { body(i) }
            }
        }
    }

    /// Calls `body(range)` on `workers` contiguous ranges covering 0..<count (for flat loops
    /// whose iterations are too cheap to dispatch one by one). Small counts run inline.
    @inlinable
    public static func ranges(_ count: Int, minimum: Int = 16_384, _ body: (Range<Int>) -> Void) {
        let chunks = min(workers, count / max(minimum, 1))
        guard chunks > 1 else {
            body(0..<count)
            return
        }
        withoutActuallyEscaping(body) { body in
            nonisolated(unsafe) let body = body
            DispatchQueue.concurrentPerform(iterations: chunks) { chunk in
                body((count * chunk / chunks)..<(count * (chunk + 1) / chunks))
            }
        }
    }
}
