//! The report as a gzipped pprof profile (profile.proto), for `go tool
//! pprof`, Pyroscope, Parca and speedscope: one sample per stack, with the
//! sample types `inuse_space` (bytes), `inuse_objects` (allocations) and
//! `<kind>_handles` for each descriptor kind; functions, files, lines and
//! inlined frames as leaktrace named them; mappings with build-ids.

use std::collections::HashMap;
use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

use flate2::write::GzEncoder;
use prost::Message;

use super::pprof_proto as pb;
use super::profile::{self, frame_name};
use super::{Output, Rendered};
use crate::aggregate::ResourceKind;
use crate::report::model::{Report, StackFrame};
use crate::report::profile::{ModuleMapping, Profile, ProfileStack};

pub struct Pprof;

impl Output for Pprof {
    fn name(&self) -> &'static str {
        "pprof"
    }

    fn needs_stacks(&self) -> bool {
        true
    }

    fn needs_file(&self) -> bool {
        true
    }

    fn render(&self, report: &Report) -> anyhow::Result<Rendered> {
        Ok(Rendered { body: encode(report)?, beside: None })
    }
}

/// Sample types: heap bytes, heap allocations, then one per descriptor kind.
fn sample_types() -> Vec<(String, &'static str)> {
    let mut t = vec![("inuse_space".to_owned(), "bytes"), ("inuse_objects".to_owned(), "count")];
    t.extend(ResourceKind::all().skip(1).map(|k| (format!("{}_handles", k.name()), "count")));
    t
}

/// The value index of a stack's count (its bytes go at 0 for heap).
fn count_index(kind: ResourceKind) -> usize {
    ResourceKind::all().position(|k| k == kind).map_or(1, |i| i + 1)
}

/// The profile, gzipped as pprof writes it.
pub fn encode(report: &Report) -> std::io::Result<Vec<u8>> {
    let message = build(report).encode_to_vec();
    let mut gz = GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&message)?;
    gz.finish()
}

