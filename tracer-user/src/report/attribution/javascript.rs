//! Sites in Node.js (and other V8 embedders): below a JavaScript frame, the
//! runtime's own code — libuv, `node::`, `v8::`, V8's builtins and JIT
//! stubs, Node's JavaScript library (`node:net`) — is never the call site,
//! the way libc is not; the JavaScript function that called into it is.
//! And what a report must say when it could not name JavaScript frames.

use crate::symbolize::jit::{is_javascript, is_runtime_script, is_unnamed_jit, JIT_MODULE};
use crate::symbolize::Frame;

use super::wrappers::qualified_name;

/// Native modules of Node.js and V8: the executable, or the shared libraries
/// of a distribution's build (Debian's libnode, libuv, OpenSSL, ...).
const RUNTIME_MODULES: &[&str] = &[
    "libnode.so",
    "libuv.so",
    "libv8",
    "libcrypto.so",
    "libssl.so",
    "libz.so",
    "libnghttp2.so",
    "libnghttp3.so",
    "libngtcp2",
    "libcares.so",
    "libbrotli",
    "libicu",
    "libada.so",
    "libllhttp.so",
    "libsimdjson.so",
    "libsimdutf.so",
    "libuvwasi.so",
];

/// Executables of Node.js.
const RUNTIME_EXECUTABLES: &[&str] = &["node", "nodejs"];

/// Native runtime code by name, wherever it is linked (an embedder's binary).
const RUNTIME_PREFIXES: &[&str] = &["node::", "v8::", "cppgc::", "uv_", "uv__", "Builtins_", "napi_", "icu_"];

/// The runtime's code under JavaScript: never a site while a JavaScript frame is above.
pub fn is_js_runtime(f: &Frame) -> bool {
    if is_javascript(f) {
        return f.file.as_deref().is_some_and(is_runtime_script);
    }
    if &*f.module == JIT_MODULE || is_unnamed_jit(f) {
        return true; // V8's builtins, stubs and regular expressions; code nothing named
    }
    let base = f.module.rsplit('/').next().unwrap_or("");
    RUNTIME_EXECUTABLES.contains(&base)
        || RUNTIME_MODULES.iter().any(|m| base.starts_with(m))
        || f.function.as_deref().map(qualified_name).is_some_and(|q| RUNTIME_PREFIXES.iter().any(|p| q.starts_with(p)))
}

/// The site of a stack with JavaScript frames: the first frame up to the
/// outermost JavaScript one that is neither `skipped` (runtime, allocation
/// wrappers) nor the JavaScript runtime's; when every one is, the innermost
/// JavaScript frame (the runtime's library, `node:net`, did it alone).
/// None without JavaScript frames.
pub fn js_site(frames: &[Frame], skipped: impl Fn(&Frame) -> bool) -> Option<usize> {
    let innermost = frames.iter().position(is_javascript)?;
    let outermost = frames.iter().rposition(is_javascript)?;
    frames[..=outermost].iter().position(|f| !skipped(f) && !is_js_runtime(f)).or(Some(innermost))
}

/// Stacks through V8 whose JavaScript frames could not be named, for the report's warnings.
#[derive(Debug, Default, Clone)]
pub struct JsNotes {
    /// With frames in JIT code nothing named.
    unnamed: u64,
    /// With interpreted JavaScript seen only as V8's shared interpreter entry.
    interpreted: u64,
    /// Ending at one of V8's builtins (no unwind information there).
    cut_at_builtin: u64,
}

const FLAGS: &str = "--perf-basic-prof --interpreted-frames-native-stack";

impl JsNotes {
    /// Notes one resolved stack; `no_rule`: its walk stopped in code without unwind rows.
    pub fn note(&mut self, frames: &[Frame], no_rule: bool) {
        let v8 = |f: &Frame| f.function.as_deref().map(qualified_name).is_some_and(|q| q.starts_with("Builtins_") || q.starts_with("v8::"));
        if !frames.iter().any(v8) {
            return;
        }
        let named = frames.iter().any(is_javascript);
        let trampoline = |f: &Frame| f.function.as_deref() == Some("Builtins_InterpreterEntryTrampoline");
        self.unnamed += u64::from(!named && frames.iter().any(is_unnamed_jit));
        self.interpreted += u64::from(!named && frames.iter().any(trampoline));
        // A builtin, named, or code of libnode without a name (a distribution's stripped build).
        let builtin = |f: &Frame| match f.function.as_deref() {
            Some(name) => name.starts_with("Builtins_"),
            None => f.module.rsplit('/').next().is_some_and(|m| m.starts_with("libnode.so") || RUNTIME_EXECUTABLES.contains(&m)),
        };
        self.cut_at_builtin += u64::from(no_rule && frames.last().is_some_and(builtin));
    }

