import CBLAS
import CDNNL
import CKernels
#if canImport(Glibc)
import Glibc
#endif

/// The precision of the large matrix products: float32, or bfloat16 operands with float32
/// accumulation and output (everything else stays float32). `auto` is a setting, not an
/// arithmetic: a run resolves it to the faster of the two on its CPU, measured at its own shapes
/// (`PrecisionProbe`, Training's `PrecisionChoice`); a product given `auto` runs float32.
public enum Precision: String, CaseIterable, Sendable {
    case auto, float32, bf16

    /// The two arithmetics a product runs in (every case but `auto`).
    public static let arithmetics: [Precision] = [.float32, .bf16]
}

/// oneDNN's matmul primitive behind `Float.gemm`: row-major C ← α·op(A)·op(B) + β·C with
/// transposes expressed as strides, β through a `sum` post-op and α through output scales.
///
/// Primitives are created once per (shape, leading dimensions, transposes, α, β, precision) and
/// kept; each call wraps the caller's pointers in memory objects and executes on one stream.
/// bf16 products convert the operands into scratch buffers first (round to nearest even), in
/// slices for large operands, and run on the CPU's bf16 instructions or, without them,
/// emulated (`bf16Path`).
/// Calls are serialised by a lock: the trainer calls from one thread, and the scratch buffers
/// and the cache are shared.
public enum OneDNN {
    struct Key: Hashable {
        let transA: Bool, transB: Bool
        let m: Int, n: Int, k: Int, lda: Int, ldb: Int, ldc: Int
        let alpha: Float, beta: Float
        let precision: Precision
        /// oneDNN sizes a primitive's work for the threads it was created with.
        let threads: Int
        /// A grid of products (two batch dimensions in front), or nil for one product.
        var grid: GEMMGrid? = nil
    }

    /// A primitive with its memory objects (source, weights, destination, scratchpad), made
    /// once: a call only points them at its operands (creating four memory objects per call
    /// cost a fifth of a small product).
    struct Made {
        let primitive: dnnl_primitive_t
        let a: dnnl_memory_t, b: dnnl_memory_t, c: dnnl_memory_t, scratchpad: dnnl_memory_t
        let scratchpadBytes: Int
    }

    final class State: @unchecked Sendable {
        var engine: dnnl_engine_t?
        var stream: dnnl_stream_t?
        var primitives: [Key: Made] = [:]
        /// One scratchpad for every primitive (calls are serialised), grown to the largest need:
        /// oneDNN's own would allocate, and fault in fresh pages, at every execution.
        var scratchpad: UnsafeMutableRawPointer?, scratchpadBytes = 0
        var scratchA = UnsafeMutablePointer<UInt16>.allocate(capacity: 1), capacityA = 1
        var scratchB = UnsafeMutablePointer<UInt16>.allocate(capacity: 1), capacityB = 1
        /// A weight matrix in bf16, for `linearBackwardBF16`.
        var scratchW = UnsafeMutablePointer<UInt16>.allocate(capacity: 1), capacityW = 1
        /// Emulated bf16: the two bf16 operands of a product widened back to float32.
        var wideA = UnsafeMutablePointer<Float>.allocate(capacity: 1), capacityWideA = 1
        var wideB = UnsafeMutablePointer<Float>.allocate(capacity: 1), capacityWideB = 1
        var lock = pthread_mutex_t()
        var failure: String?
        /// The threads of every oneDNN call: OpenBLAS's thread count (OPENBLAS_NUM_THREADS),
        /// so one setting governs both libraries; `setBLASThreads` changes both.
        var threads = max(1, Int(openblas_get_num_threads()))

        init() {
            pthread_mutex_init(&lock, nil)
            guard dnnl_engine_create(&engine, dnnl_cpu, 0) == dnnl_success,
                  dnnl_stream_create(&stream, engine, dnnl_stream_default_flags.rawValue) == dnnl_success else {
                failure = "oneDNN could not create a CPU engine"
                return
            }
        }

        func scratch<T>(_ which: inout UnsafeMutablePointer<T>, _ capacity: inout Int, _ count: Int) -> UnsafeMutablePointer<T> {
            if count > capacity {
                which.deallocate()
                which = .allocate(capacity: count)
                capacity = count
            }
            return which
        }
    }

