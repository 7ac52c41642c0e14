import Bench
import Distributed
import Foundation
import Inference
import Kernels
import Model
import RunFiles
import Support
import Testing
@testable import Training

// Training's pieces in-process, without mpirun or the binary: schedules, the splits of work
// over ranks, the optimiser step and the bench worker that times it, the shared formats.

@Suite("Schedules and splits")
struct ScheduleTests {
    @Test("ReduceLROnPlateau: relative threshold 1e-4, patience, factor, floor")
    func plateau() {
        var s = PlateauScheduler(learningRate: 1, factor: 0.5, patience: 2, minLearningRate: 0.3)
        var reduced = s.step(10)             // best 10
        #expect(!reduced)
        reduced = s.step(9.9995)             // within 1e-4 of 10: not an improvement (bad 1)
        #expect(!reduced)
        reduced = s.step(11)                 // bad 2
        #expect(!reduced)
        reduced = s.step(12)                 // bad 3 > patience: reduce, counter resets
        #expect(reduced && s.learningRate == 0.5)
        reduced = s.step(9)                  // improvement
        #expect(!reduced && s.badEpochs == 0)
        for _ in 0..<2 { s.step(9) }
        reduced = s.step(9)                  // 0.25 is below the floor: clamped
        #expect(reduced && s.learningRate == 0.3)
        for _ in 0..<3 { s.step(9) }
        #expect(s.learningRate == 0.3)       // at the floor: no further change
    }

    @Test("Validation split is seeded, disjoint and covers every trial")
    func split() {
        let a = ValidationSplit(trials: 50, fraction: 0.2, seed: 3), b = ValidationSplit(trials: 50, fraction: 0.2, seed: 3)
        #expect(a == b && a.validation.count == 10 && a.training.count == 40)
        #expect(Set(a.validation).isDisjoint(with: a.training) && Set(a.validation + a.training) == Set(0..<50))
        #expect(ValidationSplit(trials: 50, fraction: 0.2, seed: 4) != a)
        #expect(seededPermutation(10, seed: 1, purpose: .shuffle, key: 0) != seededPermutation(10, seed: 1, purpose: .shuffle, key: 1))
        #expect(seededPermutation(10, seed: 1, purpose: .shuffle, key: 0).sorted() == Array(0..<10))
    }
}

@Suite("Splits of work over ranks")
struct PartitionTests {
    @Test("Contiguous parts in order that cover every item once; the first count % parts are one longer")
    func partition() {
        for count in [0, 1, 2, 5, 7, 64, 65, 1300] {
            for parts in 1...5 {
                let p = Partition(count: count, parts: parts)
                let ranges = (0..<parts).map(p.range)
                #expect(ranges.flatMap { Array($0) } == Array(0..<count), "\(count) over \(parts)")
                let longer = count % parts
                for (i, r) in ranges.enumerated() {
                    #expect(r.count == count / parts + (i < longer ? 1 : 0), "part \(i) of \(count) over \(parts)")
                }
            }
        }
        // A global batch of 10 over 3 ranks, the way training and prediction split it.
        #expect(Partition(count: 10, parts: 3).sizes == [4, 3, 3])
        #expect(SingleProcess().share(Array(20..<25)) == Array(20..<25))
    }
}

@Suite("The time budget")
struct BudgetTests {
    @Test("Warm-ups shrink with the planned epochs but never to zero unless they are zero")
    func warmupScaling() {
        #expect(Trainer.scaled(200, 0.22) == 44)
        #expect(Trainer.scaled(200, 1) == 200)
        #expect(Trainer.scaled(3, 0.01) == 1)
        #expect(Trainer.scaled(0, 0.5) == 0)
    }

    @Test("Durations read the same in every message: tenths under ten seconds, then s, m, h")
    func durations() {
        #expect(formatDuration(4.24) == "4.2s")
        #expect(formatDuration(0) == "0s" && formatDuration(4) == "4s")
        #expect(formatDuration(12.4) == "12s")
        #expect(formatDuration(187) == "3m07s")
        #expect(formatDuration(3720) == "1h02m")
        #expect(formatDuration(.infinity) == "?")
    }
}

@Suite("The training step")
struct TrainingStepTests {
    static let dims = DataDims(bins: 6, forwardBins: 2, heldIn: 5, heldOut: 3)

    static func config() -> Config {
        var c = Config()
        c.model.hidden = 8
        c.model.heads = 2
        c.model.feedForward = 16
        c.train.batchSize = 4
        return c
    }

