//! TUI state and the one `Action` enum that changes it.

use std::collections::{HashMap, VecDeque};

use crate::aggregate::ResourceKind;
use crate::report::model::{Report, Site};

/// Points kept for the trend chart.
const HISTORY: usize = 240;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SortBy {
    Bytes,
    Count,
    Age,
    Growth,
}

impl SortBy {
    fn next(self) -> Self {
        match self {
            Self::Bytes => Self::Count,
            Self::Count => Self::Age,
            Self::Age => Self::Growth,
            Self::Growth => Self::Bytes,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Bytes => "bytes",
            Self::Count => "count",
            Self::Age => "age",
            Self::Growth => "growth",
        }
    }
}

/// Identifies a site across refreshes.
pub type SiteKey = (ResourceKind, String, Option<String>, Option<u32>);

pub fn key_of(s: &Site) -> SiteKey {
    (s.kind, s.site.label.clone(), s.site.file.clone(), s.site.line)
}

#[derive(Debug)]
pub enum Action {
    /// New data: the report, events ingested so far, seconds since start, and whether the target has ended.
    Refresh {
        report: Box<Report>,
        events: u64,
        elapsed: f64,
        ended: bool,
    },
    Up,
    Down,
    CycleSort,
    CycleKind,
    StartFilter,
    FilterChar(char),
    FilterBackspace,
    FilterApply,
    FilterCancel,
    MarkBaseline,
    ClearBaseline,
    TogglePause,
    ToggleHelp,
    /// The result of an export, for the message line.
    Exported(Result<String, String>),
    Quit,
}

/// One row as shown: a site and, with a baseline, its growth since the mark.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub site: Site,
    /// Count change over the last refresh.
    pub growth: i64,
}

pub struct Baseline {
    pub at: f64,
    counts: HashMap<SiteKey, (u64, u64)>,
}

#[derive(Default)]
pub struct App {
    pub report: Option<Report>,
    pub elapsed: f64,
    pub events_per_sec: f64,
    last_events: Option<(u64, f64)>,
    previous: HashMap<SiteKey, u64>,
    growth: HashMap<SiteKey, i64>,
    /// (seconds, outstanding heap bytes, outstanding handles)
    pub trend: VecDeque<(f64, u64, u64)>,
    site_trend: HashMap<SiteKey, VecDeque<(f64, u64)>>,
    pub baseline: Option<Baseline>,
    pub sort: Option<SortBy>,
    pub kind: Option<ResourceKind>,
    pub filter: String,
    /// Text being typed after `/`.
    pub editing: Option<String>,
    pub selected: usize,
    pub paused: bool,
    pub help: bool,
    pub ended: bool,
    pub message: Option<String>,
    pub quit: bool,
    /// Source files read for the detail pane (None: unreadable).
    sources: HashMap<String, Option<Vec<String>>>,
}

impl App {
    pub fn new() -> Self {
        Self { sort: Some(SortBy::Bytes), ..Self::default() }
    }

    pub fn sort(&self) -> SortBy {
        self.sort.unwrap_or(SortBy::Bytes)
    }

    pub fn update(&mut self, action: Action) {
        self.apply(action);
        self.load_selected_source();
    }

    fn apply(&mut self, action: Action) {
        match action {
            Action::Refresh { report, events, elapsed, ended } => self.refresh(*report, events, elapsed, ended),
            Action::Up => self.selected = self.selected.saturating_sub(1),
            Action::Down => self.selected = (self.selected + 1).min(self.rows().len().saturating_sub(1)),
            Action::CycleSort => self.sort = Some(self.sort().next()),
            Action::CycleKind => {
                // The kinds the report has (of seventeen), in their order, then all.
                let sites = self.report.as_ref().map_or(&[][..], |r| &r.sites[..]);
                let kinds: Vec<ResourceKind> = ResourceKind::all().filter(|k| sites.iter().any(|s| s.kind == *k)).collect();
                self.kind = match self.kind {
                    None => kinds.first().copied(),
                    Some(k) => kinds.iter().position(|x| *x == k).and_then(|i| kinds.get(i + 1).copied()),
                };
                self.selected = 0;
            }
            Action::StartFilter => self.editing = Some(self.filter.clone()),
            Action::FilterChar(c) => {
                if let Some(e) = &mut self.editing {
                    e.push(c);
                }
            }
            Action::FilterBackspace => {
                if let Some(e) = &mut self.editing {
                    e.pop();
                }
            }
            Action::FilterApply => {
                self.filter = self.editing.take().unwrap_or_default();
                self.selected = 0;
            }
            Action::FilterCancel => {
                self.editing = None;
                self.filter.clear();
            }
            Action::MarkBaseline => {
                let counts =
                    self.report.as_ref().map(|r| r.sites.iter().map(|s| (key_of(s), (s.count, s.bytes))).collect()).unwrap_or_default();
                self.baseline = Some(Baseline { at: self.elapsed, counts });
                self.selected = 0;
            }
            Action::ClearBaseline => self.baseline = None,
            Action::TogglePause => self.paused = !self.paused,
            Action::ToggleHelp => self.help = !self.help,
            Action::Exported(r) => {
                self.message = Some(match r {
                    Ok(path) => format!("exported to {path}"),
                    Err(e) => format!("export failed: {e}"),
                })
            }
            Action::Quit => self.quit = true,
        }
    }