    nonisolated(unsafe) static let state = State()

    /// Whether oneDNN runs here (it creates a CPU engine).
    public static var available: Bool { state.failure == nil }

    /// How bf16 products run on this CPU. Either way they compute the same arithmetic:
    /// operands rounded to bfloat16 (nearest even) by the same conversions, products
    /// accumulated in float32; only the kernels, and so the order of the float32 sums, differ.
    public enum BF16Path: String, Sendable {
        /// oneDNN's bf16 kernels on the CPU's AVX512-BF16 (or AMX) instructions.
        case hardware
        /// The bf16 operands widened back to float32 (exactly) and multiplied by oneDNN's
        /// float32 kernels: any CPU. Slower than float32 by the conversions.
        case emulated

        /// "hardware (AVX512-BF16)" or "emulated (…)", for logs and test summaries.
        public var description: String {
            switch self {
            case .hardware: return "hardware (AVX512-BF16)"
            case .emulated:
                return lf_cpu_has_avx512_bf16() != 0
                    ? "emulated (bf16-rounded operands, float32 kernels; this CPU has AVX512-BF16 but oneDNN's ISA is capped, e.g. by DNNL_MAX_CPU_ISA)"
                    : "emulated (bf16-rounded operands, float32 kernels; this CPU has no AVX512-BF16)"
            }
        }
    }

    /// The bf16 path here: hardware where the CPU has AVX512-BF16 and oneDNN's effective ISA
    /// (which `DNNL_MAX_CPU_ISA` caps) includes it, emulated elsewhere. The operand conversions
    /// follow the same choice, so a capped ISA runs everything a CPU without the instructions runs.
    public static let bf16Path: BF16Path = {
        let bf16ISA = dnnl_cpu_isa_avx512_core_bf16.rawValue
        let hardware = available && lf_cpu_has_avx512_bf16() != 0
            && (dnnl_get_effective_cpu_isa().rawValue & bf16ISA) == bf16ISA
        lf_bf16_use_instructions(hardware ? 1 : 0)
        return hardware ? .hardware : .emulated
    }()

    /// The ISA oneDNN picks its kernels for ("avx512_core_bf16", "avx2", …).
    public static var isa: String {
        guard available else { return "unavailable" }
        let isa = dnnl_get_effective_cpu_isa()
        let names: [(dnnl_cpu_isa_t, String)] = [
            (dnnl_cpu_isa_avx512_core_amx, "avx512_core_amx"), (dnnl_cpu_isa_avx512_core_bf16, "avx512_core_bf16"),
            (dnnl_cpu_isa_avx512_core_vnni, "avx512_core_vnni"), (dnnl_cpu_isa_avx512_core, "avx512_core"),
            (dnnl_cpu_isa_avx2_vnni, "avx2_vnni"), (dnnl_cpu_isa_avx2, "avx2"), (dnnl_cpu_isa_avx, "avx"), (dnnl_cpu_isa_sse41, "sse41"),
        ]
        let name = names.first { (isa.rawValue & $0.0.rawValue) == $0.0.rawValue }?.1 ?? "isa 0x\(String(isa.rawValue, radix: 16))"
        return name
    }

    /// Whether bf16 products run here (through `bf16Path`): wherever oneDNN does.
    public static let bf16Available: Bool = { _ = bf16Path; return available }()

    /// The implementation oneDNN picks for an m×n×k product in this precision (for example
    /// "brg:avx512_core_bf16"; emulated bf16 names the float32 kernel it runs on), or why none runs.
    public static func implementation(m: Int = 2048, n: Int = 2048, k: Int = 2048, precision: Precision) -> String {
        guard available else { return "oneDNN unavailable: \(state.failure ?? "?")" }
        let emulated = precision == .bf16 && bf16Path == .emulated
        pthread_mutex_lock(&state.lock)
        defer { pthread_mutex_unlock(&state.lock) }
        guard let made = primitive(Key(transA: false, transB: false, m: m, n: n, k: k, lda: k, ldb: n, ldc: n,
                                       alpha: 1, beta: 0, precision: emulated ? .float32 : precision, threads: state.threads))
        else { return "none: no primitive" }
        var info: UnsafePointer<CChar>?
        dnnl_primitive_desc_query(dnnl_primitive_get_primitive_desc_checked(made.primitive), dnnl_query_impl_info_str, 0, &info)
        let name = info.map { String(cString: $0) } ?? "unknown"
        return emulated ? "emulated bf16 on \(name)" : name
    }

