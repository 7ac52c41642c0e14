import CHDF5
import CShims
import Foundation

// HDF5: a thin wrapper over libhdf5 (owned handles, typed datasets and attributes, one process-
// wide lock). It knows nothing of checkpoints or NLB layouts.

/// An HDF5 failure, phrased for the person who has to act on it: it names the file and the
/// object.
public struct HDF5Error: Error, CustomStringConvertible, Equatable {
    public let path: String
    public let object: String?
    public let message: String

    public init(path: String, object: String? = nil, _ message: String) {
        self.path = path
        self.object = object
        self.message = message
    }

    public var description: String {
        "'\(path)'" + (object.map { ", '\($0)'" } ?? "") + ": " + message
    }
}

/// Debian's libhdf5 is built without thread safety, so every call into it goes through this
/// one process-wide lock (test runners and any future threads call HDF5 concurrently).
let libraryLock = NSRecursiveLock()

@inline(__always)
func locked<T>(_ body: () throws -> T) rethrows -> T {
    libraryLock.lock()
    defer { libraryLock.unlock() }
    return try body()
}

/// An open HDF5 file. Owns its handle and closes it in `deinit`; every dataset, dataspace,
/// type and attribute handle it opens is closed before the call returns. Safe to use from
/// several threads: calls into libhdf5 are serialised.
///
/// Paths such as "model/encoder.weight_ih" are relative to the root; dots are plain characters.
public final class H5File {
    public let path: String
    let id: hid_t

    private static let silenced: Void = {
        // Failures become Swift errors; HDF5's own error-stack printing would only add noise.
        H5Eset_auto2(lf_h5e_default(), nil, nil)
    }()

    private init(path: String, id: hid_t) {
        self.path = path
        self.id = id
    }

    deinit { locked { _ = H5Fclose(id) } }

    /// Opens an existing file read-only.
    public static func open(_ path: String) throws -> H5File {
        return try locked {
            _ = silenced
            guard FileManager.default.fileExists(atPath: path) else {
                throw HDF5Error(path: path, "no such file. Check the path.")
            }
            guard H5Fis_hdf5(path) > 0 else {
                throw HDF5Error(path: path, "not an HDF5 file, or truncated/corrupt. Check that the file was written completely (e.g. by nlb_tools' save_to_h5 or by lflow-dist).")
            }
            let id = H5Fopen(path, lf_h5f_acc_rdonly(), lf_h5p_default())
            guard id >= 0 else { throw HDF5Error(path: path, "cannot be opened for reading; it may be corrupt or locked by another writer.") }
            return H5File(path: path, id: id)
        }
    }

    /// Creates a file, replacing any existing one.
    public static func create(_ path: String) throws -> H5File {
        return try locked {
            _ = silenced
            let id = H5Fcreate(path, lf_h5f_acc_trunc(), lf_h5p_default(), lf_h5p_default())
            guard id >= 0 else {
                let dir = (path as NSString).deletingLastPathComponent
                throw HDF5Error(path: path, "cannot be created. Check that the directory '\(dir.isEmpty ? "." : dir)' exists, is writable and has free space.")
            }
            return H5File(path: path, id: id)
        }
    }

    /// Flushes buffered data to the operating system.
    public func flush() throws {
        try locked {
            guard H5Fflush(id, H5F_SCOPE_GLOBAL) >= 0 else { throw HDF5Error(path: path, "flush failed (disk full or unwritable?)") }
        }
    }

    // MARK: Structure

    /// Whether a link (dataset or group) exists at `object`, checking every parent on the way.
    public func has(_ object: String) -> Bool {
        return locked {
            var partial = ""
            for component in object.split(separator: "/") {
                partial += (partial.isEmpty ? "" : "/") + component
                guard H5Lexists(id, partial, lf_h5p_default()) > 0 else { return false }
            }
            return !partial.isEmpty
        }
    }

