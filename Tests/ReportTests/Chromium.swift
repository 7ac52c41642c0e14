import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// What a real browser made of a page.
struct RenderCheck: Decodable {
    /// console.error calls, uncaught exceptions and unhandled rejections, plus error-looking
    /// console lines that Chromium logged to stderr.
    var consoleErrors: [String]
    /// `svg.figure` elements in the rendered DOM.
    var figures: Int
    /// Pairs of `<text>` in the same svg whose rendered boxes intersect by more than 1 px.
    var overlaps: [String]
    /// `<text>` whose rendered box sticks out of its svg by more than 1 px.
    var clipped: [String]
    /// Images and other elements whose resource failed to load.
    var missingResources: [String]
    /// Anything the page loaded or referenced over the network (a report must have none).
    var externalResources: [String]
    /// Document height at the rendering width (CSS px).
    var pageHeight: Int
}

enum ChromiumError: Error, CustomStringConvertible {
    case notFound(String)
    case failed(String)
    case timedOut(String)

    var description: String {
        switch self {
        case .notFound(let s), .failed(let s), .timedOut(let s): return s
        }
    }
}

/// Headless Chromium (Debian's `chromium`) driven from the command line: a DOM dump with an
/// injected checking script, then a full-page screenshot. No npm, no Python, no DevTools socket.
enum HeadlessChromium {
    static let timeout: Double = 60

    static var binary: String? {
        let env = ProcessInfo.processInfo.environment["CHROMIUM_BIN"].map { [$0] } ?? []
        return (env + ["/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"])
            .first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    /// nil when Chromium renders a trivial page here; otherwise why not.
    static let unavailable: String? = {
        guard binary != nil else {
            return "chromium not found (apt-get install chromium, or set CHROMIUM_BIN)"
        }
        let dir = NSTemporaryDirectory() + "chromium-probe-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        do {
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            let page = dir + "/probe.html"
            try "<!DOCTYPE html><html><body><p>chromium-probe-ok</p></body></html>".write(toFile: page, atomically: true, encoding: .utf8)
            let r = try run(["--dump-dom", "--window-size=400,300", URL(fileURLWithPath: page).absoluteString])
            if r.stdout.contains("chromium-probe-ok") { return nil }
            return "chromium rendered nothing (exit \(r.status)): " + firstError(r.stderr)
        } catch {
            return "chromium failed: \(error)"
        }
    }()

    /// Renders `path` at `width` CSS px, runs the checks, and writes a full-page PNG to `screenshot`.
    static func check(html path: String, screenshot: String, width: Int = 1280) throws -> RenderCheck {
        let original = try String(contentsOfFile: path, encoding: .utf8)
        let url = URL(fileURLWithPath: path)
        // The instrumented copy sits next to the original so relative resources still resolve.
        var copy = url.deletingLastPathComponent().appendingPathComponent(".render-check-\(UUID().uuidString).html").path
        do {
            try instrument(original).write(toFile: copy, atomically: true, encoding: .utf8)
        } catch {
            copy = NSTemporaryDirectory() + "render-check-\(UUID().uuidString).html"
            try instrument(original).write(toFile: copy, atomically: true, encoding: .utf8)
        }
        defer { try? FileManager.default.removeItem(atPath: copy) }

        let dump = try run(["--dump-dom", "--window-size=\(width),900", URL(fileURLWithPath: copy).absoluteString])
        guard let start = dump.stdout.range(of: "<pre id=\"render-check\">"),
              let end = dump.stdout.range(of: "</pre>", range: start.upperBound..<dump.stdout.endIndex),
              let json = Data(base64Encoded: String(dump.stdout[start.upperBound..<end.lowerBound])
                                .trimmingCharacters(in: .whitespacesAndNewlines))
        else {
            throw ChromiumError.failed("no check result in the DOM dump (exit \(dump.status)): " + firstError(dump.stderr))
        }
        struct Raw: Decodable {
            var errors: [String]; var figures: Int; var overlaps: [String]; var clipped: [String]
            var missing: [String]; var external: [String]; var height: Int
        }
        let raw = try JSONDecoder().decode(Raw.self, from: json)

        // Console lines from stderr: `[...:INFO:CONSOLE:12] "message", source: file:///... (12)`.
        var errors = raw.errors
        for line in dump.stderr.split(separator: "\n") where line.contains("CONSOLE") {
            guard let q = line.firstIndex(of: "\"") else { continue }
            let message = String(line[q...])
            let looksBad = ["Uncaught", "Error", "error", "Failed", "Refused", "Not allowed", "violat"]
                .contains { message.contains($0) }
            if looksBad && !errors.contains(where: { message.contains($0) }) { errors.append(message) }
        }

        // Full-page screenshot at the measured height.
        let height = max(200, min(16_384, raw.height))
        try? FileManager.default.removeItem(atPath: screenshot)
        let shot = try run(["--screenshot=\(screenshot)", "--window-size=\(width),\(height)", "--hide-scrollbars",
                            url.absoluteString])
        guard FileManager.default.fileExists(atPath: screenshot) else {
            throw ChromiumError.failed("no screenshot written (exit \(shot.status)): " + firstError(shot.stderr))
        }
        return RenderCheck(consoleErrors: errors, figures: raw.figures, overlaps: raw.overlaps, clipped: raw.clipped,
                           missingResources: raw.missing, externalResources: raw.external, pageHeight: raw.height)
    }