    /// Bytes of oneDNN's working memory so far: the bf16 copies of operands and the shared
    /// scratchpad.
    public static var workspaceBytes: Int {
        pthread_mutex_lock(&state.lock)
        defer { pthread_mutex_unlock(&state.lock) }
        return 2 * (state.capacityA + state.capacityB + state.capacityW) + 4 * (state.capacityWideA + state.capacityWideB)
            + state.scratchpadBytes
    }

    /// The threads oneDNN uses for calls from this thread (OpenMP).
    public static func setThreads(_ n: Int) {
        pthread_mutex_lock(&state.lock)
        state.threads = max(n, 1)
        pthread_mutex_unlock(&state.lock)
        lf_set_openmp_threads(Int32(max(n, 1)))
    }

    /// Elements a row-major operand occupies: `rows` × `columns` as stored, leading dimension `ld`.
    @inline(__always)
    static func extent(rows: Int, columns: Int, ld: Int) -> Int { rows == 0 ? 0 : (rows - 1) * ld + columns }

    static func primitive(_ key: Key) -> Made? {
        if let cached = state.primitives[key] { return cached }
        let type: dnnl_data_type_t = key.precision == .bf16 ? dnnl_bf16 : dnnl_f32
        var aDims: [Int64] = [Int64(key.m), Int64(key.k)], bDims: [Int64] = [Int64(key.k), Int64(key.n)]
        var cDims: [Int64] = [Int64(key.m), Int64(key.n)]
        var aStrides: [Int64] = key.transA ? [1, Int64(key.lda)] : [Int64(key.lda), 1]
        var bStrides: [Int64] = key.transB ? [1, Int64(key.ldb)] : [Int64(key.ldb), 1]
        var cStrides: [Int64] = [Int64(key.ldc), 1]
        if let grid = key.grid {
            // Two batch dimensions in front, each with its own stride per operand.
            let extents = [Int64(grid.outer), Int64(grid.inner)]
            aDims = extents + aDims; bDims = extents + bDims; cDims = extents + cDims
            aStrides = [Int64(grid.a.outer), Int64(grid.a.inner)] + aStrides
            bStrides = [Int64(grid.b.outer), Int64(grid.b.inner)] + bStrides
            cStrides = [Int64(grid.c.outer), Int64(grid.c.inner)] + cStrides
        }
        let rank = Int32(aDims.count)
        var aDesc = dnnl_memory_desc_t(), bDesc = dnnl_memory_desc_t(), cDesc = dnnl_memory_desc_t()
        guard dnnl_memory_desc_init_by_strides(&aDesc, rank, &aDims, type, &aStrides) == dnnl_success,
              dnnl_memory_desc_init_by_strides(&bDesc, rank, &bDims, type, &bStrides) == dnnl_success,
              dnnl_memory_desc_init_by_strides(&cDesc, rank, &cDims, dnnl_f32, &cStrides) == dnnl_success else { return nil }
        var descriptor = dnnl_matmul_desc_t()
        guard dnnl_matmul_desc_init(&descriptor, &aDesc, &bDesc, nil, &cDesc) == dnnl_success else { return nil }
        var attributes: dnnl_primitive_attr_t?
        dnnl_primitive_attr_create(&attributes)
        defer { dnnl_primitive_attr_destroy(attributes) }
        dnnl_primitive_attr_set_scratchpad_mode(attributes, dnnl_scratchpad_mode_user)
        if key.alpha != 1 {
            var alpha = key.alpha
            dnnl_primitive_attr_set_output_scales(attributes, 1, 0, &alpha)
        }
        if key.beta != 0 {
            var postOps: dnnl_post_ops_t?
            dnnl_post_ops_create(&postOps)
            dnnl_post_ops_append_sum(postOps, key.beta)
            dnnl_primitive_attr_set_post_ops(attributes, postOps)
            dnnl_post_ops_destroy(postOps)
        }
        var primitiveDescriptor: dnnl_primitive_desc_t?
        guard dnnl_primitive_desc_create(&primitiveDescriptor, &descriptor, attributes, state.engine, nil) == dnnl_success else { return nil }
        defer { dnnl_primitive_desc_destroy(primitiveDescriptor) }
        var created: dnnl_primitive_t?
        guard dnnl_primitive_create(&created, primitiveDescriptor) == dnnl_success, let created else { return nil }
        let source = dnnl_primitive_get_primitive_desc_checked(created)
        let scratchpadDesc = dnnl_primitive_desc_query_md(source, dnnl_query_scratchpad_md, 0)
        // Placeholder handles; every call sets its own.
        var a: dnnl_memory_t?, b: dnnl_memory_t?, c: dnnl_memory_t?, pad: dnnl_memory_t?
        guard dnnl_memory_create(&a, dnnl_primitive_desc_query_md(source, dnnl_query_src_md, 0), state.engine, nil) == dnnl_success,
              dnnl_memory_create(&b, dnnl_primitive_desc_query_md(source, dnnl_query_weights_md, 0), state.engine, nil) == dnnl_success,
              dnnl_memory_create(&c, dnnl_primitive_desc_query_md(source, dnnl_query_dst_md, 0), state.engine, nil) == dnnl_success,
              dnnl_memory_create(&pad, scratchpadDesc, state.engine, nil) == dnnl_success,
              let a, let b, let c, let pad else {
            dnnl_primitive_destroy(created)
            return nil
        }
        let made = Made(primitive: created, a: a, b: b, c: c, scratchpad: pad, scratchpadBytes: dnnl_memory_desc_get_size(scratchpadDesc))
        state.primitives[key] = made
        return made
    }