    /// Names of the direct children of `group` that are datasets (`groups: false`) or groups.
    public func children(of group: String = "/", groups: Bool = false) throws -> [String] {
        return try locked {
            let gid = H5Gopen2(id, group, lf_h5p_default())
            guard gid >= 0 else { throw HDF5Error(path: path, object: group, "no such group") }
            defer { H5Gclose(gid) }
            var info = H5G_info_t()
            guard H5Gget_info(gid, &info) >= 0 else { throw HDF5Error(path: path, object: group, "cannot list the group") }
            var names: [String] = []
            for i in 0..<info.nlinks {
                let size = H5Lget_name_by_idx(gid, ".", H5_INDEX_NAME, H5_ITER_INC, i, nil, 0, lf_h5p_default())
                guard size >= 0 else { continue }
                var buffer = [CChar](repeating: 0, count: Int(size) + 1)
                H5Lget_name_by_idx(gid, ".", H5_INDEX_NAME, H5_ITER_INC, i, &buffer, Int(size) + 1, lf_h5p_default())
                let name = string(fromNullTerminated: buffer)
                let oid = H5Oopen(gid, name, lf_h5p_default())
                guard oid >= 0 else { continue }
                let kind = H5Iget_type(oid)
                H5Oclose(oid)
                if (groups && kind == H5I_GROUP) || (!groups && kind == H5I_DATASET) { names.append(name) }
            }
            return names
        }
    }

    // MARK: Datasets

    private func openDataset(_ object: String) throws -> hid_t {
        guard has(object) else { throw HDF5Error(path: path, object: object, "missing") }
        let dset = H5Dopen2(id, object, lf_h5p_default())
        guard dset >= 0 else { throw HDF5Error(path: path, object: object, "is not a dataset") }
        return dset
    }

    private func shape(ofDataset dset: hid_t) -> [Int] {
        let space = H5Dget_space(dset)
        defer { H5Sclose(space) }
        let rank = Int(H5Sget_simple_extent_ndims(space))
        guard rank > 0 else { return [] }
        var dims = [hsize_t](repeating: 0, count: rank)
        H5Sget_simple_extent_dims(space, &dims, nil)
        return dims.map { Int($0) }
    }

    /// The dataset's shape ([] for a scalar).
    public func shape(of object: String) throws -> [Int] {
        return try locked {
            let dset = try openDataset(object)
            defer { H5Dclose(dset) }
            return shape(ofDataset: dset)
        }
    }

    /// Reads a numeric dataset of any integer or float type (or an h5py bool), converted to `T`.
    private func read<T>(_ object: String, memoryType: hid_t, zero: T, convert: (Double) -> T) throws -> (shape: [Int], values: [T]) {
        let dset = try openDataset(object)
        defer { H5Dclose(dset) }
        let type = H5Dget_type(dset)
        defer { H5Tclose(type) }
        let typeClass = H5Tget_class(type)
        let shape = shape(ofDataset: dset)
        if typeClass == H5T_ENUM && H5Tget_size(type) == 1 {
            // h5py stores numpy bools as a one-byte enum (FALSE = 0, TRUE = 1): read the bytes.
            var bytes = [Int8](repeating: 0, count: shape.reduce(1, *))
            let status = bytes.isEmpty ? 0 : bytes.withUnsafeMutableBytes {
                H5Dread(dset, type, lf_h5s_all(), lf_h5s_all(), lf_h5p_default(), $0.baseAddress)
            }
            guard status >= 0 else { throw HDF5Error(path: path, object: object, "cannot be read; the file may be corrupt") }
            return (shape, bytes.map { convert(Double($0)) })
        }
        guard typeClass == H5T_INTEGER || typeClass == H5T_FLOAT else {
            let kind = typeClass == H5T_VLEN ? "holds variable-length lists" : typeClass == H5T_STRING ? "holds strings" : "is not numeric"
            throw HDF5Error(path: path, object: object, "\(kind); a number array (integer or float) is expected here")
        }
        var values = [T](repeating: zero, count: shape.reduce(1, *))
        if values.isEmpty { return (shape, values) }
        let status = values.withUnsafeMutableBytes {
            H5Dread(dset, memoryType, lf_h5s_all(), lf_h5s_all(), lf_h5p_default(), $0.baseAddress)
        }
        guard status >= 0 else { throw HDF5Error(path: path, object: object, "cannot be read; the file may be corrupt") }
        return (shape, values)
    }

    public func readDoubles(_ object: String) throws -> (shape: [Int], values: [Double]) {
        try locked {
            try read(object, memoryType: lf_h5t_native_double(), zero: 0.0, convert: { $0 })
        }
    }

    public func readFloats(_ object: String) throws -> (shape: [Int], values: [Float]) {
        try locked {
            try read(object, memoryType: lf_h5t_native_float(), zero: Float(0), convert: { Float($0) })
        }
    }

