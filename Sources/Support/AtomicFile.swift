import Foundation
#if canImport(Glibc)
import Glibc
#endif

public enum FileFailure {}
/// A file that could not be written or synced: names the path and the system's reason.
public typealias FileError = Failure<FileFailure>

/// Writes a file atomically: `body` fills a temporary file in the same directory
/// (`.<name>.tmp-<pid>`, which a restarted run removes), then fsync, rename over `path`, fsync
/// of the directory. A crash at any point leaves either the old file or the new one.
public enum AtomicFile {
    public static func write(_ path: String, body: (_ temporary: String) throws -> Void) throws {
        let url = URL(fileURLWithPath: path)
        let directory = url.deletingLastPathComponent().path
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: directory, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw FileError("cannot write '\(path)': the directory '\(directory)' does not exist. Create it or choose another path.")
        }
        let temporary = url.deletingLastPathComponent().appendingPathComponent(".\(url.lastPathComponent).tmp-\(getpid())").path
        do {
            try body(temporary)    // the file must be closed when body returns
            try fsync(path: temporary)
            guard rename(temporary, path) == 0 else {
                throw FileError("cannot move the finished file into place at '\(path)': \(String(cString: strerror(errno)))")
            }
            try fsync(path: directory)
        } catch {
            unlink(temporary)
            throw error
        }
    }

    static func fsync(path: String) throws {
        let fd = Glibc.open(path, O_RDONLY)
        guard fd >= 0 else { throw FileError("cannot open '\(path)' to sync it: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        guard Glibc.fsync(fd) == 0 else { throw FileError("fsync of '\(path)' failed: \(String(cString: strerror(errno))) (disk full?)") }
    }
}
