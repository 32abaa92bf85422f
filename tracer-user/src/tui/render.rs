//! Drawing: a pure function of [`App`].

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::symbols::Marker;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Axis, Block, Chart, Clear, Dataset, GraphType, Paragraph, Row as TableRow, Table, TableState, Wrap};
use ratatui::Frame;

use super::app::{key_of, App, Row};

pub const KEYS: &[(&str, &str)] = &[
    ("↑/↓ j/k", "select a site"),
    ("s", "sort: bytes → count → age → growth"),
    ("t", "filter by kind (heap, socket, timerfd, ...)"),
    ("/", "filter by text (Enter applies, Esc clears)"),
    ("b / B", "mark a baseline: show only growth since now / clear it"),
    ("p", "pause or resume the view"),
    ("e", "export the current view as JSON"),
    ("?", "this help"),
    ("q, Ctrl-C", "quit"),
];

pub fn render(app: &App, f: &mut Frame) {
    let [main, status] = Layout::vertical([Constraint::Min(6), Constraint::Length(2)]).areas(f.area());
    let [table, lower] = Layout::vertical([Constraint::Percentage(55), Constraint::Percentage(45)]).areas(main);
    let [trend, detail] = Layout::horizontal([Constraint::Percentage(45), Constraint::Percentage(55)]).areas(lower);
    let rows = app.rows();
    render_table(app, &rows, f, table);
    render_trend(app, &rows, f, trend);
    render_detail(app, &rows, f, detail);
    render_status(app, f, status);
    if app.help {
        render_help(f);
    }
}

fn human_bytes(b: u64) -> String {
    match b {
        0..1024 => format!("{b} B"),
        1024..1_048_576 => format!("{:.1} KiB", b as f64 / 1024.0),
        _ => format!("{:.1} MiB", b as f64 / 1_048_576.0),
    }
}

fn render_table(app: &App, rows: &[Row], f: &mut Frame, area: Rect) {
    let sort = app.sort();
    let head = |name: &'static str, col| if sort == col { format!("{name}▼") } else { name.to_owned() };
    use super::app::SortBy::*;
    let header = TableRow::new(vec![
        "kind".to_owned(),
        "call site".to_owned(),
        head("count", Count),
        head("bytes", Bytes),
        "acq/rel".to_owned(),
        head("oldest", Age),
        head("growth", Growth),
    ])
    .style(Style::default().add_modifier(Modifier::BOLD));
    let body = rows.iter().map(|r| {
        let s = &r.site;
        let place = match (&s.site.file, s.site.line) {
            (Some(file), Some(line)) => format!("{} ({}:{line})", s.site.label, file.rsplit('/').next().unwrap_or(file)),
            _ => s.site.label.clone(),
        };
        let growth = if r.growth > 0 { format!("+{}", r.growth) } else { r.growth.to_string() };
        TableRow::new(vec![
            s.kind.name().to_owned(),
            place,
            s.count.to_string(),
            human_bytes(s.bytes),
            format!("{}/{}", s.allocations, s.releases),
            format!("{:.1}s", s.oldest_age_secs),
            growth,
        ])
    });
    let mut title = format!(" leaking sites ({}) sort: {}", rows.len(), sort.name());
    if let Some(k) = app.kind {
        title += &format!(" kind: {k}");
    }
    if !app.filter.is_empty() {
        title += &format!(" filter: \"{}\"", app.filter);
    }
    if let Some(b) = &app.baseline {
        title += &format!(" baseline: +{:.0}s ago (growth since the mark)", app.elapsed - b.at);
    }
    let widths = [
        Constraint::Length(8),
        Constraint::Min(30),
        Constraint::Length(8),
        Constraint::Length(11),
        Constraint::Length(13),
        Constraint::Length(8),
        Constraint::Length(8),
    ];
    let table = Table::new(body, widths)
        .header(header)
        .block(Block::bordered().title(title + " "))
        .row_highlight_style(Style::default().bg(Color::DarkGray).add_modifier(Modifier::BOLD));
    let mut state = TableState::default().with_selected((!rows.is_empty()).then_some(app.selected));
    f.render_stateful_widget(table, area, &mut state);
}

fn render_trend(app: &App, rows: &[Row], f: &mut Frame, area: Rect) {
    let heap: Vec<(f64, f64)> = app.trend.iter().map(|&(t, b, _)| (t, b as f64)).collect();
    let handles: Vec<(f64, f64)> = app.trend.iter().map(|&(t, _, h)| (t, h as f64)).collect();
    let selected: Vec<(f64, f64)> = rows.get(app.selected).map(|r| app.site_trend(&key_of(&r.site))).unwrap_or_default();
    let max = |v: &[(f64, f64)]| v.iter().map(|p| p.1).fold(1.0, f64::max);
    // Heap bytes, handle counts and the site's count have different scales: each is drawn relative to its own maximum.
    let norm = |v: &[(f64, f64)]| -> Vec<(f64, f64)> {
        let m = max(v);
        v.iter().map(|&(t, y)| (t, y / m * 100.0)).collect()
    };
    let (h, c, s) = (norm(&heap), norm(&handles), norm(&selected));
    let t0 = app.trend.front().map_or(0.0, |p| p.0);
    let t1 = app.trend.back().map_or(1.0, |p| p.0).max(t0 + 1.0);
    let datasets = vec![
        Dataset::default()
            .name(format!("heap {}", human_bytes(max(&heap) as u64)))
            .marker(Marker::Braille)
            .graph_type(GraphType::Line)
            .style(Style::default().fg(Color::Cyan))
            .data(&h),
        Dataset::default()
            .name(format!("handles {}", max(&handles) as u64))
            .marker(Marker::Braille)
            .graph_type(GraphType::Line)
            .style(Style::default().fg(Color::Yellow))
            .data(&c),
        Dataset::default()
            .name(format!("selected {}", max(&selected) as u64))
            .marker(Marker::Braille)
            .graph_type(GraphType::Line)
            .style(Style::default().fg(Color::Magenta))
            .data(&s),
    ];
    let chart = Chart::new(datasets)
        .block(Block::bordered().title(" outstanding over time (% of each maximum) "))
        .x_axis(Axis::default().bounds([t0, t1]).labels([format!("{t0:.0}s"), format!("{t1:.0}s")]))
        .y_axis(Axis::default().bounds([0.0, 100.0]).labels(["0", "100%"]));
    f.render_widget(chart, area);
}

