import HDF5

extension LorenzDataset {
    /// Writes the NLB tensor layout at the root, the ground truth under `truth/`, and the
    /// condition indices (`eval_cond_idx`, `train_cond_idx`) for PSTH metrics.
    public func write(path: String) throws {
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
        try file.writeAttribute("dataset_name", string: "lorenz")
        try file.flush()
    }
}
