import ArgumentParser
import Foundation
import Support

/// Runs a module of the project's Python package (`lflow_dist`, in python/): what reads and
/// writes NWB (`prepare`, `export`), on pynwb and nlb_tools, the libraries labs already trust.
/// The interpreter is $LFLOW_DIST_PYTHON, else python3 on the PATH; the package is the one
/// beside this binary in a checkout (python/, found from .build/<config>/lflow-dist), else the
/// installed one. Its output goes straight to ours; its exit status becomes ours.
enum PythonModule {
    static func run(_ module: String, arguments: [String]) throws {
        let interpreter = ProcessInfo.processInfo.environment["LFLOW_DIST_PYTHON"] ?? "python3"
        var environment = ProcessInfo.processInfo.environment
        if let source = checkoutPackage() {
            environment["PYTHONPATH"] = [source, environment["PYTHONPATH"]].compactMap { $0 }.filter { !$0.isEmpty }.joined(separator: ":")
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = [interpreter, "-m", module] + arguments
        process.environment = environment
        do { try process.run() } catch {
            throw RecordingCommandError("cannot start \(interpreter) for \(module): \(error). Install Python 3 with the package: pip install ./python (in a checkout), or set LFLOW_DIST_PYTHON to an interpreter that has it.")
        }
        process.waitUntilExit()
        guard process.terminationStatus == 0 else { throw ExitCode(process.terminationStatus) }
    }

    /// python/ of the checkout this binary was built in, when it holds the package.
    private static func checkoutPackage() -> String? {
        let binary = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        // .build/<triple>/release/lflow-dist or .build/release/lflow-dist: walk up to the checkout.
        var directory = binary.deletingLastPathComponent()
        for _ in 0..<4 {
            let candidate = directory.appendingPathComponent("python")
            if FileManager.default.fileExists(atPath: candidate.appendingPathComponent("lflow_dist/__init__.py").path) { return candidate.path }
            directory = directory.deletingLastPathComponent()
        }
        return nil
    }
}

/// What `prepare` and `export` say when the Python side cannot run or the run has nothing to export.
enum RecordingCommandFailure {}
typealias RecordingCommandError = Failure<RecordingCommandFailure>
