import ArgumentParser
import Data
import Recipes
import Training

struct Synth: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Generate the built-in Lorenz dataset as an NLB tensor file.",
        discussion: """
        Writes the NLB tensor layout (train/eval spikes, held-in/held-out neurons, forward bins, \
        behaviour = latent velocity) plus ground truth under truth/ (rates and latents) and the \
        condition index of every trial. The same seed gives the same file.

        Example:
          lflow-dist synth --out lorenz.h5 --seed 0
          lflow-dist synth --out small.h5 --conditions 8 --trials-per-condition 4
        """)

    @Option(help: ArgumentHelp("Output HDF5 file.", valueName: "file.h5"))
    var out: String

    @Option(help: ArgumentHelp("Group name of the evaluation targets written beside the data (<out>-targets.h5).", valueName: "name"))
    var datasetName = "lorenz"

    @Option(help: "Seed of every draw (trajectories, readout, spikes).")
    var seed = 0

    @Option(help: "Number of conditions (Lorenz trajectories).")
    var conditions = LorenzSpec().conditions

    @Option(help: "Trials per condition (independent spikes of the same trajectory).")
    var trialsPerCondition = LorenzSpec().trialsPerCondition

    @Option(help: "Observed bins per trial.")
    var bins = LorenzSpec().bins

    @Option(help: "Forward-prediction bins after the observed window.")
    var forwardBins = LorenzSpec().forwardBins

    @Option(help: "Neurons in all.")
    var neurons = LorenzSpec().neurons

    @Option(help: "How many of the neurons are held out (never shown to the encoder).")
    var heldOut = LorenzSpec().heldOutNeurons

    func validate() throws {
        guard conditions > 0, trialsPerCondition >= 2 else {
            throw ValidationError("--conditions must be >= 1 and --trials-per-condition >= 2 (one train and one eval trial)")
        }
        guard bins > 0, forwardBins >= 0 else { throw ValidationError("--bins must be > 0 and --forward-bins >= 0") }
        guard heldOut > 0, heldOut < neurons else { throw ValidationError("--held-out must be between 1 and --neurons - 1") }
    }

    func run() throws {
        var spec = LorenzSpec()
        spec.seed = seed
        spec.conditions = conditions
        spec.trialsPerCondition = trialsPerCondition
        spec.bins = bins
        spec.forwardBins = forwardBins
        spec.neurons = neurons
        spec.heldOutNeurons = heldOut
        let data = Lorenz.generate(spec)
        try data.write(path: out, datasetName: datasetName)
        let targets = BuiltIn.targetsPath(forData: out)
        try data.writeTargets(path: targets, group: datasetName)
        let train = data.tensors["train_spikes_heldin"]!.count, eval = data.tensors["eval_spikes_heldin"]!.count
        print("wrote \(out) and \(targets): \(train) train + \(eval) eval trials, \(bins)+\(forwardBins) bins, \(neurons - heldOut) held-in + \(heldOut) held-out neurons (seed \(seed))")
    }
}
