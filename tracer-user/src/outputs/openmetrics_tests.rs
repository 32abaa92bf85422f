use tracer_common::FdKind;

use super::*;
use crate::report::model::{Growth, Location, Report, Target};

fn site(kind: ResourceKind, label: &str, count: u64, bytes: u64) -> Site {
    let mut s = Site::named(kind, label, count, bytes);
    (s.allocations, s.releases) = (count + 1, 1);
    s.site = Location { file: Some("/src/a \"b\".c".into()), line: Some(9), ..s.site };
    s
}

#[test]
fn the_largest_sites_of_each_kind_with_totals_and_leaktraces_own() {
    let mut sites: Vec<Site> = (1..=4).map(|i| site(ResourceKind::Heap, &format!("h{i}"), i, i * 100)).collect();
    sites.push(site(ResourceKind::Fd(FdKind::Socket), "s1", 3, 0));
    sites[3].growth = Some(Growth { bytes_per_min: 600.0, ..Growth::default() });
    let mut r = Report::of_sites(Target::default(), sites, 2);
    r.tracer.events = 1234;
    let text = render(&r, 10.5, 2);
    let labels = |l: &str, kind: &str| {
        format!("kind=\"{kind}\",site=\"{l}\",function=\"{l}\",file=\"/src/a \\\"b\\\".c\",line=\"9\",module=\"/bin/app\"")
    };
    assert!(text.contains(&format!("leaktrace_site_outstanding_bytes{{{}}} 400\n", labels("h4", "heap"))), "{text}");
    assert!(text.contains(&format!("leaktrace_site_outstanding{{{}}} 3\n", labels("h3", "heap"))));
    assert!(!text.contains("\"h2\""), "only the top 2 heap sites");
    assert!(text.contains(&format!("leaktrace_site_outstanding{{{}}} 3\n", labels("s1", "socket"))), "each kind its own top");
    assert!(!text.contains(&format!("leaktrace_site_outstanding_bytes{{{}}}", labels("s1", "socket"))), "bytes are heap's");
    assert!(text.contains(&format!("leaktrace_site_acquisitions_total{{{}}} 5\n", labels("h4", "heap"))));
    assert!(text.contains(&format!("leaktrace_site_growth_per_minute{{{}}} 600.0\n", labels("h4", "heap"))));
    assert!(text.contains("leaktrace_sites_omitted{kind=\"heap\"} 2\n"));
    assert!(text.contains("leaktrace_outstanding_handles{kind=\"socket\"} 3\n"));
    assert!(text.contains("leaktrace_lost_events_total 2\n") && text.contains("leaktrace_complete 0\n"));
    assert!(text.contains("leaktrace_events_total 1234\n") && text.contains("leaktrace_events_per_second 10.5\n"));
    assert!(text.contains("# TYPE leaktrace_cpu_seconds counter\n# UNIT leaktrace_cpu_seconds seconds\n"));
    let rss = text.lines().find_map(|l| l.strip_prefix("leaktrace_resident_memory_bytes ")).unwrap();
    assert!(rss.parse::<u64>().unwrap() > 0);
    // Each family's samples follow its own metadata, once.
    let families: Vec<&str> = text.lines().filter_map(|l| l.strip_prefix("# TYPE ")).map(|l| l.split(' ').next().unwrap()).collect();
    let mut unique = families.clone();
    unique.dedup();
    assert_eq!(families, unique);
    assert!(text.ends_with("# EOF\n"));
}
