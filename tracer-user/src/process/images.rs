//! Functions of another process, found in the files it maps: each file read
//! through /proc/PID/map_files (the inode mapped, in whatever mount
//! namespace), its dynamic symbol's file offset placed by the mapping that
//! holds that offset.

use std::path::Path;

use crate::probes::LinkerView;

/// One line of /proc/PID/maps.
#[derive(Debug, Clone)]
pub struct Region {
    pub start: u64,
    pub end: u64,
    pub offset: u64,
    /// (device, inode): which file; inode 0 is anonymous memory.
    pub file: (String, u64),
    pub path: Option<String>,
}

/// Every mapping of `pid`.
pub fn regions(pid: u32) -> std::io::Result<Vec<Region>> {
    let text = std::fs::read(format!("/proc/{pid}/maps"))?;
    let text = String::from_utf8_lossy(&text);
    Ok(text.lines().filter_map(parse_line).collect())
}

fn parse_line(line: &str) -> Option<Region> {
    let mut f = line.splitn(6, ' ');
    let (range, _perms, offset, dev, inode) = (f.next()?, f.next()?, f.next()?, f.next()?, f.next()?);
    let path = f.next().map(str::trim_start).filter(|p| !p.is_empty()).map(str::to_owned);
    let (start, end) = range.split_once('-')?;
    Some(Region {
        start: u64::from_str_radix(start, 16).ok()?,
        end: u64::from_str_radix(end, 16).ok()?,
        offset: u64::from_str_radix(offset, 16).ok()?,
        file: (dev.to_owned(), inode.parse().ok()?),
        path,
    })
}

/// A file mapped by the process: its bytes and where it is mapped.
pub struct Image {
    pub shown: String,
    data: Vec<u8>,
    /// (start, end, file offset) of each of its mappings.
    ranges: Vec<(u64, u64, u64)>,
}

impl Image {
    /// The first file whose shown name's last component satisfies `wanted`.
    pub fn named(pid: u32, regions: &[Region], wanted: impl Fn(&str) -> bool) -> Option<std::io::Result<Image>> {
        let r = regions.iter().find(|r| {
            r.file.1 != 0 && r.path.as_deref().and_then(|p| Path::new(p).file_name()).and_then(|n| n.to_str()).is_some_and(&wanted)
        })?;
        Some(Self::of(pid, regions, r))
    }

    /// The file mapped from its start at `base`.
    pub fn at(pid: u32, regions: &[Region], base: u64) -> Option<std::io::Result<Image>> {
        let r = regions.iter().find(|r| r.start == base && r.offset == 0 && r.file.1 != 0)?;
        Some(Self::of(pid, regions, r))
    }

    fn of(pid: u32, regions: &[Region], r: &Region) -> std::io::Result<Image> {
        let data = std::fs::read(format!("/proc/{pid}/map_files/{:x}-{:x}", r.start, r.end))?;
        let ranges = regions.iter().filter(|o| o.file == r.file).map(|o| (o.start, o.end, o.offset)).collect();
        Ok(Image { shown: r.path.clone().unwrap_or_default(), data, ranges })
    }

    /// Whether the file is an ELF file with a dynamic section (a shared library, a dynamic executable).
    pub fn is_dynamic(&self) -> bool {
        LinkerView::parse(&self.data).is_some_and(|v| v.is_dynamic())
    }

    /// The address of the dynamic symbol `name` in the process.
    pub fn symbol(&self, name: &str) -> Option<u64> {
        let at = LinkerView::parse(&self.data)?.defined_symbol(name)?;
        self.ranges.iter().find(|(start, end, off)| at >= *off && at - off < end - start).map(|(start, _, off)| start + (at - off))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_symbol_is_placed_by_the_mapping_holding_its_offset() {
        let pid = std::process::id();
        let regions = regions(pid).unwrap();
        let libc = Image::named(pid, &regions, |n| n.starts_with("libc.so")).expect("glibc is mapped").unwrap();
        let ours = nix::libc::getpid as *const () as u64;
        assert_eq!(libc.symbol("getpid"), Some(ours));
        assert_eq!(libc.symbol("no_such_function_here"), None);
    }

    #[test]
    fn maps_lines_parse_with_and_without_a_path() {
        let r = parse_line("7f00-7f10 r-xp 00002000 fe:01 1234   /usr/lib/x.so").unwrap();
        assert_eq!((r.start, r.end, r.offset, r.file.1, r.path.as_deref()), (0x7f00, 0x7f10, 0x2000, 1234, Some("/usr/lib/x.so")));
        let anon = parse_line("7f00-7f10 rw-p 00000000 00:00 0 ").unwrap();
        assert_eq!((anon.file.1, anon.path), (0, None));
    }
}
