//! A refused program's verifier log, said in one line: what the kernel
//! objected to and, where it can be told, the kernel feature the program
//! needs. The whole log is kept for `--verbose`. A leaf.

use std::io;

use rustix::io::Errno;

/// The kernel's limit on the stack of a program's call chain, without private stacks.
const MAX_BPF_STACK: u32 = 512;

/// The helpers leaktrace's programs call that not every kernel has, with
/// the release that brought each.
const HELPERS: [(u32, &str, &str); 11] = [
    (112, "bpf_probe_read_user", "5.5"),
    (113, "bpf_probe_read_kernel", "5.5"),
    (114, "bpf_probe_read_user_str", "5.5"),
    (115, "bpf_probe_read_kernel_str", "5.5"),
    (130, "bpf_ringbuf_output", "5.8"),
    (131, "bpf_ringbuf_reserve", "5.8"),
    (132, "bpf_ringbuf_submit", "5.8"),
    (133, "bpf_ringbuf_discard", "5.8"),
    (174, "bpf_get_attach_cookie", "5.15"),
    (180, "bpf_find_vma", "5.17"),
    (181, "bpf_loop", "5.17"),
];

/// What a program was loaded for, when that decides the reason (a kernel
/// that does not know the attach type refuses without a log).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoadedFor {
    /// aya's program types: the verifier log says it all.
    Plain,
    UprobeMulti,
    UprobeSession,
}

/// Why the kernel refused a program, in one line: from the verifier's log
/// when it gave one, else from the error number.
pub fn reason(errno: Option<i32>, log: &str, loaded_for: LoadedFor) -> String {
    if let Some(r) = log.lines().rev().find_map(known_line) {
        return r;
    }
    if log.trim().is_empty() {
        return match (errno.map(Errno::from_raw_os_error), loaded_for) {
            (Some(Errno::INVAL), LoadedFor::UprobeMulti) => "needs uprobe_multi links (Linux 6.6)".into(),
            (Some(Errno::INVAL), LoadedFor::UprobeSession) => "needs uprobe sessions (Linux 6.13)".into(),
            (Some(Errno::PERM), _) => "not permitted (leaktrace needs root, or CAP_BPF and CAP_PERFMON)".into(),
            (Some(Errno::TOOBIG), _) => "too large: more instructions than this kernel takes in one program".into(),
            (Some(e), _) => io::Error::from(e).to_string(),
            (None, _) => "no reason given".into(),
        };
    }
    last_words(log)
}

/// A refusal: the error, the verifier's (or BTF checker's) whole log, and
/// what the program was loaded for; shown as the reason in one line.
#[derive(Debug, thiserror::Error)]
#[error("{}", reason(self.error.raw_os_error(), &self.log, self.loaded_for))]
pub struct Refused {
    pub error: io::Error,
    pub log: String,
    pub loaded_for: LoadedFor,
}

/// A log line whose meaning is known: the one-line reason for it.
fn known_line(line: &str) -> Option<String> {
    let line = line.trim();
    if let Some(rest) = line.strip_prefix("combined stack size of ") {
        let bytes = number_after(rest, " is ")?;
        return Some(format!(
            "its calls' combined stack is {bytes} bytes, over the kernel's {MAX_BPF_STACK}-byte limit (it needs private BPF stacks, which this kernel does not give it)"
        ));
    }
    if let Some(rest) = line.strip_prefix("stack size of subprog ") {
        let bytes = number_after(rest, " is ")?;
        return Some(format!("a function's stack frame is {bytes} bytes, over the kernel's {MAX_BPF_STACK}-byte limit"));
    }
    if let Some(rest) = line.strip_prefix("BPF program is too large. Processed ") {
        let insns: u64 = rest.split_whitespace().next()?.parse().ok()?;
        return Some(format!("too complex: the verifier gave up after {insns} instructions"));
    }
    if line.starts_with("The sequence of ") && line.ends_with("jumps is too complex.") {
        return Some("too complex: too many branches for the verifier to follow".into());
    }
    if let Some(rest) = line.strip_prefix("the call stack of ") {
        let frames = rest.split_whitespace().next()?;
        return Some(format!("its calls nest {frames} deep, deeper than the kernel allows (8)"));
    }
    if let Some(helper) =
        ["invalid func ", "unknown func ", "program of this type cannot use helper "].iter().find_map(|p| line.strip_prefix(p))
    {
        return Some(missing_helper(helper));
    }
    if line.contains("func_info") && line.contains("missing") {
        return Some("the kernel wants BTF function information the object did not give".into());
    }
    None
}