    /// The largest operand converted to bf16 at once, in elements (8 MB of bf16): larger
    /// products run in slices of rows of A (or, for a transposed A, of the summed dimension,
    /// accumulating), so the bf16 copies stay small.
    static let bf16SliceElements = 4 << 20

    /// C ← α·op(A)·op(B) + β·C through oneDNN; false when oneDNN cannot do this product (the
    /// caller then uses OpenBLAS).
    static func gemm(transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float,
                     a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
                     beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int, precision: Precision) -> Bool {
        pthread_mutex_lock(&state.lock)
        defer { pthread_mutex_unlock(&state.lock) }
        // OpenMP's thread count is per calling thread: set it for this one.
        lf_set_openmp_threads(Int32(state.threads))
        guard precision == .bf16 else {
            return execute(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: UnsafeRawPointer(a), lda: lda,
                           b: UnsafeRawPointer(b), ldb: ldb, beta: beta, c: c, ldc: ldc, precision: .float32)
        }
        let s = state
        // Slices: of the rows of C (A not transposed), or of the summed dimension (A transposed).
        let slice = max(1, bf16SliceElements / max(lda, 1))
        if !transA {
            let bCount = transB ? extent(rows: n, columns: k, ld: ldb) : extent(rows: k, columns: n, ld: ldb)
            let b16 = s.scratch(&s.scratchB, &s.capacityB, bCount)
            lf_f32_to_bf16(b, b16, bCount)
            for row in stride(from: 0, to: m, by: slice) {
                let rows = min(slice, m - row), aCount = extent(rows: rows, columns: k, ld: lda)
                let a16 = s.scratch(&s.scratchA, &s.capacityA, aCount)
                lf_f32_to_bf16(a + row * lda, a16, aCount)
                guard execute(transA: false, transB: transB, m: rows, n: n, k: k, alpha: alpha, a: UnsafeRawPointer(a16), lda: lda,
                              b: UnsafeRawPointer(b16), ldb: ldb, beta: beta, c: c + row * ldc, ldc: ldc, precision: .bf16) else { return false }
            }
            return true
        }
        for start in stride(from: 0, to: k, by: slice) {
            let depth = min(slice, k - start)
            let aCount = extent(rows: depth, columns: m, ld: lda)
            let bOffset = transB ? start : start * ldb
            let bCount = transB ? extent(rows: n, columns: depth, ld: ldb) : extent(rows: depth, columns: n, ld: ldb)
            let a16 = s.scratch(&s.scratchA, &s.capacityA, aCount), b16 = s.scratch(&s.scratchB, &s.capacityB, bCount)
            lf_f32_to_bf16(a + start * lda, a16, aCount)
            lf_f32_to_bf16(b + bOffset, b16, bCount)
            guard execute(transA: true, transB: transB, m: m, n: n, k: depth, alpha: alpha, a: UnsafeRawPointer(a16), lda: lda,
                          b: UnsafeRawPointer(b16), ldb: ldb, beta: start == 0 ? beta : 1, c: c, ldc: ldc, precision: .bf16) else { return false }
        }
        return true
    }

