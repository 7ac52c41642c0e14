import Kernels

/// The leading principal components of rows of data, by orthogonal iteration on the
/// covariance matrix (features × features), which is all a figure of latent trajectories needs.
enum PCA {
    /// `components` unit vectors (features each), largest variance first, and the mean.
    static func fit(rows x: [Double], features p: Int, components k: Int, iterations: Int = 200) -> (axes: [[Double]], mean: [Double]) {
        let n = x.count / max(p, 1)
        guard n > 1, p > 0 else { return ([], []) }
        var mean = [Double](repeating: 0, count: p)
        for r in 0..<n { for j in 0..<p { mean[j] += x[r * p + j] } }
        mean = mean.map { $0 / Double(n) }
        var centred = x
        for r in 0..<n { for j in 0..<p { centred[r * p + j] -= mean[j] } }
        var cov = [Double](repeating: 0, count: p * p)
        Double.gemm(transA: true, transB: false, m: p, n: p, k: n, alpha: 1 / Double(n - 1), a: centred, lda: p,
                    b: centred, ldb: p, beta: 0, c: &cov, ldc: p)
        let k = min(k, p)
        // Start from deterministic, linearly independent vectors.
        var q = [[Double]](repeating: [Double](repeating: 0, count: p), count: k)
        for c in 0..<k {
            for j in 0..<p {
                let wiggle = Double((j * 7 + c * 13) % 11)
                q[c][j] = j == c ? 1 : 1e-3 * wiggle
            }
        }
        for _ in 0..<iterations {
            var next: [[Double]] = []
            for v in q {
                var product = [Double](repeating: 0, count: p)
                for i in 0..<p {
                    var sum = 0.0
                    for j in 0..<p { sum += cov[i * p + j] * v[j] }
                    product[i] = sum
                }
                next.append(product)
            }
            // Gram–Schmidt.
            for c in 0..<k {
                for d in 0..<c {
                    var dot = 0.0
                    for j in 0..<p { dot += next[c][j] * next[d][j] }
                    for j in 0..<p { next[c][j] -= dot * next[d][j] }
                }
                var norm = 0.0
                for j in 0..<p { norm += next[c][j] * next[c][j] }
                norm = norm.squareRoot()
                for j in 0..<p { next[c][j] = norm > 0 ? next[c][j] / norm : 0 }
            }
            q = next
        }
        // A fixed sign: the largest component positive.
        q = q.map { v in (v.max(by: { abs($0) < abs($1) }) ?? 0) < 0 ? v.map { -$0 } : v }
        return (q, mean)
    }

    static func project(_ row: ArraySlice<Double>, axis: [Double], mean: [Double]) -> Double {
        var s = 0.0
        for (j, v) in row.enumerated() { s += (v - mean[j]) * axis[j] }
        return s
    }
}
