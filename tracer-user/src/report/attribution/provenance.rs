//! The site of a descriptor an event loop made for a handle: from the
//! descriptor's own stack when the user's code made it (a connect in a
//! timer callback), else from where the handle was created (a handle the
//! user's function initialised, connected on a later tick), else, for an
//! accepted connection whose handle the runtime created, from where its
//! server was created (the user's `listen`).
//!
//! Only frames inside the event loop count for the descriptor's stack: the
//! function that called `uv_run` (`main`) owns no descriptor the loop makes.

use crate::symbolize::Frame;

use super::focus::Focus;
use super::javascript::is_js_runtime;
use super::system::is_passed_over;
use super::wrappers::is_wrapper;
use super::Attribution;

/// libuv's loop: frames from it outward called the loop, not the code it runs.
const LOOP_RUN: &str = "uv_run";

/// Whether `frames` reach the user's code inside the event loop: a frame in
/// `--focus`, or without one, a frame neither runtime, library nor allocation wrapper.
pub fn reaches_user(frames: &[Frame], attribution: &Attribution, focus: Option<&mut Focus>) -> bool {
    let inside = frames.iter().position(|f| f.function.as_deref() == Some(LOOP_RUN)).unwrap_or(frames.len());
    let frames = &frames[..inside];
    match focus {
        Some(focus) => frames.iter().any(|f| focus.matches(f)),
        None => frames.iter().any(|f| is_user_frame(f, attribution)),
    }
}

/// A frame that can be a site without `--focus`, the JavaScript runtime
/// and this run's allocator and wrappers left out too.
fn is_user_frame(f: &Frame, attribution: &Attribution) -> bool {
    !(is_wrapper(f, attribution.allocator.as_deref(), &attribution.wrappers) || is_js_runtime(f) || is_passed_over(f))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(function: &str, module: &str) -> Frame {
        Frame { module: module.into(), function: Some(function.into()), executable: module == "/opt/app", ..Frame::default() }
    }

    const LIBUV: &str = "/usr/lib/x86_64-linux-gnu/libuv.so.1.0.0";
    const LIBC: &str = "/usr/lib/x86_64-linux-gnu/libc.so.6";

    #[test]
    fn the_caller_of_the_loop_owns_nothing_the_loop_makes() {
        let accepted = [frame("accept4", LIBC), frame("uv__server_io", LIBUV), frame("uv_run", LIBUV), frame("main", "/opt/app")];
        assert!(!reaches_user(&accepted, &Attribution::default(), None), "main only called uv_run");
        let dialed = [frame("socket", LIBC), frame("uv_tcp_connect", LIBUV), frame("dial_later", "/opt/app"), frame("uv_run", LIBUV)];
        assert!(reaches_user(&dialed, &Attribution::default(), None), "a timer callback's connect");
        let created = [frame("uv_tcp_init", LIBUV), frame("main", "/opt/app")];
        assert!(reaches_user(&created, &Attribution::default(), None), "outside the loop, main is the user's");
        let mut focus = Focus::new("/elsewhere/", None);
        assert!(!reaches_user(&created, &Attribution::default(), Some(&mut focus)));
    }
}