fn render_detail(app: &App, rows: &[Row], f: &mut Frame, area: Rect) {
    let Some(row) = rows.get(app.selected) else {
        f.render_widget(Paragraph::new("no site selected").block(Block::bordered().title(" detail ")), area);
        return;
    };
    let s = &row.site;
    let mut lines = vec![Line::from(vec![
        Span::styled(s.site.label.clone(), Style::default().add_modifier(Modifier::BOLD)),
        Span::raw(format!("  {} in {}", s.kind, s.site.module.rsplit('/').next().unwrap_or(&s.site.module))),
    ])];
    if let Some(d) = s.detail_line() {
        lines.push(Line::styled(d, Style::default().fg(Color::Cyan)));
    }
    if let Some(g) = &s.growth {
        lines.push(Line::raw(format!("growth: {}", g.describe(s.kind))));
    }
    // After a reachability scan (the final screen under `run`): valgrind's classes.
    if let Some(c) = s.reachability.as_ref().map(|r| r.describe()).filter(|c| !c.is_empty()) {
        lines.push(Line::styled(c, Style::default().fg(Color::Magenta)));
    }
    if let (Some(file), Some(line)) = (&s.site.file, s.site.line) {
        for (n, text) in app.source_context(file, line) {
            let style = if n == line { Style::default().fg(Color::Yellow) } else { Style::default().fg(Color::Gray) };
            lines.push(Line::styled(format!("{n:>5} │ {text}"), style));
        }
    }
    lines.push(Line::raw("stack:"));
    for fr in &s.stack {
        let name = fr.function.clone().unwrap_or_else(|| format!("{:#x}", fr.address));
        let place = match (&fr.file, fr.line) {
            (Some(file), Some(l)) => format!("{}:{l}", file.rsplit('/').next().unwrap_or(file)),
            _ => fr.module.rsplit('/').next().unwrap_or(&fr.module).to_owned(),
        };
        let mark = match (fr.inlined, fr.inferred) {
            (_, true) => " [tail call]",
            (true, false) => " [inlined]",
            _ => "",
        };
        lines.push(Line::raw(format!("  {name}{mark}  {place}")));
    }
    if let Some(why) = &s.stack_end {
        lines.push(Line::styled(format!("  (stack ends early: {why})"), Style::default().fg(Color::Gray)));
    }
    f.render_widget(Paragraph::new(lines).wrap(Wrap { trim: false }).block(Block::bordered().title(" detail ")), area);
}

fn render_status(app: &App, f: &mut Frame, area: Rect) {
    let Some(r) = &app.report else {
        f.render_widget(Paragraph::new("waiting for data..."), area);
        return;
    };
    let state = if app.ended {
        r.target.state.to_string() + r.target.exit.map(|e| format!(" ({e})")).as_deref().unwrap_or("")
    } else {
        r.target.state.to_string()
    };
    let probe_errors: u64 = r.counters.iter().filter(|(k, _)| k.ends_with("_failed") || k.ends_with("_full")).map(|(_, v)| v).sum();
    let alarm =
        |n: u64| if n > 0 { Style::default().fg(Color::White).bg(Color::Red).add_modifier(Modifier::BOLD) } else { Style::default() };
    let mut first = vec![
        Span::styled(format!(" pid {} ", r.target.pid), Style::default().add_modifier(Modifier::BOLD)),
        Span::raw(format!("{}  up {:.0}s  {:.0} ev/s  ", r.target.command, app.elapsed, app.events_per_sec)),
        Span::styled(format!("lost {}", r.lost_events), alarm(r.lost_events)),
        Span::raw("  "),
        Span::styled(format!("probe errors {probe_errors}"), alarm(probe_errors)),
        Span::raw(format!("  {state}")),
    ];
    if app.paused {
        first.push(Span::styled("  PAUSED", Style::default().fg(Color::Yellow).add_modifier(Modifier::BOLD)));
    }
    let second = match (&app.editing, &app.message) {
        (Some(text), _) => Line::raw(format!(" filter: {text}▏")),
        (None, Some(m)) => Line::raw(format!(" {m}")),
        (None, None) => {
            Line::styled(" ? help  q quit  s sort  t kind  / filter  b baseline  p pause  e export", Style::default().fg(Color::Gray))
        }
    };
    f.render_widget(Paragraph::new(vec![Line::from(first), second]), area);
}

fn render_help(f: &mut Frame) {
    let area = f.area();
    let w = 64.min(area.width);
    let h = (KEYS.len() as u16 + 2).min(area.height);
    let popup = Rect::new(area.x + (area.width - w) / 2, area.y + (area.height - h) / 2, w, h);
    let lines: Vec<Line> = KEYS.iter().map(|(k, what)| Line::raw(format!(" {k:<10} {what}"))).collect();
    f.render_widget(Clear, popup);
    f.render_widget(Paragraph::new(lines).block(Block::bordered().title(" keys ")), popup);
}