    /// Index lists: the variable-length integer arrays `nlb_tools`' `save_to_h5` writes for
    /// `*_cond_idx` (one list per condition, possibly empty), or a rectangular integer array
    /// whose rows are the lists (negative entries pad).
    public func readIndexLists(_ object: String) throws -> [[Int]] {
        let vlen = try locked { () throws -> [[Int]]? in
            let dset = try openDataset(object)
            defer { H5Dclose(dset) }
            let type = H5Dget_type(dset)
            defer { H5Tclose(type) }
            guard H5Tget_class(type) == H5T_VLEN else { return nil }
            let space = H5Dget_space(dset)
            defer { H5Sclose(space) }
            let count = shape(ofDataset: dset).reduce(1, *)
            let memory = H5Tvlen_create(lf_h5t_native_int64())
            defer { H5Tclose(memory) }
            var lists = [hvl_t](repeating: hvl_t(len: 0, p: nil), count: count)
            guard count == 0 || H5Dread(dset, memory, lf_h5s_all(), lf_h5s_all(), lf_h5p_default(), &lists) >= 0 else {
                throw HDF5Error(path: path, object: object, "cannot be read as variable-length integer lists")
            }
            defer { if count > 0 { H5Dvlen_reclaim(memory, space, lf_h5p_default(), &lists) } }
            return lists.map { list in
                guard let p = list.p, list.len > 0 else { return [] }
                let values = p.bindMemory(to: Int64.self, capacity: Int(list.len))
                return (0..<Int(list.len)).map { Int(values[$0]) }
            }
        }
        if let vlen { return vlen }
        let (dims, values) = try readDoubles(object)
        let width = dims.count > 1 ? dims.dropFirst().reduce(1, *) : 1
        return (0..<(dims.first ?? 0)).map { row in
            (0..<width).map { Int(values[row * width + $0]) }.filter { $0 >= 0 }
        }
    }

    /// Writes a dataset with `shape` ([] = scalar), creating parent groups. Replaces nothing:
    /// writing an existing name is an error.
    private func write(_ object: String, shape: [Int], memoryType: hid_t, bytes: UnsafeRawPointer?, count: Int) throws {
        precondition(shape.reduce(1, *) == count, "write \(object): shape \(shape) does not hold \(count) values")
        let space: hid_t
        if shape.isEmpty {
            space = H5Screate(H5S_SCALAR)
        } else {
            let dims = shape.map { hsize_t($0) }
            space = H5Screate_simple(Int32(dims.count), dims, nil)
        }
        defer { H5Sclose(space) }
        let lcpl = H5Pcreate(lf_h5p_link_create())
        defer { H5Pclose(lcpl) }
        H5Pset_create_intermediate_group(lcpl, 1)
        let dset = H5Dcreate2(id, object, memoryType, space, lcpl, lf_h5p_default(), lf_h5p_default())
        guard dset >= 0 else { throw HDF5Error(path: path, object: object, "cannot create the dataset (disk full, or the name exists?)") }
        defer { H5Dclose(dset) }
        if count > 0 {
            guard H5Dwrite(dset, memoryType, lf_h5s_all(), lf_h5s_all(), lf_h5p_default(), bytes) >= 0 else {
                throw HDF5Error(path: path, object: object, "write failed (disk full or unwritable?)")
            }
        }
    }

    public func write(_ object: String, shape: [Int], floats: UnsafeBufferPointer<Float>) throws {
        try locked {
            try write(object, shape: shape, memoryType: lf_h5t_native_float(), bytes: floats.baseAddress, count: floats.count)
        }
    }

    public func write(_ object: String, shape: [Int], floats: [Float]) throws {
        try locked {
            try floats.withUnsafeBufferPointer { try write(object, shape: shape, floats: $0) }
        }
    }

    public func write(_ object: String, shape: [Int], doubles: [Double]) throws {
        try locked {
            try doubles.withUnsafeBytes {
                try write(object, shape: shape, memoryType: lf_h5t_native_double(), bytes: $0.baseAddress, count: doubles.count)
            }
        }
    }

    public func write(_ object: String, shape: [Int], int64s: [Int64]) throws {
        try locked {
            try int64s.withUnsafeBytes {
                try write(object, shape: shape, memoryType: lf_h5t_native_int64(), bytes: $0.baseAddress, count: int64s.count)
            }
        }
    }

    // MARK: Attributes

    /// Writes (or replaces) attribute `name` of `object` ("/" = the file root).
    private func writeAttribute(_ name: String, on object: String, type: hid_t, bytes: UnsafeRawPointer) throws {
        if H5Aexists_by_name(id, object, name, lf_h5p_default()) > 0 {
            H5Adelete_by_name(id, object, name, lf_h5p_default())
        }
        let space = H5Screate(H5S_SCALAR)
        defer { H5Sclose(space) }
        let attr = H5Acreate_by_name(id, object, name, type, space, lf_h5p_default(), lf_h5p_default(), lf_h5p_default())
        guard attr >= 0 else { throw HDF5Error(path: path, object: "\(object)@\(name)", "cannot create the attribute") }
        defer { H5Aclose(attr) }
        guard H5Awrite(attr, type, bytes) >= 0 else { throw HDF5Error(path: path, object: "\(object)@\(name)", "attribute write failed") }
    }