    // MARK: - Instrumentation

    /// Hooks that must run before the page's own scripts: console.error, errors, resource failures.
    static let hookScript = """
    <script>(function(){window.__rc={errors:[],missing:[]};var oe=console.error;console.error=function(){try{window.__rc.errors.push(Array.prototype.map.call(arguments,String).join(' '));}catch(e){}return oe.apply(console,arguments);};window.addEventListener('error',function(e){var t=e.target;if(t&&t!==window&&(t.src||t.href)){window.__rc.missing.push((t.tagName||'').toLowerCase()+' '+(t.currentSrc||t.src||t.href.baseVal||t.href));}else{window.__rc.errors.push('Uncaught '+(e.message||'error'));}},true);window.addEventListener('unhandledrejection',function(e){window.__rc.errors.push('Unhandled rejection: '+String(e.reason));});})();</script>
    """

    /// The checks, run after load and fonts; the result goes base64-encoded into `<pre id="render-check">`.
    static let checkScript = """
    <script>(function(){
    function run(){
      var rc=window.__rc||{errors:[],missing:[]};
      var out={errors:rc.errors,missing:rc.missing,figures:document.querySelectorAll('svg.figure').length,overlaps:[],clipped:[],external:[],height:0};
      var svgs=document.querySelectorAll('svg');
      for(var s=0;s<svgs.length;s++){
        var svg=svgs[s];var t=svg.querySelector('title');var name=t?t.textContent:('svg '+s);
        var sb=svg.getBoundingClientRect();
        var texts=Array.prototype.filter.call(svg.querySelectorAll('text'),function(e){return e.textContent.trim().length>0;});
        var boxes=texts.map(function(e){return e.getBoundingClientRect();});
        for(var i=0;i<texts.length;i++){
          var a=boxes[i];if(a.width===0&&a.height===0)continue;
          if(a.left<sb.left-1||a.right>sb.right+1||a.top<sb.top-1||a.bottom>sb.bottom+1){out.clipped.push(name+': "'+texts[i].textContent+'"');}
          for(var j=i+1;j<texts.length;j++){
            var b=boxes[j];
            var ix=Math.min(a.right,b.right)-Math.max(a.left,b.left);
            var iy=Math.min(a.bottom,b.bottom)-Math.max(a.top,b.top);
            if(ix>1&&iy>1){out.overlaps.push(name+': "'+texts[i].textContent+'" overlaps "'+texts[j].textContent+'"');}
          }
        }
      }
      var imgs=document.images;
      for(var k=0;k<imgs.length;k++){var im=imgs[k];if(im.complete&&im.naturalWidth===0&&out.missing.indexOf('img '+(im.currentSrc||im.src))<0){out.missing.push('img '+(im.currentSrc||im.src));}}
      var ext=/^(https?:)?\\/\\//i;
      document.querySelectorAll('[src],[href],[srcset],[poster],[data]').forEach(function(e){
        ['src','href','srcset','poster','data','xlink:href'].forEach(function(a){var v=e.getAttribute(a);if(v&&ext.test(v.trim())&&!(e.tagName.toLowerCase()==='a'&&a==='href')){out.external.push(e.tagName.toLowerCase()+' '+v);}});
      });
      if(window.performance&&performance.getEntriesByType){performance.getEntriesByType('resource').forEach(function(r){if(/^https?:/i.test(r.name)&&out.external.indexOf(r.name)<0){out.external.push(r.name);}});}
      out.height=Math.ceil(Math.max(document.documentElement.scrollHeight,document.body?document.body.scrollHeight:0));
      var pre=document.createElement('pre');pre.id='render-check';
      pre.textContent=btoa(unescape(encodeURIComponent(JSON.stringify(out))));
      (document.body||document.documentElement).appendChild(pre);
    }
    function later(){(document.fonts&&document.fonts.ready?document.fonts.ready:Promise.resolve()).then(function(){setTimeout(run,0);});}
    if(document.readyState==='complete'){later();}else{window.addEventListener('load',later);}
    })();</script>
    """

