//! The names JIT runtimes give their code in perf maps and jitdump files,
//! split into function, file, line and column. V8 (Node.js, Deno, Chromium)
//! writes `TAG:MARKERname script:line:column`: `JS:~leakyConnect
//! /srv/app/leak.js:8:22`, `LazyCompile:*onRequest file:///srv/app/s.mjs:3:9`
//! (older V8), `Function:`, `Eval:`, `Script:`; its runtime code is
//! `Builtin:Name`, `BytecodeHandler:Ldar`, `RegExp:^a+$`, `Stub:...`. Any
//! other name (a JVM's, LuaJIT's) is kept whole as the function.

/// What a JIT code name says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JitName {
    /// The function; `(anonymous)` for a JavaScript function without a name;
    /// the whole name (with its tag) for runtime code.
    pub function: String,
    /// The script of a JavaScript function (`file://` URLs as paths;
    /// `<anonymous>` when it has none); None for runtime code.
    pub file: Option<String>,
    /// Where the function starts in its script (1-based).
    pub line: Option<u32>,
    pub column: Option<u32>,
}

/// V8's tags of code compiled from JavaScript (the others are its runtime's).
const JS_TAGS: &[&str] = &["JS", "Function", "LazyCompile", "Eval", "Script", "InterpretedFunction"];

/// V8's tier markers: `~` interpreted or not optimized, `^` baseline, `+` Maglev, `*` TurboFan.
const MARKERS: &[char] = &['~', '^', '+', '*'];

/// How a script name starts, to tell it from a function name holding spaces (`get size`).
const SCRIPT_STARTS: &[&str] = &["/", "file:", "node:", "internal/", "[", "<", "evalmachine.", "http:", "https:", "wasm:", "data:"];

/// The name of an anonymous JavaScript function.
pub const ANONYMOUS: &str = "(anonymous)";

/// The script of a JavaScript function V8 gave none.
pub const NO_SCRIPT: &str = "<anonymous>";

/// Parses one code name.
pub fn parse(name: &str) -> JitName {
    let runtime = || JitName { function: name.to_owned(), file: None, line: None, column: None };
    let Some((tag, rest)) = name.split_once(':') else { return runtime() };
    if !JS_TAGS.contains(&tag) {
        return runtime();
    }
    let rest = rest.strip_prefix(MARKERS).unwrap_or(rest);
    let (rest, line, column) = position(rest);
    let (function, script) = split_script(rest);
    let file = if script.is_empty() { NO_SCRIPT.to_owned() } else { script_path(script) };
    let function = if function.is_empty() { ANONYMOUS.to_owned() } else { function.to_owned() };
    JitName { function, file: Some(file), line, column }
}

/// Strips a trailing `:line:column` (or `:line`).
fn position(s: &str) -> (&str, Option<u32>, Option<u32>) {
    let number = |t: &str| (!t.is_empty() && t.bytes().all(|b| b.is_ascii_digit())).then(|| t.parse::<u32>().ok()).flatten();
    let Some((head, last)) = s.rsplit_once(':') else { return (s, None, None) };
    let Some(last) = number(last) else { return (s, None, None) };
    match head.rsplit_once(':').and_then(|(h, l)| number(l).map(|l| (h, l))) {
        Some((h, line)) => (h, Some(line), Some(last)),
        None => (head, Some(last), None),
    }
}

/// `name script` to (name, script): the script starts at the first space
/// followed by something that starts a script name, else after the last space.
fn split_script(s: &str) -> (&str, &str) {
    if let Some(script) = s.strip_prefix(' ') {
        return ("", script);
    }
    let spaces = s.match_indices(' ').map(|(i, _)| i);
    let split = spaces.clone().find(|&i| SCRIPT_STARTS.iter().any(|p| s[i + 1..].starts_with(p))).or_else(|| s.rfind(' '));
    match split {
        Some(i) => (&s[..i], &s[i + 1..]),
        None if SCRIPT_STARTS.iter().any(|p| s.starts_with(p)) => ("", s),
        None => (s, ""),
    }
}

/// A script name as a path: `file:///a%20b/x.mjs` to `/a b/x.mjs`; others as they are.
pub fn script_path(script: &str) -> String {
    let Some(path) = script.strip_prefix("file://") else { return script.to_owned() };
    let bytes = path.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok()).and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// True for a script of the runtime's own library (Node.js's `node:net`,
/// `node:internal/...`; before Node 16 `net.js`, `internal/...`), not the program's.
pub fn is_runtime_script(file: &str) -> bool {
    file.starts_with("node:")
        || file.starts_with("internal/")
        || (!file.contains('/') && file.ends_with(".js") && !file.starts_with(['[', '<']))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn js(function: &str, file: &str, line: u32, column: u32) -> JitName {
        JitName { function: function.into(), file: Some(file.into()), line: Some(line), column: Some(column) }
    }

    #[test]
    fn javascript_functions_give_name_file_line_and_column() {
        assert_eq!(parse("JS:~leakyConnect /tmp/nx/leak.js:8:22"), js("leakyConnect", "/tmp/nx/leak.js", 8, 22));
        assert_eq!(parse("LazyCompile:*onRequest /srv/app/server.js:31:19"), js("onRequest", "/srv/app/server.js", 31, 19));
        assert_eq!(parse("Function:^Socket.connect node:net:1193:36"), js("Socket.connect", "node:net", 1193, 36));
        assert_eq!(parse("JS:+hot file:///srv/my%20app/m.mjs:2:3"), js("hot", "/srv/my app/m.mjs", 2, 3));
        assert_eq!(parse("JS:~ /tmp/nx/leak.js:14:17"), js(ANONYMOUS, "/tmp/nx/leak.js", 14, 17));
        assert_eq!(parse("Eval:~ [eval]:1:1"), js(ANONYMOUS, "[eval]", 1, 1));
        assert_eq!(parse("JS:~get size /srv/a b/x.js:4:5"), js("get size", "/srv/a b/x.js", 4, 5), "spaces on both sides");
        assert_eq!(parse("JS:~f :1:1"), js("f", NO_SCRIPT, 1, 1));
        let no_position = parse("Script:~/srv/app/boot.js");
        assert_eq!(
            (no_position.function.as_str(), no_position.file.as_deref(), no_position.line),
            (ANONYMOUS, Some("/srv/app/boot.js"), None)
        );
    }

    #[test]
    fn runtime_code_and_other_runtimes_keep_their_whole_name() {
        for name in [
            "Builtin:ArgumentsAdaptorTrampoline",
            "BytecodeHandler:Ldar",
            "RegExp:^a+ b$",
            "Stub:CEntryStub",
            "Ljava/lang/String;::hashCode",
            "TRACE_1::x.lua:3",
        ] {
            let n = parse(name);
            assert_eq!((n.function.as_str(), n.file, n.line), (name, None, None), "{name}");
        }
    }

    #[test]
    fn node_library_scripts_are_the_runtime() {
        for f in ["node:net", "node:internal/process/task_queues", "net.js", "internal/net.js"] {
            assert!(is_runtime_script(f), "{f}");
        }
        for f in ["/srv/app/server.js", "[eval]", "<anonymous>", "evalmachine.<anonymous>", "relative/app.js"] {
            assert!(!is_runtime_script(f), "{f}");
        }
    }
}
