use super::*;
use crate::report::model::{Location, Site};
use tracer_common::FdKind;

fn site(kind: ResourceKind, label: &str, count: u64, bytes: u64) -> Site {
    let mut s = Site::named(kind, "f", count, bytes);
    s.site = Location { file: Some("/src/a.c".into()), line: Some(3), label: label.into(), ..s.site };
    s
}

#[test]
fn a_label_told_apart_later_is_the_same_site() {
    let a = site(ResourceKind::Heap, "f", 1, 1);
    let b = site(ResourceKind::Heap, "f at a.c:3", 1, 1);
    let c = site(ResourceKind::Heap, "f at a.c:3 in app", 1, 1);
    assert_eq!(SiteKey::of(&a), SiteKey::of(&b));
    assert_eq!(SiteKey::of(&a), SiteKey::of(&c));
    assert_ne!(SiteKey::of(&a), SiteKey::of(&site(ResourceKind::Fd(FdKind::Socket), "f", 1, 0)));
}

#[test]
fn a_site_that_appears_later_held_nothing_before() {
    let mut h = History::new(None);
    assert!(h.record(0.0, &[site(ResourceKind::Heap, "a", 1, 8)]));
    assert!(!h.record(0.0, &[]), "not after the last sample");
    let late = site(ResourceKind::Heap, "b", 2, 16);
    assert!(h.record(1.0, &[site(ResourceKind::Heap, "a", 1, 8), late.clone()]));
    let (times, series) = h.series(&SiteKey::of(&late)).unwrap();
    assert_eq!(times.iter().copied().collect::<Vec<_>>(), [0.0, 1.0]);
    assert_eq!(series.iter().copied().collect::<Vec<_>>(), [(0, 0), (2, 16)]);
    // A site holding nothing at every sample kept is forgotten.
    assert!(h.record(2.0, &[site(ResourceKind::Heap, "c", 0, 0)]));
    assert_eq!(h.keys().count(), 2);
}

#[test]
fn the_whole_session_stays_bounded_and_keeps_the_latest_sample() {
    let mut h = History::new(None);
    for i in 0..1000 {
        h.record(i as f64, &[site(ResourceKind::Heap, "a", i, i * 8)]);
        assert!(h.len() <= MAX_POINTS, "{} samples", h.len());
    }
    let (times, series) = h.series(&SiteKey::of(&site(ResourceKind::Heap, "a", 1, 1))).unwrap();
    assert_eq!(times.back(), Some(&999.0));
    assert_eq!(series.back(), Some(&(999, 7992)));
    assert!(times[0] < 100.0, "the start of the session is still covered: {}", times[0]);
    assert!(h.gap() >= 8.0, "the pace slowed as the span grew: {}", h.gap());
}

#[test]
fn a_window_drops_what_is_older() {
    let mut h = History::new(Some(20.0));
    for i in 0..100 {
        h.record(i as f64, &[site(ResourceKind::Heap, "a", 1, 1)]);
    }
    let (times, _) = h.series(&SiteKey::of(&site(ResourceKind::Heap, "a", 1, 1))).unwrap();
    assert_eq!(times.front(), Some(&79.0));
    assert_eq!(h.len(), 21);
}

#[test]
fn a_module_named_by_more_of_its_path_later_is_the_same_site() {
    let mut a = site(ResourceKind::Heap, "git+0x10", 1, 1);
    a.site = Location { function: None, file: None, line: None, module: "/usr/lib/git-core/git".into(), ..a.site };
    let told_apart = |label: &str| Site { site: Location { label: label.into(), ..a.site.clone() }, ..a.clone() };
    assert_eq!(SiteKey::of(&a), SiteKey::of(&told_apart("git-core/git+0x10")));
    assert_eq!(SiteKey::of(&a), SiteKey::of(&told_apart("lib/git-core/git+0x10 in lib/git-core/git")));
    assert_ne!(SiteKey::of(&a), SiteKey::of(&told_apart("git-core/git+0x20")));
}