    /// A variable-length UTF-8 string attribute (h5py reads it as `str`).
    public func writeAttribute(_ name: String, string: String, on object: String = "/") throws {
        try locked {
            let type = H5Tcopy(lf_h5t_c_s1())
            defer { H5Tclose(type) }
            H5Tset_size(type, lf_h5t_variable())
            H5Tset_cset(type, H5T_CSET_UTF8)
            try string.withCString { cString in
                var pointer: UnsafePointer<CChar>? = cString
                try withUnsafeBytes(of: &pointer) { try writeAttribute(name, on: object, type: type, bytes: $0.baseAddress!) }
            }
        }
    }

    public func writeAttribute(_ name: String, double: Double, on object: String = "/") throws {
        try locked {
            var value = double
            try writeAttribute(name, on: object, type: lf_h5t_native_double(), bytes: &value)
        }
    }

    public func writeAttribute(_ name: String, int: Int64, on object: String = "/") throws {
        try locked {
            var value = int
            try writeAttribute(name, on: object, type: lf_h5t_native_int64(), bytes: &value)
        }
    }

    private func openAttribute(_ name: String, on object: String) throws -> hid_t {
        guard H5Aexists_by_name(id, object, name, lf_h5p_default()) > 0 else {
            throw HDF5Error(path: path, object: "\(object)@\(name)", "attribute missing")
        }
        return H5Aopen_by_name(id, object, name, lf_h5p_default(), lf_h5p_default())
    }

    public func hasAttribute(_ name: String, on object: String = "/") -> Bool {
        return locked {
            H5Aexists_by_name(id, object, name, lf_h5p_default()) > 0
        }
    }

    /// Reads a string attribute, variable-length (h5py's default) or fixed-length.
    public func readAttributeString(_ name: String, on object: String = "/") throws -> String {
        return try locked {
            let attr = try openAttribute(name, on: object)
            defer { H5Aclose(attr) }
            let fileType = H5Aget_type(attr)
            defer { H5Tclose(fileType) }
            guard H5Tget_class(fileType) == H5T_STRING else {
                throw HDF5Error(path: path, object: "\(object)@\(name)", "attribute is not a string")
            }
            let memType = H5Tcopy(lf_h5t_c_s1())
            defer { H5Tclose(memType) }
            if H5Tis_variable_str(fileType) > 0 {
                H5Tset_size(memType, lf_h5t_variable())
                H5Tset_cset(memType, H5Tget_cset(fileType))
                var pointer: UnsafeMutablePointer<CChar>?
                guard H5Aread(attr, memType, &pointer) >= 0, let pointer else {
                    throw HDF5Error(path: path, object: "\(object)@\(name)", "cannot read the attribute")
                }
                defer { H5free_memory(pointer) }
                return String(cString: pointer)
            }
            let size = H5Tget_size(fileType)
            H5Tset_size(memType, size)
            var buffer = [CChar](repeating: 0, count: size + 1)
            guard H5Aread(attr, memType, &buffer) >= 0 else {
                throw HDF5Error(path: path, object: "\(object)@\(name)", "cannot read the attribute")
            }
            return string(fromNullTerminated: buffer)
        }
    }

    public func readAttributeDouble(_ name: String, on object: String = "/") throws -> Double {
        return try locked {
            let attr = try openAttribute(name, on: object)
            defer { H5Aclose(attr) }
            var value = 0.0
            guard H5Aread(attr, lf_h5t_native_double(), &value) >= 0 else {
                throw HDF5Error(path: path, object: "\(object)@\(name)", "cannot read the attribute as a number")
            }
            return value
        }
    }

    public func readAttributeInt(_ name: String, on object: String = "/") throws -> Int64 {
        return try locked {
            let attr = try openAttribute(name, on: object)
            defer { H5Aclose(attr) }
            var value: Int64 = 0
            guard H5Aread(attr, lf_h5t_native_int64(), &value) >= 0 else {
                throw HDF5Error(path: path, object: "\(object)@\(name)", "cannot read the attribute as an integer")
            }
            return value
        }
    }
}

/// The UTF-8 text before the first NUL.
func string(fromNullTerminated buffer: [CChar]) -> String {
    String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
}
