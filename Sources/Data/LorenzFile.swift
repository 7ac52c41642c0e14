import HDF5

extension LorenzDataset {
    /// Writes the NLB tensor layout at the root, the ground truth under `truth/`, and the
    /// condition indices (`eval_cond_idx`, `train_cond_idx`) for PSTH metrics.
    public func write(path: String, datasetName: String = "lorenz") throws {
        let file = try H5File.create(path)
        for key in tensors.keys.sorted() {
            let t = tensors[key]!
            try file.write(key, shape: t.shape, floats: t.values)
        }
        for key in truth.keys.sorted() {
            let t = truth[key]!
            try file.write("truth/\(key)", shape: t.shape, floats: t.values)
        }
        try file.write("eval_cond_idx", shape: [evalConditions.count], int64s: evalConditions.map(Int64.init))
        try file.write("train_cond_idx", shape: [trainConditions.count], int64s: trainConditions.map(Int64.init))
        try file.writeAttribute("generator", string: "lflow-dist synth: Lorenz attractor (sigma 10, rho 28, beta 8/3)")
        try file.writeAttribute("seed", int: Int64(spec.seed))
        try file.writeAttribute("dataset_name", string: datasetName)
        try file.flush()
    }
}

extension LorenzDataset {
    /// The evaluation targets in the layout `nlb_tools.evaluation.evaluate` reads, in group
    /// `group`: eval spikes (held-out and forward), behaviour, and the true PSTH per condition
    /// with the eval trials of each condition (`eval_cond_idx`, conditions × trials).
    public func writeTargets(path: String, group: String = "lorenz") throws {
        let file = try H5File.create(path)
        for key in ["eval_spikes_heldout", "eval_spikes_heldin_forward", "eval_spikes_heldout_forward", "train_behavior", "eval_behavior"] {
            let t = tensors[key]!
            try file.write("\(group)/\(key)", shape: t.shape, floats: t.values)
        }
        let rates = truth["eval_rates"]!, bins = spec.bins, n = spec.neurons
        let perCondition = evalConditions.count / max(spec.conditions, 1)
        var psth: [Float] = [], index: [Int64] = []
        for c in 0..<spec.conditions {
            let members = evalConditions.indices.filter { evalConditions[$0] == c }
            index.append(contentsOf: members.map(Int64.init))
            let first = members[0]
            for t in 0..<bins { for i in 0..<n { psth.append(rates[first, t, i]) } }
        }
        try file.write("\(group)/psth", shape: [spec.conditions, bins, n], floats: psth)
        try file.write("\(group)/eval_cond_idx", shape: [spec.conditions, perCondition], int64s: index)
        try file.flush()
    }
}
