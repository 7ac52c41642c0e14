import ArgumentParser
import Data
import Distributed
import Evaluation
import Foundation
import Model
import Recipes
import RunFiles
import Search
import Training

struct SearchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "search",
        abstract: "Search configs across the ranks of one MPI job: a full grid, successive halving (ASHA) or population-based training (PBT).",
        discussion: """
        The ranks split into groups of --ranks-per-trial (MPI_Comm_split); each group trains on \
        its own sub-communicator with the ordinary data-parallel trainer, so a trial is the same \
        computation, bit for bit, as `train` with its config at world size --ranks-per-trial.

        --strategy grid (default): every point of --grid is trained to the end; a group takes \
        the next unfinished point as soon as it is done. The run directory gets trials/<trial>/ \
        (train.log and everything train writes, with its report.html), jobs/ (one result per \
        job, every strategy's record), results.csv and results.md, heatmap.svg (the metric over \
        the first two axes, a panel per value of the others), best.yaml and report.html. A trial \
        whose loss becomes NaN is marked failed.

        --strategy asha: successive halving over the grid's points (in a seeded order): rungs \
        at --grace-epochs × --reduction-factor^k up to the config's epochs (without --grace-epochs, \
        the longest first rung from which a trial still reaches the config's epochs); a free group \
        promotes the best not-yet-promoted trial in the top 1/η of the highest rung it can, \
        else starts the next point. A stopped trial keeps its checkpoint and can be promoted \
        later. --promotion sync promotes from a rung only once all its trials have their \
        results (successive halving): slower to fill the top rung, but not fooled by a fast \
        starter when the points are close.

        --strategy pbt: --population members train in generations of --generation-epochs \
        (after --burn-in-epochs, the warm-ups by default); at each generation's end members are \
        paired at random and the one with the worse smoothed validation metric copies the \
        other's weights, Adam moments, weight average and schedule state, then perturbs each \
        --explore field by a factor 1 ± U(0.002w, w) within its bounds. A failed (NaN) member \
        copies a winner. Members may outnumber groups: a group trains several in turn. The \
        best member is scored at the end; best.yaml names its weights, best-schedule.yaml its \
        lineage (a schedule, which no single `train` replays).

        Every strategy runs on one engine: a schedule decides the jobs (ASHA and PBT from the \
        results of jobs finished before them, in a schedule computed in epochs, which every group \
        computes alike), and a free group takes the next decided job. A search killed at any \
        moment and started again with the same command (for ASHA and PBT, at the same world \
        size) ends with bitwise the same table and weights. ASHA and PBT count in epochs (no \
        maxMinutes). A flag that the chosen strategy does not use is refused. Their results.csv and \
        results.md have one row per job (PBT: member, generation, whom it copied, the explored \
        values, the metric and its smoothing), and report.html plots the metric over epochs and \
        PBT's explored values over generations. PBT keeps one checkpoint per member per live \
        generation (the previous one until the next has finished).

        SIGTERM/SIGUSR1 checkpoints every running trial and exits with 75; the same command \
        continues (complete trials are kept).

        Examples:
          mpirun -n 8 lflow-dist search --ranks-per-trial 2                  # Lorenz, the 9-point default grid (mass × damping)
          mpirun -n 4 lflow-dist search --config Configs/tiny.yaml --ranks-per-trial 2 \\
              --grid mass=0.5,1 --grid damping=0.3,0.8
          mpirun -n 16 lflow-dist search --config Configs/mc_maze.yaml --data mc_maze_20.h5 \\
              --grid mass=0.5,1,2 --grid damping=0.3,0.55,0.8 --grid coupling=0.5,1,2 --ranks-per-trial 4
          mpirun -n 8 lflow-dist search --config Configs/mc_maze.yaml --data mc_maze_20.h5 --strategy asha \\
              --grid learningRate=0.001,0.003,0.01 --grid cdKeep=0.3,0.5,0.7 --set epochs=810 --grace-epochs 90
          mpirun -n 8 lflow-dist search --config Configs/mc_maze.yaml --data mc_maze_20.h5 --strategy pbt \\
              --population 16 --generation-epochs 25 --set epochs=500 --explore learningRate=0.0003:0.01 --explore cdKeep=0.3:0.9
        """)

    @OptionGroup var options: ConfigOptions

    @Option(help: ArgumentHelp("NLB tensor HDF5 file. Without it the built-in Lorenz data (and, without --config, the lorenz config) is used, as in `train`.", valueName: "file.h5"))
    var data: String?

    @Option(name: .customLong("grid"), help: ArgumentHelp("One axis of the grid: a numeric config field and its values. Repeatable; the grid is the product of the axes. Default: --grid \(SearchGrid.defaultSpecs.joined(separator: " --grid ")).", valueName: "field=v1,v2,…"))
    var grid: [String] = []

    @Option(help: ArgumentHelp("Ranks that train one grid point together (data parallel). The job's rank count must be a multiple of it.", valueName: "R"))
    var ranksPerTrial = 1

    @Option(help: ArgumentHelp("Where the search writes. Default: Checkpoints/search-<data file name>.", valueName: "dir"))
    var runDir: String?

    @Option(help: ArgumentHelp("Submission group name of each trial. Default: the data file's dataset_name attribute, else its file name.", valueName: "name"))
    var datasetName: String?

    @Option(help: ArgumentHelp("What ranks the trials (best.yaml, the ★ and the heatmap): coBps = validation co-bps (the default of grid and pbt; higher is better); latentR2 = R² of the validation trials' [z, v] against the true latents, on synthetic data (higher is better); validation = the best validation metric the trainer selects on, the held-out NLL by default (lower is better; the default of asha, whose early rungs it ranks better than co-bps: docs/search.md). Every table shows all three; a finished search can be re-ranked by running it again with another --metric (nothing is retrained).", valueName: "coBps|latentR2|validation"))
    var metric: SearchMetric?

    /// ASHA ranks its rungs on the trainer's validation metric unless told otherwise: at a short
    /// grace co-bps mostly says who learned first (measured in docs/search.md).
    var chosenMetric: SearchMetric { metric ?? (strategy == .asha ? .validation : .coBps) }

    @Flag(help: "grid: train failed trials again (by default a restarted search keeps them failed).")
    var retryFailed = false

    @Option(help: ArgumentHelp("grid: train every grid point to the end (default); asha: successive halving over the grid's points, rungs from --grace-epochs ×--reduction-factor up to the config's epochs; pbt: population-based training of --population members exploring --explore fields.", valueName: "grid|asha|pbt"))
    var strategy: StrategyName = .grid

    @Option(help: ArgumentHelp("ASHA: epochs of the first rung. Default: the longest from which at least one trial still reaches the config's epochs through the rungs (the search says which).", valueName: "E"))
    var graceEpochs: Int?

    @Option(help: ArgumentHelp("ASHA: the top 1/η of a rung go on to the next, which is η times longer (default 3).", valueName: "η"))
    var reductionFactor: Int?

    @Option(help: ArgumentHelp("ASHA: async = a free group promotes from a rung as soon as a trial is in the top 1/η of the results so far (Ray Tune's ASHA); sync = only once every trial of the rung has its result (successive halving): no group runs ahead on an early lucky result, at the cost of idling at the end of a rung. Both are exact.", valueName: "async|sync"))
    var promotion: Promotion?

    @Option(help: ArgumentHelp("PBT: members of the population (default 8; more than the groups is fine: a group trains several in turn).", valueName: "M"))
    var population: Int?

    @Option(help: ArgumentHelp("PBT: epochs between tournaments (default 25).", valueName: "E"))
    var generationEpochs: Int?

    @Option(help: ArgumentHelp("PBT: epochs before the first tournament. Default: the longer of the KL and weight-decay warm-ups (a member is not judged before its objective is the final one).", valueName: "E"))
    var burnInEpochs: Int?

    @Option(name: .customLong("explore"), help: ArgumentHelp("PBT: a field to explore, its bounds and (optionally) its perturbation weight (default 0.3): each tournament's loser multiplies its copied value by 1 ± U(0.002w, w), clamped to the bounds. Repeatable. Explorable: learningRate, dropout, decoderDropout, cdKeep, klWeight, weightDecay, damping, coupling, mass, temperature, dt. Default: learningRate, dropout, decoderDropout, cdKeep, klWeight, weightDecay and damping within wide bounds.", valueName: "field=lower:upper[:w]"))
    var explore: [String] = []

    @Option(help: ArgumentHelp("PBT: a YAML file of explored fields, one `field: [lower, upper]` or `field: [lower, upper, weight]` per line (with --explore: both).", valueName: "file.yaml"))
    var space: String?

    @Option(help: ArgumentHelp("PBT: where generation 0 starts: sample = values drawn within the bounds (log-uniform across decades), as AutoLFADS does; config = every member from the config's values (their seeds differ).", valueName: "sample|config"))
    var initial: InitialValues?

    @Option(help: ArgumentHelp("PBT: stop early when the best smoothed validation metric improved by less than --min-improvement over this many generations (default 4; 0: never).", valueName: "G"))
    var patienceGenerations: Int?

    @Option(help: ArgumentHelp("PBT: see --patience-generations (default 0.0005).", valueName: "x"))
    var minImprovement: Double?

    func run() throws {
        try WorldJob.run(preflight: preflight, body: search)
    }

    /// The flags given that `strategy` does not use, each with the strategy that does.
    func unusedFlags() -> [String] {
        var given: [(flag: String, used: Set<StrategyName>)] = []
        if !grid.isEmpty { given.append(("--grid", [.grid, .asha])) }
        if retryFailed { given.append(("--retry-failed", [.grid])) }
        if metric != nil { given.append(("--metric", [.grid, .asha])) }
        if graceEpochs != nil { given.append(("--grace-epochs", [.asha])) }
        if reductionFactor != nil { given.append(("--reduction-factor", [.asha])) }
        if promotion != nil { given.append(("--promotion", [.asha])) }
        if population != nil { given.append(("--population", [.pbt])) }
        if generationEpochs != nil { given.append(("--generation-epochs", [.pbt])) }
        if burnInEpochs != nil { given.append(("--burn-in-epochs", [.pbt])) }
        if !explore.isEmpty { given.append(("--explore", [.pbt])) }
        if space != nil { given.append(("--space", [.pbt])) }
        if initial != nil { given.append(("--initial", [.pbt])) }
        if patienceGenerations != nil { given.append(("--patience-generations", [.pbt])) }
        if minImprovement != nil { given.append(("--min-improvement", [.pbt])) }
        return given.filter { !$0.used.contains(strategy) }.map { flag, used in
            "\(flag) (\(used.map(\.rawValue).sorted().joined(separator: " and ")) only)"
        }
    }

    /// Everything that can be refused is refused on every rank before anything is generated,
    /// trained or written: flags the strategy does not use, the grid, the rank layout, each grid
    /// point's config, the strategy's settings, the data file.
    func preflight(world: Communicator) throws -> SearchPlan {
        let unused = unusedFlags()
        guard unused.isEmpty else {
            throw SearchError("--strategy \(strategy.rawValue) does not use \(unused.joined(separator: ", ")): drop \(unused.count == 1 ? "it" : "them"), or choose the strategy that uses \(unused.count == 1 ? "it" : "them")")
        }
        try Search.checkLayout(worldSize: world.size, ranksPerTrial: ranksPerTrial)
        var config = try options.plannedConfig(data: data)
        // A search trial is one model; `ensemble` is what `train` does with a config.
        config.run.ensemble = 1
        return SearchPlan(setup: try makeSetup(config: config))
    }


    func makeSetup(config: Config) throws -> SearchSetup {
        switch strategy {
        case .grid:
            return try .grid(SearchGrid(specs: grid.isEmpty ? SearchGrid.defaultSpecs : grid), base: config, metric: chosenMetric)
        case .asha:
            return try .asha(SearchGrid(specs: grid.isEmpty ? SearchGrid.defaultSpecs : grid), base: config, graceEpochs: graceEpochs,
                             reductionFactor: reductionFactor ?? 3, synchronous: promotion == .sync, metric: chosenMetric)
        case .pbt:
            let chosen = try SearchSpace(specs: explore, file: space)
            return try .pbt(members: population ?? 8, generationEpochs: generationEpochs ?? 25,
                            burnInEpochs: burnInEpochs ?? max(config.train.klWarmupEpochs, config.train.weightDecayWarmupEpochs),
                            space: chosen.fields.isEmpty ? .standard : chosen, sampleInitial: (initial ?? .sample) == .sample,
                            patience: patienceGenerations ?? 4, minImprovement: minImprovement ?? 5e-4, base: config)
        }
    }

    func search(world: Communicator, plan: SearchPlan) throws {
        let say: (String) -> Void = world.isRoot ? { lflow_dist.say($0) } : { _ in }
        world.deadline = CollectiveDeadline(seconds: plan.setup.base.run.collectiveTimeoutSeconds)
        if strategy == .asha && graceEpochs == nil, let grace = plan.setup.graceEpochs {
            say("ASHA: --grace-epochs \(grace), the longest first rung from which a trial still reaches the config's \(plan.setup.base.train.epochs) epochs (give --grace-epochs to choose)")
        }
        let dataPath = try ConfigOptions.dataPath(data, comm: world, say: say)
        let tensors = try NLBTensors.load(path: dataPath)
        let search = try Search(plan.setup, tensors: tensors, dataPath: dataPath, run: RunDirectory(runDir ?? DefaultPaths.searchRun(data: dataPath)),
                                datasetName: datasetName, world: world, ranksPerTrial: ranksPerTrial, retryFailed: retryFailed, say: say)
        try search.runSearch()
    }
}

/// What `search`'s preflight settles on every rank.
struct SearchPlan {
    let setup: SearchSetup
}

extension SearchMetric: ExpressibleByArgument {}

enum StrategyName: String, CaseIterable, ExpressibleByArgument { case grid, asha, pbt }

enum Promotion: String, CaseIterable, ExpressibleByArgument { case async, sync }
enum InitialValues: String, CaseIterable, ExpressibleByArgument { case sample, config }
