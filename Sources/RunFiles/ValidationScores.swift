import Foundation

/// validation.json: the metrics of a trained model on the validation split, as the NLB evaluation would compute
/// them if the validation trials were the eval trials.
public struct ValidationScores: Codable, Sendable {
    public var trials: Int
    public var coBps: Double
    public var fpBps: Double?
    public var velR2: Double?
    public var psthR2: Double?
    /// Lorenz only: R² of the inferred rates against the true rates (all bins, all neurons).
    public var rateR2: Double?
    /// Lorenz only: the same for the held-out neurons, which the encoder never sees.
    public var rateR2HeldOut: Double?
    /// co-bps of the smoothed-spikes baseline (Gaussian-smoothed held-in spikes → Poisson GLM).
    public var baselineCoBps: Double
    public var minutes: Double?
    /// Seconds of the end of the run: predictions, metrics, baseline and submission.
    public var endOfRunSeconds: Double?
    /// With true latents (synthetic data): R² on the validation trials of a linear map, fitted
    /// on training trials, from the inferred z, v, [z, v] and the encoder state h to them.
    public var latentR2Z: Double?
    public var latentR2V: Double?
    public var latentR2ZV: Double?
    public var latentR2H: Double?

    public init(trials: Int, coBps: Double, baselineCoBps: Double) {
        self.trials = trials
        self.coBps = coBps
        self.baselineCoBps = baselineCoBps
    }

    enum CodingKeys: String, CodingKey {
        case trials, coBps = "co-bps", fpBps = "fp-bps", velR2 = "vel R2", psthR2 = "psth R2", rateR2 = "rate R2"
        case rateR2HeldOut = "rate R2 held-out"
        case baselineCoBps = "smoothed-spikes co-bps", minutes, endOfRunSeconds = "end-of-run seconds"
        case latentR2Z = "latent R2 (z)", latentR2V = "latent R2 (v)", latentR2ZV = "latent R2 (z,v)", latentR2H = "latent R2 (h)"
    }

    /// A printed table.
    public var table: String {
        func pad(_ name: String) -> String { name.padding(toLength: 24, withPad: " ", startingAt: 0) }
        func row(_ name: String, _ v: Double?) -> String? { v.map { "  " + pad(name) + String(format: " %8.4f", $0) } }
        return (["  " + pad("validation trials") + String(format: " %8d", trials)] + [
            row("co-bps", coBps), row("fp-bps", fpBps), row("vel R2", velR2), row("psth R2", psthR2),
            row("rate R2 (ground truth)", rateR2), row("rate R2, held-out only", rateR2HeldOut),
            row("smoothed-spikes co-bps", baselineCoBps),
            row("latent R2, z", latentR2Z), row("latent R2, v", latentR2V), row("latent R2, [z, v]", latentR2ZV),
            row("latent R2, h (encoder)", latentR2H),
        ].compactMap { $0 }).joined(separator: "\n")
    }
}
