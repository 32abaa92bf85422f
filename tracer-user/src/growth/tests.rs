use super::*;
use crate::report::model::{Site, Target};
use tracer_common::FdKind;

fn site(kind: ResourceKind, function: &str, count: u64, bytes: u64) -> Site {
    Site::named(kind, function, count, bytes)
}

/// A 60-second run sampled every second: a leak of 1 KiB/s, a 1 MiB cache
/// filled in 5 s, and a socket leak of one every 2 s.
fn soak(tracker: &mut Tracker) -> Report {
    let mut last = None;
    for t in 0..=60u64 {
        let cache = (t.min(5) * 1_048_576) / 5;
        let sites = vec![
            site(ResourceKind::Heap, "leak", t, t * 1024),
            site(ResourceKind::Heap, "cache", t.min(5) * 64, cache),
            site(ResourceKind::Fd(FdKind::Socket), "sock", t / 2, 0),
        ];
        let mut target = Target { duration_secs: t as f64, ..Target::default() };
        if t == 60 {
            target.state = TargetState::Exited;
        }
        let mut r = Report::of_sites(target, sites, 0);
        tracker.last = None; // a sample at every report: the test's clock is not the wall's
        tracker.observe(&mut r);
        last = Some(r);
    }
    last.unwrap()
}

#[test]
fn a_leak_grows_and_a_cache_that_holds_does_not() {
    let mut tracker = Tracker::new(None);
    let r = soak(&mut tracker);
    let g = |name: &str| r.sites.iter().find(|s| s.site.label == name).unwrap().growth.unwrap();
    assert_eq!(g("leak").bytes_per_min, 61_440.0);
    assert_eq!(g("leak").points, 61);
    assert_eq!(g("leak").window_secs, 60.0);
    assert_eq!(g("cache").bytes_per_min, 0.0);
    assert_eq!(g("sock").count_per_min, 30.0);
    let limits = Limits { bytes_per_min: Some(30_720.0), handles_per_min: None };
    let over = over_limits(&r, limits);
    assert_eq!(over.len(), 1, "{over:?}");
    assert!(over[0].starts_with("[heap] leak grows +61440 bytes/min"), "{}", over[0]);
    let both = Limits { bytes_per_min: Some(30_720.0), handles_per_min: Some(10.0) };
    assert_eq!(over_limits(&r, both).len(), 2);
    assert!(over_limits(&r, Limits { bytes_per_min: Some(70_000.0), handles_per_min: Some(40.0) }).is_empty());
}

#[test]
fn no_trend_until_there_are_enough_samples() {
    let mut tracker = Tracker::new(None);
    let mut r = Report::of_sites(Target::default(), vec![site(ResourceKind::Heap, "leak", 1, 1)], 0);
    for t in 0..MIN_POINTS - 1 {
        r.target.duration_secs = t as f64;
        tracker.last = None;
        tracker.observe(&mut r);
    }
    assert!(r.sites[0].growth.is_none());
    assert_eq!(tracker.samples(), MIN_POINTS - 1);
    // Not due: a report within the gap takes no sample but still shows the trend.
    r.target.duration_secs = 100.0;
    tracker.observe(&mut r);
    assert_eq!(tracker.samples(), MIN_POINTS - 1);
}