    /// The page with the hook after `<head>` (or `<html>`, or the doctype) and the checks before `</body>`.
    static func instrument(_ html: String) -> String {
        var s = html
        func after(_ tag: String) -> String.Index? {
            guard let r = s.range(of: tag, options: .caseInsensitive),
                  let gt = s[r.upperBound...].firstIndex(of: ">") else { return nil }
            return s.index(after: gt)
        }
        if let i = after("<head") ?? after("<html") ?? after("<!doctype") {
            s.insert(contentsOf: hookScript, at: i)
        } else {
            s = hookScript + s
        }
        if let r = s.range(of: "</body>", options: [.caseInsensitive, .backwards]) {
            s.insert(contentsOf: checkScript, at: r.lowerBound)
        } else {
            s += checkScript
        }
        return s
    }

    // MARK: - Processes

    struct Result {
        var status: Int32
        var stdout: String
        var stderr: String
    }

    /// The most telling line of Chromium's stderr.
    static func firstError(_ stderr: String) -> String {
        let lines = stderr.split(separator: "\n").map(String.init)
        let noise = ["dbus", "unexpected operator", "WARNING", "vaapi", "Fontconfig"]
        let useful = lines.filter { l in !noise.contains { l.contains($0) } }
        return (useful.first { $0.contains("FATAL") || $0.contains("ERROR") || $0.lowercased().contains("error") }
                ?? useful.first ?? lines.first ?? "no output").trimmingCharacters(in: .whitespaces)
    }

    /// Runs Chromium headless with `arguments`, output to files, in its own process group that
    /// is killed after `timeout` seconds (and cleaned up afterwards in any case).
    static func run(_ arguments: [String]) throws -> Result {
        guard let binary else { throw ChromiumError.notFound("chromium not found") }
        let dir = NSTemporaryDirectory() + "chromium-run-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir + "/profile", withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let outPath = dir + "/stdout", errPath = dir + "/stderr"
        let argv = [binary, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                    "--no-default-browser-check", "--disable-extensions", "--mute-audio",
                    "--disable-background-networking", "--user-data-dir=\(dir)/profile",
                    "--virtual-time-budget=3000", "--enable-logging=stderr", "--v=0"] + arguments

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, outPath, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        posix_spawn_file_actions_addopen(&actions, 2, errPath, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        // Nothing else of this process goes to Chromium: tests run in parallel, and a file
        // another test has open (an HDF5 checkpoint being written, with its flock) would stay
        // open, and locked, for as long as the browser lives.
        closeInheritedDescriptors(&actions)
        var attr = posix_spawnattr_t()
        posix_spawnattr_init(&attr)
        defer { posix_spawnattr_destroy(&attr) }
        posix_spawnattr_setflags(&attr, Int16(POSIX_SPAWN_SETPGROUP))
        posix_spawnattr_setpgroup(&attr, 0)

        var cargs: [UnsafeMutablePointer<CChar>?] = argv.map { strdup($0) } + [nil]
        defer { for p in cargs { free(p) } }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, binary, &actions, &attr, &cargs, environ)
        guard rc == 0 else { throw ChromiumError.failed("posix_spawn \(binary): \(String(cString: strerror(rc)))") }

        var status: Int32 = 0
        var timedOut = false
        let deadline = Date().addingTimeInterval(timeout)
        while true {
            let r = waitpid(pid, &status, WNOHANG)
            if r == pid { break }
            if r < 0 && errno != EINTR { break }
            if Date() > deadline {
                kill(-pid, SIGKILL)
                _ = waitpid(pid, &status, 0)
                timedOut = true
                break
            }
            usleep(50_000)
        }
        // Helpers (zygote, crashpad) share the group; don't leave them behind.
        kill(-pid, SIGKILL)

        let stdout = (try? String(contentsOfFile: outPath, encoding: .utf8)) ?? ""
        let stderr = (try? String(contentsOfFile: errPath, encoding: .utf8)) ?? ""
        if timedOut {
            throw ChromiumError.timedOut("chromium killed after \(Int(timeout)) s: " + firstError(stderr))
        }
        let code: Int32 = (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
        return Result(status: code, stdout: stdout, stderr: stderr)
    }
}

/// Adds "close every descriptor from 3 up" to `actions` (glibc ≥ 2.34 has the action, but declares
/// it only under _GNU_SOURCE, which Swift's Glibc module does not set).
private func closeInheritedDescriptors(_ actions: inout posix_spawn_file_actions_t) {
    typealias CloseFrom = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32
    guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "posix_spawn_file_actions_addclosefrom_np") else { return }
    _ = unsafeBitCast(symbol, to: CloseFrom.self)(&actions, 3)
}