/// The profile message.
pub fn build(report: &Report) -> pb::Profile {
    let profile = profile::of(report);
    let mut b = Builder::new(&profile.mappings);
    let types = sample_types();
    b.out.sample_type = types.iter().map(|(t, u)| pb::ValueType { r#type: b.string(t), unit: b.string(u) }).collect();
    let kind_key = b.string("kind");
    // Tools take the first mapping for the program: the module most stacks start in.
    if let Some(f) = outermost(&profile) {
        b.mapping(f);
    }
    for s in &profile.stacks {
        let mut value = vec![0i64; types.len()];
        value[count_index(s.kind)] = s.count as i64;
        if s.kind == ResourceKind::Heap {
            value[0] = s.bytes as i64;
        }
        let location_id = b.locations(s);
        let label = vec![pb::Label { key: kind_key, str: b.string(s.kind.name()), ..pb::Label::default() }];
        b.out.sample.push(pb::Sample { location_id, value, label });
    }
    let default = if report.totals.heap_bytes > 0 || report.totals.handle_count() == 0 {
        0
    } else {
        profile.stacks.iter().find(|s| s.kind != ResourceKind::Heap).map_or(0, |s| count_index(s.kind))
    };
    b.out.default_sample_type = b.out.sample_type[default].r#type;
    b.out.period_type = Some(pb::ValueType { r#type: b.string("space"), unit: b.string("bytes") });
    b.out.period = i64::from(report.sample_every.unwrap_or(1));
    b.out.time_nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as i64);
    b.out.duration_nanos = (report.target.duration_secs * 1e9) as i64;
    let t = &report.target;
    let mut comments = vec![format!("leaktrace: outstanding in pid {} `{}` ({}) after {:.1}s", t.pid, t.command, t.state, t.duration_secs)];
    if let Some(n) = report.sample_every {
        comments.push(format!("sampling 1 in {n} allocator calls: heap figures are estimates"));
    }
    if !report.complete {
        comments.push(format!("incomplete: {} events were lost", report.lost_events));
    }
    b.out.comment = comments.iter().map(|c| b.string(c)).collect();
    b.out
}

/// The outermost frame of a stack in the module that most stacks start in (`_start` in the executable).
fn outermost(profile: &Profile) -> Option<&StackFrame> {
    let mut starts: HashMap<&str, (usize, &StackFrame)> = HashMap::new();
    for f in profile.stacks.iter().filter_map(|s| s.frames.last()) {
        starts.entry(f.module.as_str()).or_insert((0, f)).0 += 1;
    }
    starts.into_values().max_by_key(|&(n, f)| (n, std::cmp::Reverse(&f.module))).map(|(_, f)| f)
}

/// A location: its mapping, address and lines (the function ids), innermost first.
type LocationKey = (u64, u64, Vec<(u64, i64)>);

struct Builder<'a> {
    out: pb::Profile,
    strings: HashMap<String, i64>,
    functions: HashMap<(i64, i64), u64>,
    locations: HashMap<LocationKey, u64>,
    known: &'a [ModuleMapping],
    /// Index in `known` (or the module's name, for a made-up mapping) to mapping id.
    mapping_ids: HashMap<Result<usize, String>, u64>,
}

impl<'a> Builder<'a> {
    fn new(known: &'a [ModuleMapping]) -> Self {
        let out = pb::Profile { string_table: vec![String::new()], ..pb::Profile::default() };
        let strings = HashMap::from([(String::new(), 0)]);
        Self { out, strings, functions: HashMap::new(), locations: HashMap::new(), known, mapping_ids: HashMap::new() }
    }

    fn string(&mut self, s: &str) -> i64 {
        if let Some(&i) = self.strings.get(s) {
            return i;
        }
        let i = self.out.string_table.len() as i64;
        self.out.string_table.push(s.to_owned());
        self.strings.insert(s.to_owned(), i);
        i
    }

    fn function(&mut self, f: &StackFrame) -> u64 {
        let name = self.string(&frame_name(f));
        let file = self.string(f.file.as_deref().unwrap_or(""));
        let next = self.out.function.len() as u64 + 1;
        let id = *self.functions.entry((name, file)).or_insert(next);
        if id == next {
            self.out.function.push(pb::Function { id, name, system_name: name, filename: file });
        }
        id
    }

    /// The mapping of a physical frame: the process's own when it was
    /// found, else one made up per module around the addresses seen.
    fn mapping(&mut self, f: &StackFrame) -> u64 {
        let at = f.address.saturating_sub(1);
        let key = self.known.iter().position(|m| m.contains(&f.module, f.address)).ok_or_else(|| f.module.clone());
        if let Some(&id) = self.mapping_ids.get(&key) {
            let m = &mut self.out.mapping[id as usize - 1];
            if key.is_err() {
                m.memory_start = m.memory_start.min(at);
                m.memory_limit = m.memory_limit.max(f.address + 1);
            }
            return id;
        }
        let id = self.out.mapping.len() as u64 + 1;
        let (start, limit, offset, build_id) = match &key {
            Ok(i) => {
                let m = &self.known[*i];
                (m.start, m.end, m.offset, m.build_id.clone().unwrap_or_default())
            }
            Err(_) => (at, f.address + 1, 0, String::new()),
        };
        let (filename, build_id) = (self.string(&f.module), self.string(&build_id));
        self.out.mapping.push(pb::Mapping {
            id,
            memory_start: start,
            memory_limit: limit,
            file_offset: offset,
            filename,
            build_id,
            has_functions: true,
            has_filenames: true,
            has_line_numbers: true,
            has_inline_frames: true,
        });
        self.mapping_ids.insert(key, id);
        id
    }

    /// Location ids of a stack, innermost first: each physical frame with
    /// the frames inlined into it is one location.
    fn locations(&mut self, s: &ProfileStack) -> Vec<u64> {
        let mut ids = Vec::new();
        let mut lines = Vec::new();
        for (i, f) in s.frames.iter().enumerate() {
            lines.push((self.function(f), i64::from(f.line.unwrap_or(0))));
            if f.inlined && i + 1 < s.frames.len() {
                continue;
            }
            let mapping = self.mapping(f);
            let key = (mapping, f.address, std::mem::take(&mut lines));
            let next = self.out.location.len() as u64 + 1;
            let id = *self.locations.entry(key.clone()).or_insert(next);
            if id == next {
                let line = key.2.iter().map(|&(function_id, line)| pb::Line { function_id, line }).collect();
                self.out.location.push(pb::Location { id, mapping_id: mapping, address: f.address, line });
            }
            ids.push(id);
        }
        ids
    }
}

#[cfg(test)]
#[path = "pprof_tests.rs"]
mod tests;
