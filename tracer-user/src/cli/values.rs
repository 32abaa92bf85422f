//! Parsers for option values: each refusal names the range it expects.

/// The longest --duration or --interval accepted: a year, in seconds.
pub const MAX_SECONDS: f64 = 365.0 * 24.0 * 3600.0;

/// Seconds (--duration, --interval): a finite number above 0, at most a year.
pub fn seconds(s: &str) -> Result<f64, String> {
    let expected = || format!("expected a number of seconds greater than 0 and at most {MAX_SECONDS}");
    let v: f64 = s.trim().parse().map_err(|_| expected())?;
    if !v.is_finite() || v <= 0.0 || v > MAX_SECONDS {
        return Err(expected());
    }
    Ok(v)
}

fn whole_in(s: &str, lo: u64, hi: u64) -> Result<u64, String> {
    let expected = || format!("expected a whole number from {lo} to {hi}");
    let v: u64 = s.trim().parse().map_err(|_| expected())?;
    if !(lo..=hi).contains(&v) {
        return Err(expected());
    }
    Ok(v)
}

fn u32_in(s: &str, lo: u32, hi: u32) -> Result<u32, String> {
    whole_in(s, lo.into(), hi.into()).map(|v| v as u32)
}

/// --stack-depth: frames per acquisition.
pub fn stack_depth(s: &str) -> Result<u32, String> {
    u32_in(s, 1, 32)
}

/// --sample: 1 in N allocator calls.
pub fn sample(s: &str) -> Result<u32, String> {
    u32_in(s, 2, 1_000_000)
}

/// The largest pid Linux hands out (PID_MAX_LIMIT on 64-bit).
const PID_MAX_LIMIT: u32 = 4 * 1024 * 1024;

/// --pid.
pub fn pid(s: &str) -> Result<u32, String> {
    u32_in(s, 1, PID_MAX_LIMIT).map_err(|e| format!("{e} (a process id)"))
}

/// --max-leaked-bytes, --max-leaked-handles.
pub fn count(s: &str) -> Result<u64, String> {
    whole_in(s, 0, u64::MAX)
}

/// --ring-size in MiB: a power of two.
pub fn ring_size(s: &str) -> Result<u32, String> {
    let expected = || "expected a power of two from 1 to 1024 (MiB)".to_owned();
    let v = u32_in(s, 1, 1024).map_err(|_| expected())?;
    if !v.is_power_of_two() {
        return Err(expected());
    }
    Ok(v)
}

/// --focus: a path or prefix; an empty one would match everything.
pub fn focus(s: &str) -> Result<String, String> {
    if s.trim().is_empty() {
        return Err("expected a module path or a source-directory prefix, not an empty string".into());
    }
    Ok(s.to_owned())
}

/// --alloc-wrapper: a function's name.
pub fn function_name(s: &str) -> Result<String, String> {
    if s.trim().is_empty() {
        return Err("expected a function's name, not an empty string".into());
    }
    Ok(s.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_are_finite_positive_and_bounded() {
        assert_eq!(seconds("2.5"), Ok(2.5));
        for bad in ["-1", "0", "nan", "NaN", "inf", "-inf", "18446744073709551616", "1e400", "x", ""] {
            let err = seconds(bad).unwrap_err();
            assert!(err.contains("greater than 0 and at most 31536000"), "{bad}: {err}");
        }
        assert!(std::time::Duration::try_from_secs_f64(MAX_SECONDS).is_ok());
    }

    #[test]
    fn ranges_are_named() {
        assert_eq!(stack_depth("32"), Ok(32));
        assert_eq!(stack_depth("33").unwrap_err(), "expected a whole number from 1 to 32");
        assert_eq!(stack_depth("x").unwrap_err(), "expected a whole number from 1 to 32");
        assert_eq!(sample("1").unwrap_err(), "expected a whole number from 2 to 1000000");
        assert_eq!(ring_size("16"), Ok(16));
        assert!(ring_size("3").unwrap_err().contains("power of two from 1 to 1024"));
        assert!(ring_size("2048").unwrap_err().contains("power of two from 1 to 1024"));
        assert!(pid("0").unwrap_err().contains("from 1 to 4194304"));
        assert_eq!(count("18446744073709551615"), Ok(u64::MAX));
        assert!(count("-1").unwrap_err().contains("from 0 to 18446744073709551615"));
        assert!(focus(" ").is_err());
        assert!(function_name("").is_err());
        assert_eq!(function_name("xmalloc"), Ok("xmalloc".into()));
    }
}
