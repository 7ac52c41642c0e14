import ArgumentParser
import Inference
import Training

struct Inspect: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run one deterministic forward and backward and write the debug state.",
        discussion: """
        Loads the checkpoint and the first N training trials, runs the model in deterministic mode \
        (no dropout, no coordinated dropout, mean path z0 = mu_z, v0 = mu_v, v_t = mu_t) in float64, \
        and writes to the output file:
          log_rates (N, T+F, Nout), latents (N, T+F, D) = [z, v, h],
          loss/reconstruction, loss/kl (unweighted), loss/total = reconstruction + klWeight*kl,
          grad/<name>: d loss/total / d parameter in PyTorch shapes.

        Example:
          lflow-dist inspect --checkpoint init.h5 --data data.h5 --trials 4 --out state.h5
        """)

    @Option(help: ArgumentHelp("Checkpoint written by `init` or by training.", valueName: "ckpt.h5"))
    var checkpoint: String

    @Option(help: ArgumentHelp("NLB tensor HDF5 file; its first N training trials are used.", valueName: "file.h5"))
    var data: String

    @Option(help: "Number of training trials (from the first).")
    var trials: Int

    @Option(help: ArgumentHelp("Where to write the debug state.", valueName: "state.h5"))
    var out: String

    func validate() throws {
        guard trials > 0 else { throw ValidationError("--trials must be at least 1 (got \(trials))") }
    }

    func run() throws {
        let result = try Inspector.run(checkpoint: checkpoint, dataPath: data, trials: trials, out: out)
        let l = result.loss
        print("wrote \(out): \(result.trials) trials, reconstruction \(l.reconstruction), kl \(l.kl), total \(l.total)")
    }
}
