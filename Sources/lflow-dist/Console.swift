import Foundation

/// Writes one line to standard output at once (unbuffered), so progress shows up promptly in
/// SLURM logs and pipes.
func say(_ line: String) {
    FileHandle.standardOutput.write(Data((line + "\n").utf8))
}