    /// A linear layer's two backward products in bf16, dx (rows, in) += α·dy · W and
    /// dW (out, in) += α·dyᵀ · x, with each operand converted once: `gemm` would convert dy
    /// once per product. Slices of rows of dy and x take both products in turn, the slices
    /// `gemm` cuts for either (rows of dx; the summed dimension of dW), so the results are
    /// bitwise those of the two `gemm` calls. False when oneDNN cannot run them.
    @usableFromInline
    static func linearBackwardBF16(dx: UnsafeMutablePointer<Float>?, dWeight: UnsafeMutablePointer<Float>,
                                   dy: UnsafePointer<Float>, x: UnsafePointer<Float>, weight: UnsafePointer<Float>,
                                   rows: Int, inDim: Int, outDim: Int, alpha: Float = 1) -> Bool {
        pthread_mutex_lock(&state.lock)
        defer { pthread_mutex_unlock(&state.lock) }
        lf_set_openmp_threads(Int32(state.threads))
        let s = state
        let slice = max(1, bf16SliceElements / max(outDim, 1))
        let w16 = s.scratch(&s.scratchW, &s.capacityW, outDim * inDim)
        if dx != nil { lf_f32_to_bf16(weight, w16, outDim * inDim) }
        for row in stride(from: 0, to: rows, by: slice) {
            let count = min(slice, rows - row)
            let dy16 = s.scratch(&s.scratchA, &s.capacityA, count * outDim), x16 = s.scratch(&s.scratchB, &s.capacityB, count * inDim)
            lf_f32_to_bf16(dy + row * outDim, dy16, count * outDim)
            lf_f32_to_bf16(x + row * inDim, x16, count * inDim)
            if let dx {
                guard execute(transA: false, transB: false, m: count, n: inDim, k: outDim, alpha: alpha, a: UnsafeRawPointer(dy16), lda: outDim,
                              b: UnsafeRawPointer(w16), ldb: inDim, beta: 1, c: dx + row * inDim, ldc: inDim, precision: .bf16) else { return false }
            }
            guard execute(transA: true, transB: false, m: outDim, n: inDim, k: count, alpha: alpha, a: UnsafeRawPointer(dy16), lda: outDim,
                          b: UnsafeRawPointer(x16), ldb: inDim, beta: 1, c: dWeight, ldc: inDim, precision: .bf16) else { return false }
        }
        return true
    }

    /// A grid of products in one primitive, float32 output: operands already in bfloat16
    /// (`BF16.gemm`) or float32 (`GEMMGrid.gemm`), as `precision` says. False when oneDNN
    /// cannot do it.
    static func gemm(grid: GEMMGrid, transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float,
                     a: UnsafeRawPointer, lda: Int, b: UnsafeRawPointer, ldb: Int,
                     beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int, precision: Precision) -> Bool {
        guard precision == .bf16 ? bf16Available : available else { return false }
        pthread_mutex_lock(&state.lock)
        defer { pthread_mutex_unlock(&state.lock) }
        lf_set_openmp_threads(Int32(state.threads))
        return execute(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda,
                       b: b, ldb: ldb, beta: beta, c: c, ldc: ldc, precision: precision, grid: grid)
    }