    fn refresh(&mut self, report: Report, events: u64, elapsed: f64, ended: bool) {
        if let Some((e0, t0)) = self.last_events {
            if elapsed > t0 {
                self.events_per_sec = events.saturating_sub(e0) as f64 / (elapsed - t0);
            }
        }
        self.last_events = Some((events, elapsed));
        self.ended = ended;
        if self.paused && !ended {
            return; // data keeps being collected; the view stays
        }
        self.elapsed = elapsed;
        self.growth =
            report.sites.iter().map(|s| (key_of(s), s.count as i64 - *self.previous.get(&key_of(s)).unwrap_or(&s.count) as i64)).collect();
        self.previous = report.sites.iter().map(|s| (key_of(s), s.count)).collect();
        push_capped(&mut self.trend, (elapsed, report.totals.heap_bytes, report.totals.handle_count()));
        for s in &report.sites {
            push_capped(self.site_trend.entry(key_of(s)).or_default(), (elapsed, s.count));
        }
        self.report = Some(report);
        self.selected = self.selected.min(self.rows().len().saturating_sub(1));
    }

    /// The rows shown: filtered by kind and text, baselined, sorted.
    pub fn rows(&self) -> Vec<Row> {
        let Some(report) = &self.report else { return Vec::new() };
        let needle = self.filter.to_lowercase();
        let mut rows: Vec<Row> = report
            .sites
            .iter()
            .filter(|s| self.kind.is_none_or(|k| s.kind == k))
            .filter(|s| {
                needle.is_empty()
                    || format!("{} {} {}", s.site.label, s.site.file.as_deref().unwrap_or(""), s.site.module)
                        .to_lowercase()
                        .contains(&needle)
            })
            .filter_map(|s| {
                let mut site = s.clone();
                if let Some(b) = &self.baseline {
                    let (c, by) = b.counts.get(&key_of(s)).copied().unwrap_or((0, 0));
                    if s.count <= c {
                        return None; // only what grew since the mark
                    }
                    site.count -= c;
                    site.bytes = site.bytes.saturating_sub(by);
                } else if s.count == 0 {
                    return None;
                }
                Some(Row { growth: *self.growth.get(&key_of(s)).unwrap_or(&0), site })
            })
            .collect();
        match self.sort() {
            SortBy::Bytes => rows.sort_by_key(|r| std::cmp::Reverse((r.site.bytes, r.site.count))),
            SortBy::Count => rows.sort_by_key(|r| std::cmp::Reverse((r.site.count, r.site.bytes))),
            SortBy::Age => rows.sort_by(|a, b| b.site.oldest_age_secs.total_cmp(&a.site.oldest_age_secs)),
            SortBy::Growth => rows.sort_by_key(|r| std::cmp::Reverse(r.growth)),
        }
        rows
    }

    pub fn selected_row(&self) -> Option<Row> {
        self.rows().into_iter().nth(self.selected)
    }

    fn load_selected_source(&mut self) {
        if let Some(file) = self.selected_row().and_then(|r| r.site.site.file) {
            self.sources.entry(file.clone()).or_insert_with(|| super::source_line::read_lines(&file));
        }
    }

    /// Lines around `line` of `file`, if it was readable.
    pub fn source_context(&self, file: &str, line: u32) -> Vec<(u32, String)> {
        self.sources.get(file).and_then(Option::as_ref).map(|l| super::source_line::context(l, line)).unwrap_or_default()
    }

    pub fn site_trend(&self, key: &SiteKey) -> Vec<(f64, f64)> {
        self.site_trend.get(key).map(|v| v.iter().map(|&(t, c)| (t, c as f64)).collect()).unwrap_or_default()
    }

    /// The report as the view shows it (filters and baseline applied), for export.
    pub fn view_report(&self) -> Option<Report> {
        let mut r = self.report.clone()?;
        r.sites = self.rows().into_iter().map(|row| row.site).collect();
        Some(r)
    }
}

fn push_capped<T>(v: &mut VecDeque<T>, x: T) {
    if v.len() == HISTORY {
        v.pop_front();
    }
    v.push_back(x);
}
