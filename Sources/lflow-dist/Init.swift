import ArgumentParser
import Inference
import Model
import Training

struct Init: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Size a model from an NLB tensor file, initialise it and write a checkpoint.",
        discussion: """
        Parameters are drawn with PyTorch's default initialisation (plus T-Fixup on the decoder) \
        from keyed streams of the seed, and stored under model/<name> in PyTorch state_dict \
        names and shapes (float32), with the resolved config as the root attribute `config`.

        Example:
          lflow-dist init --config Configs/tiny.yaml --data data.h5 --out init.h5 --seed 3 --set hidden=16
        """)

    @OptionGroup var options: ConfigOptions

    @Option(help: ArgumentHelp("NLB tensor HDF5 file (as nlb_tools' save_to_h5 writes) whose sizes the model takes.", valueName: "file.h5"))
    var data: String

    @Option(help: ArgumentHelp("Where to write the checkpoint (written atomically).", valueName: "ckpt.h5"))
    var out: String

    @Option(help: "Seed for the initialisation; overrides the config's `seed`.")
    var seed: Int?

    func run() throws {
        let config = try options.resolve(extra: seed.map { ["seed=\($0)"] } ?? [])
        let layout = try Initialiser.run(config: config.model, dataPath: data, out: out)
        print("wrote \(out): \(layout.entries.count) tensors, \(layout.totalCount) parameters (seed \(config.model.seed))")
    }
}