    static func batch() -> Batch<Float> {
        let batch = Batch<Float>(dims: dims, capacity: 4)
        batch.count = 4
        for i in 0..<batch.targets.count { batch.targets[i] = Float(i % 3) }
        return batch
    }

    @Test("A finite step updates the weights and Adam; a non-finite gradient returns before any update")
    func nonFiniteGradient() throws {
        let config = Self.config()
        let norm = LossNormalisation(observedEntries: 4 * Self.dims.steps * Self.dims.outputs, trials: 4)
        let model = LangevinFlow<Float>(config: config.model, dims: Self.dims, maxBatch: 4)
        model.params.initialise(seed: 1)
        let step = try TrainingStep(model: model, config: config, comm: SingleProcess())
        let before = (0..<model.params.values.count).map { model.params.values[$0] }
        let noise = NoiseContext(stochastic: true, seed: 1, trialIndices: [0, 1, 2, 3])
        let finite = try step.take(Self.batch(), noise: noise, klWeight: 0.1, normalisation: norm, learningRate: 1e-3, weightDecay: 0, step: 0)
        #expect(finite.gradNorm.isFinite && finite.loss != nil && step.adam.step == 1)
        #expect((0..<before.count).contains { model.params.values[$0] != before[$0] })

        model.params.values[0] = .nan
        let poisoned = (0..<model.params.values.count).map { model.params.values[$0].bitPattern }
        let failed = try step.take(Self.batch(), noise: noise, klWeight: 0.1, normalisation: norm, learningRate: 1e-3, weightDecay: 0, step: 1)
        #expect(!failed.gradNorm.isFinite)
        #expect(step.adam.step == 1, "no Adam update after a non-finite gradient")
        #expect((0..<poisoned.count).allSatisfy { model.params.values[$0].bitPattern == poisoned[$0] }, "the weights are those of before the step")
    }

    @Test("bench times the trainer's own step: every phase is charged, the wait before the allreduce apart")
    func benchWorker() throws {
        let result = try Bench.trainingSteps(size: .smoke, precision: .float32, steps: 3, warmup: 1, comm: SingleProcess())
        #expect(result.stepSeconds.count == 3 && result.median > 0 && result.parameters > 0)
        for phase in PhaseClock.Phase.allCases {
            #expect(result.phases[phase.name] != nil, "phase \(phase.name) missing")
        }
        #expect((result.phases[PhaseClock.Phase.optimiser.name] ?? 0) > 0)
        #expect((result.phases[PhaseClock.Phase.dynamics.name] ?? 0) > 0)
    }
}

@Suite("precision: auto")
struct PrecisionChoiceTests {
    static let dims = DataDims(bins: 6, forwardBins: 2, heldIn: 5, heldOut: 3)

    @Test("auto times both precisions once, keeps the faster in precision.json, and a resumed run keeps that choice; float32 is left alone")
    func choice() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("lflow-precision-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let run = RunDirectory(dir)
        var config = Config()
        config.model.hidden = 8
        config.model.feedForward = 16
        config.train.batchSize = 4
        var lines: [String] = []
        let first = try PrecisionChoice.resolve(config, dims: Self.dims, run: run, warmStart: nil, comm: SingleProcess()) { lines.append($0) }
        let kept = try #require(JSON.read(PrecisionChoice.Record.self, from: run.precision))
        #expect(first.model.precision == kept.timing.faster && kept.choice == kept.timing.faster.rawValue)
        #expect(kept.timing.float32 > 0 && kept.timing.bf16 > 0 && kept.shapes.count == 6)
        #expect(lines.count == 1 && lines[0].hasPrefix("precision auto: \(first.model.precision.rawValue), the faster here (float32 "))
        // The run keeps its choice, whatever a new measurement would say.
        var other = kept
        other.choice = kept.choice == "bf16" ? "float32" : "bf16"
        try JSON.write(other, to: run.precision)
        let resumed = try PrecisionChoice.resolve(config, dims: Self.dims, run: run, warmStart: nil, comm: SingleProcess()) { _ in }
        #expect(resumed.model.precision.rawValue == other.choice)
        config.model.precision = .float32
        #expect(try PrecisionChoice.resolve(config, dims: Self.dims, run: RunDirectory(dir + "/none"), warmStart: nil, comm: SingleProcess()) { _ in } == config)
        #expect(!FileManager.default.fileExists(atPath: dir + "/none/precision.json"))
    }
}