    /// Elements an operand of a grid of products spans: the last matrix's offset plus its extent
    /// (strides are non-negative).
    static func extent(rows: Int, columns: Int, ld: Int, grid: GEMMGrid?, steps: KeyPath<GEMMGrid, GEMMGrid.Steps>) -> Int {
        let matrix = extent(rows: rows, columns: columns, ld: ld)
        guard let grid, matrix > 0 else { return matrix }
        let s = grid[keyPath: steps]
        return (grid.outer - 1) * s.outer + (grid.inner - 1) * s.inner + matrix
    }

    /// One primitive execution on operands already in `precision` (caller holds the lock).
    /// Emulated bf16 widens the two bf16 operands to float32 and runs the float32 primitive.
    static func execute(transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float,
                        a: UnsafeRawPointer, lda: Int, b: UnsafeRawPointer, ldb: Int,
                        beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int, precision: Precision,
                        grid: GEMMGrid? = nil) -> Bool {
        let s = state
        if precision == .bf16 && bf16Path == .emulated {
            let aCount = transA ? extent(rows: k, columns: m, ld: lda, grid: grid, steps: \.a)
                                : extent(rows: m, columns: k, ld: lda, grid: grid, steps: \.a)
            let bCount = transB ? extent(rows: n, columns: k, ld: ldb, grid: grid, steps: \.b)
                                : extent(rows: k, columns: n, ld: ldb, grid: grid, steps: \.b)
            let a32 = s.scratch(&s.wideA, &s.capacityWideA, aCount), b32 = s.scratch(&s.wideB, &s.capacityWideB, bCount)
            lf_bf16_to_f32(a.assumingMemoryBound(to: UInt16.self), a32, aCount)
            lf_bf16_to_f32(b.assumingMemoryBound(to: UInt16.self), b32, bCount)
            return execute(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: UnsafeRawPointer(a32), lda: lda,
                           b: UnsafeRawPointer(b32), ldb: ldb, beta: beta, c: c, ldc: ldc, precision: .float32, grid: grid)
        }
        let key = Key(transA: transA, transB: transB, m: m, n: n, k: k, lda: lda, ldb: ldb, ldc: ldc,
                      alpha: alpha, beta: beta, precision: precision, threads: s.threads, grid: grid)
        guard let made = primitive(key) else { return false }
        if made.scratchpadBytes > s.scratchpadBytes {
            s.scratchpad?.deallocate()
            s.scratchpad = UnsafeMutableRawPointer.allocate(byteCount: made.scratchpadBytes, alignment: 64)
            s.scratchpadBytes = made.scratchpadBytes
        }
        guard dnnl_memory_set_data_handle(made.a, UnsafeMutableRawPointer(mutating: a)) == dnnl_success,
              dnnl_memory_set_data_handle(made.b, UnsafeMutableRawPointer(mutating: b)) == dnnl_success,
              dnnl_memory_set_data_handle(made.c, c) == dnnl_success,
              dnnl_memory_set_data_handle(made.scratchpad, s.scratchpad) == dnnl_success
        else { return false }
        var arguments = [dnnl_exec_arg_t(arg: DNNL_ARG_SRC, memory: made.a), dnnl_exec_arg_t(arg: DNNL_ARG_WEIGHTS, memory: made.b),
                         dnnl_exec_arg_t(arg: DNNL_ARG_DST, memory: made.c), dnnl_exec_arg_t(arg: DNNL_ARG_SCRATCHPAD, memory: made.scratchpad)]
        return dnnl_primitive_execute(made.primitive, s.stream, Int32(arguments.count), &arguments) == dnnl_success
            && dnnl_stream_wait(s.stream) == dnnl_success
    }
}

/// The primitive's descriptor (oneDNN 2.x: dnnl_primitive_get_primitive_desc).
@inline(__always)
func dnnl_primitive_get_primitive_desc_checked(_ primitive: dnnl_primitive_t) -> const_dnnl_primitive_desc_t? {
    var descriptor: const_dnnl_primitive_desc_t?
    dnnl_primitive_get_primitive_desc(primitive, &descriptor)
    return descriptor
}