/// "bpf_loop#181" or "unknown#181": the helper, named, with the release that has it.
fn missing_helper(token: &str) -> String {
    let token = token.split_whitespace().next().unwrap_or(token);
    let (name, id) = token.rsplit_once('#').unwrap_or((token, ""));
    let known = id.parse::<u32>().ok().and_then(|id| HELPERS.iter().find(|(n, ..)| *n == id));
    match known {
        Some((_, name, release)) => format!("needs the helper {name} (Linux {release})"),
        None if name != "unknown" && !name.is_empty() => format!("needs the helper {name}, which this kernel lacks here"),
        None => format!("needs BPF helper #{id}, which this kernel lacks"),
    }
}

/// The number after `marker` in `text` ("2 calls is 656. Too large" → 656).
fn number_after(text: &str, marker: &str) -> Option<u32> {
    let (_, rest) = text.split_once(marker)?;
    rest.trim_start().split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()
}

/// No known message: the last line that is not the verifier's statistics or
/// an instruction, shortened.
fn last_words(log: &str) -> String {
    let statistics = ["processed ", "verification time", "stack depth", "Func#", "func#", "; ", "mark_precise", "last_idx", "regs="];
    let is_insn = |l: &str| l.split_once(':').is_some_and(|(n, _)| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()));
    let line = log
        .lines()
        .map(str::trim)
        .rev()
        .find(|l| !l.is_empty() && !statistics.iter().any(|s| l.starts_with(s)) && !is_insn(l))
        .unwrap_or("the verifier said nothing more");
    const MAX: usize = 160;
    match line.char_indices().nth(MAX) {
        Some((cut, _)) => format!("the verifier says: {}…", &line[..cut]),
        None => format!("the verifier says: {line}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EACCES: Option<i32> = Some(Errno::ACCESS.raw_os_error());
    const EINVAL: Option<i32> = Some(Errno::INVAL.raw_os_error());

    #[test]
    fn a_stack_over_the_limit_says_how_far() {
        // fd_new on Linux 6.18 without private stacks (issue 22).
        let log = "Func#7 ('lt_find_row') is safe for any args that match its prototype\n\
                   combined stack size of 2 calls is 656. Too large\n\
                   stack depth 216+0+120+432+0+120+72+32\n\
                   processed 23213 insns (limit 1000000) max_states_per_insn 4 total_states 1201 peak_states 702 mark_read 180\n";
        let r = reason(EACCES, log, LoadedFor::Plain);
        assert!(r.starts_with("its calls' combined stack is 656 bytes, over the kernel's 512-byte limit"), "{r}");
        assert!(r.contains("private BPF stacks"), "{r}");
        // alloc_session on Linux 6.18: three calls deep.
        let session = "Func#7 ('lt_find_row') is safe for any args that match its prototype\n\
                       combined stack size of 3 calls is 592. Too large\n\
                       processed 57876 insns (limit 1000000) max_states_per_insn 29 total_states 1630 peak_states 3569 mark_read 0\n";
        assert!(reason(EACCES, session, LoadedFor::UprobeSession).starts_with("its calls' combined stack is 592 bytes"));
        // Linux 6.1's wording is the same, with its own figure.
        assert!(reason(EACCES, "combined stack size of 2 calls is 672. Too large\n", LoadedFor::Plain).contains("672 bytes"));
        let private = reason(EACCES, "stack size of subprog 3 is 544. Too large\n", LoadedFor::Plain);
        assert_eq!(private, "a function's stack frame is 544 bytes, over the kernel's 512-byte limit");
    }

    #[test]
    fn a_missing_helper_is_named_with_its_release() {
        // A kernel older than the helper: it knows neither name nor number.
        let old =
            "0: R1=ctx() R10=fp0\n; lt_walk @ walk/mod.rs:88\n12: (85) call unknown#180\ninvalid func unknown#180\nprocessed 13 insns\n";
        assert_eq!(reason(EACCES, old, LoadedFor::Plain), "needs the helper bpf_find_vma (Linux 5.17)");
        // A kernel that has it, but not for this kind of program.
        let typed = "5: (85) call bpf_loop#181\nprogram of this type cannot use helper bpf_loop#181\n";
        assert_eq!(reason(EACCES, typed, LoadedFor::Plain), "needs the helper bpf_loop (Linux 5.17)");
        let proto = "7: (85) call bpf_user_ringbuf_drain#209\nunknown func bpf_user_ringbuf_drain#209\n";
        assert_eq!(reason(EACCES, proto, LoadedFor::Plain), "needs the helper bpf_user_ringbuf_drain, which this kernel lacks here");
        assert_eq!(reason(EACCES, "invalid func unknown#250\n", LoadedFor::Plain), "needs BPF helper #250, which this kernel lacks");
    }

    #[test]
    fn complexity_limits_are_named() {
        let big = "BPF program is too large. Processed 1000001 insn\nprocessed 1000001 insns (limit 1000000) max_states_per_insn 17\n";
        assert_eq!(reason(EACCES, big, LoadedFor::Plain), "too complex: the verifier gave up after 1000001 instructions");
        let jumps = "The sequence of 8193 jumps is too complex.\nverification time 4012 usec\n";
        assert_eq!(reason(EACCES, jumps, LoadedFor::Plain), "too complex: too many branches for the verifier to follow");
        let deep = "the call stack of 9 frames is too deep !\n";
        assert_eq!(reason(EACCES, deep, LoadedFor::Plain), "its calls nest 9 deep, deeper than the kernel allows (8)");
    }

    #[test]
    fn an_unknown_attach_type_names_the_link_it_needs() {
        assert_eq!(reason(EINVAL, "", LoadedFor::UprobeSession), "needs uprobe sessions (Linux 6.13)");
        assert_eq!(reason(EINVAL, "\n", LoadedFor::UprobeMulti), "needs uprobe_multi links (Linux 6.6)");
        assert!(reason(Some(Errno::PERM.raw_os_error()), "", LoadedFor::Plain).starts_with("not permitted"));
        assert!(reason(Some(Errno::TOOBIG.raw_os_error()), "", LoadedFor::Plain).starts_with("too large"));
        let nomem = Errno::NOMEM.raw_os_error();
        assert_eq!(reason(Some(nomem), "", LoadedFor::Plain), io::Error::from_raw_os_error(nomem).to_string());
    }

    #[test]
    fn anything_else_is_the_verifiers_last_words() {
        let log = "0: R1=ctx() R10=fp0\n; let x = *p; @ heap.rs:40\n3: (61) r2 = *(u32 *)(r1 +4)\n\
                   R1 invalid mem access 'scalar'\nprocessed 4 insns (limit 1000000) max_states_per_insn 0\n";
        assert_eq!(reason(EACCES, log, LoadedFor::Plain), "the verifier says: R1 invalid mem access 'scalar'");
        let long = format!("{}\n", "x".repeat(400));
        let r = reason(EACCES, &long, LoadedFor::Plain);
        assert!(r.ends_with('…') && r.chars().count() < 200, "{r}");
        assert!(!r.contains('\n'));
    }

    #[test]
    fn missing_func_info_is_said_plainly() {
        // loader_check loaded without its func_info, Linux 6.18.
        let log = "0: R1=ctx() R10=fp0\n0: (b7) r1 = 0                        ; R1=0\n5: (18) r2 = 0x5\nmissing btf func_info\n\
                   processed 6 insns (limit 1000000) max_states_per_insn 0 total_states 0 peak_states 0 mark_read 0\n";
        assert_eq!(reason(EACCES, log, LoadedFor::Plain), "the kernel wants BTF function information the object did not give");
    }
}