    pub fn warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.unnamed > 0 {
            out.push(format!(
                "{} stacks pass through JavaScript frames that are unnamed (V8 wrote no perf map): run node with {FLAGS} \
                 (or `leaktrace run --node-perf-map -- node ...`) to name them",
                self.unnamed
            ));
        }
        if self.interpreted > 0 {
            out.push(format!(
                "{} stacks show JavaScript only as V8's Builtins_InterpreterEntryTrampoline (interpreted code): node's \
                 --interpreted-frames-native-stack names those frames",
                self.interpreted
            ));
        }
        if self.cut_at_builtin > 0 {
            out.push(format!(
                "{} stacks end at one of V8's builtins, which have no unwind tables: `--unwind fp` walks through V8's \
                 frames in official Node.js builds, which keep frame pointers (a distribution's libnode and libuv do not)",
                self.cut_at_builtin
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(function: &str, file: Option<&str>, module: &str) -> Frame {
        Frame {
            address: 0x1000,
            module: module.into(),
            function: (!function.is_empty()).then(|| function.into()),
            file: file.map(Into::into),
            line: Some(3),
            ..Frame::default()
        }
    }

    /// A socket opened by `openChannel` through node:net, as official Node builds show it.
    fn node_stack() -> Vec<Frame> {
        vec![
            frame("socket", None, "/usr/lib/x86_64-linux-gnu/libc.so.6"),
            frame("uv__socket", Some("../deps/uv/src/unix/core.c"), "/usr/bin/node"),
            frame("void node::TCPWrap::Connect<sockaddr_in>(v8::FunctionCallbackInfo<v8::Value> const&)", None, "/usr/bin/node"),
            frame("Builtins_CEntry_Return1_ArgvOnStack_BuiltinExit", None, "/usr/bin/node"),
            frame("", None, "[anonymous]"),
            frame("internalConnect", Some("node:net"), JIT_MODULE),
            frame("RegExp:^a$", None, JIT_MODULE),
            frame("openChannel", Some("/srv/app/server.js"), JIT_MODULE),
            frame("(anonymous)", Some("/srv/app/server.js"), JIT_MODULE),
            frame("Builtins_JSEntry", None, "/usr/bin/node"),
            frame("node::Start(int, char**)", None, "/usr/bin/node"),
            frame("main", None, "/usr/bin/embedder"),
        ]
    }

    fn libc(f: &Frame) -> bool {
        f.module.contains("libc.so")
    }

    #[test]
    fn the_program_s_javascript_is_the_site_below_which_the_runtime_is_skipped() {
        assert_eq!(js_site(&node_stack(), libc), Some(7));
        let mut debian = node_stack();
        debian[1] = frame("", None, "/usr/lib/x86_64-linux-gnu/libuv.so.1.0.0");
        debian[2] = frame("node::TCPWrap::Connect(v8::FunctionCallbackInfo<v8::Value> const&)", None, "/usr/lib/libnode.so.108");
        assert_eq!(js_site(&debian, libc), Some(7), "a distribution's shared runtime libraries");
    }

    #[test]
    fn an_addon_or_a_library_of_the_program_under_javascript_is_the_site() {
        let mut s = node_stack();
        s.insert(1, frame("open_device", Some("/srv/addon/dev.cc"), "/srv/app/build/Release/dev.node"));
        assert_eq!(js_site(&s, libc), Some(1));
    }

    #[test]
    fn only_the_runtime_s_javascript_then_its_innermost_frame() {
        let s: Vec<Frame> = node_stack().into_iter().filter(|f| f.file.as_deref() != Some("/srv/app/server.js")).collect();
        assert_eq!(js_site(&s, libc), Some(5), "node:net's internalConnect, not the embedder's main beyond");
        let native: Vec<Frame> = node_stack().into_iter().filter(|f| !is_javascript(f)).collect();
        assert_eq!(js_site(&native, libc), None, "no JavaScript: the native rule applies");
    }

    #[test]
    fn notes_say_what_names_javascript_frames() {
        let mut n = JsNotes::default();
        n.note(&node_stack(), false);
        assert!(n.warnings().is_empty(), "JavaScript frames were named");
        let unnamed: Vec<Frame> = node_stack().into_iter().filter(|f| !is_javascript(f)).collect();
        n.note(&unnamed, false);
        n.note(&[frame("malloc", None, "/usr/lib/x86_64-linux-gnu/libc.so.6"), frame("", None, "[anonymous]")], false);
        let w = n.warnings();
        assert_eq!(w.len(), 1, "only stacks through V8 count: {w:?}");
        assert!(w[0].starts_with("1 stacks pass through JavaScript frames that are unnamed") && w[0].contains("--node-perf-map"), "{w:?}");
        let trampoline =
            vec![frame("uv__socket", None, "/usr/bin/node"), frame("Builtins_InterpreterEntryTrampoline", None, "/usr/bin/node")];
        let mut n = JsNotes::default();
        n.note(&trampoline, true);
        let w = n.warnings();
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(w[0].contains("--interpreted-frames-native-stack") && w[1].contains("--unwind fp"), "{w:?}");
    }
}
