//! Separate debug information: by build-id under /usr/lib/debug/.build-id,
//! then by `.gnu_debuglink` in gdb's standard places. leaktrace runs as root
//! over programs it does not trust, so the link's name is a plain file name
//! (no `/`, no `..`), the file is opened without following a link at its
//! name and without blocking, it must be a regular file, and outside
//! /usr/lib/debug it must belong to root or to the module's owner.

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use object::Object;

use super::mapped::MappedFile;
use nix::fcntl::OFlag;

/// The global debug directory.
pub const DEBUG_ROOT: &str = "/usr/lib/debug";

/// The debug file of the module mapped as `module` from `path`, if one is installed.
pub fn find(path: &Path, module: &MappedFile) -> Option<Arc<MappedFile>> {
    if let Some(id) = module.build_id().filter(|id| id.len() > 1) {
        let hex: String = id.iter().map(|b| format!("{b:02x}")).collect();
        let p = PathBuf::from(format!("{DEBUG_ROOT}/.build-id/{}/{}.debug", &hex[..2], &hex[2..]));
        if let Ok(f) = MappedFile::open(&p) {
            if build_id_of(&f).as_deref() == Some(id) {
                return Some(f);
            }
        }
    }
    let file = object::File::parse(module.bytes()).ok()?;
    let (name, crc) = file.gnu_debuglink().ok().flatten()?;
    let name = plain_name(name)?;
    let dir = path.parent()?;
    let global = Path::new(DEBUG_ROOT).join(dir.strip_prefix("/").unwrap_or(dir)).join(name);
    let beside = [dir.join(name), dir.join(".debug").join(name)];
    if let Some(f) = open_checked(&global, crc, None) {
        return Some(f);
    }
    beside.iter().find_map(|p| open_checked(p, crc, Some(module.uid())))
}

/// The build-id of a debug file (its note section; debug files keep it).
fn build_id_of(f: &MappedFile) -> Option<Vec<u8>> {
    f.build_id().map(<[u8]>::to_vec).or_else(|| object::File::parse(f.bytes()).ok()?.build_id().ok().flatten().map(<[u8]>::to_vec))
}

/// A `.gnu_debuglink` name usable as one path component, else None.
pub fn plain_name(name: &[u8]) -> Option<&str> {
    let name = std::str::from_utf8(name).ok()?;
    let bad = name.is_empty() || name == "." || name == ".." || name.contains('/') || name.contains('\0');
    (!bad).then_some(name)
}

/// Opens a candidate debug file: a regular file, not through a link at its
/// name, owned by root or `owner` when given, whose CRC-32 is `crc`. The
/// CRC is computed by reading (not mapping) the file, so its pages do not
/// stay in leaktrace's resident set.
fn open_checked(path: &Path, crc: u32, owner: Option<u32>) -> Option<Arc<MappedFile>> {
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags((OFlag::O_NONBLOCK | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW).bits())
        .open(path)
        .ok()?;
    let meta = file.metadata().ok()?;
    if !meta.file_type().is_file() || owner.is_some_and(|o| !owner_ok(meta.uid(), o)) {
        return None;
    }
    if crc32_of(&mut file).ok()? != crc {
        return None;
    }
    MappedFile::from_file(&file).ok()
}

/// A debug file beside a module must belong to root or to the module's owner
/// (not to whoever could write into that directory).
fn owner_ok(file_uid: u32, module_uid: u32) -> bool {
    file_uid == 0 || file_uid == module_uid
}

/// The CRC-32 `.gnu_debuglink` uses (IEEE, reflected).
fn crc32_of(file: &mut File) -> std::io::Result<u32> {
    let mut crc = crc32fast::Hasher::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            return Ok(crc.finalize());
        }
        crc.update(&buf[..n]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_matches_the_standard_check_value() {
        let path = std::env::temp_dir().join(format!("lt-crc-{}", std::process::id()));
        std::fs::write(&path, b"123456789").unwrap();
        let crc = crc32_of(&mut File::open(&path).unwrap()).unwrap();
        std::fs::remove_file(&path).unwrap();
        assert_eq!(crc, 0xcbf4_3926);
    }

    #[test]
    fn debuglink_names_are_plain_file_names() {
        assert_eq!(plain_name(b"libfoo.so.debug"), Some("libfoo.so.debug"));
        for bad in [&b"../../etc/shadow"[..], b"..", b".", b"", b"/etc/shadow", b"a/b", b"\xff"] {
            assert_eq!(plain_name(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn libc_debug_info_is_found_by_build_id() {
        let libc = MappedFile::open(Path::new("/lib/x86_64-linux-gnu/libc.so.6")).unwrap();
        let debug = find(Path::new("/lib/x86_64-linux-gnu/libc.so.6"), &libc).expect("libc6-dbg is installed (cargo xtask setup)");
        let obj = object::File::parse(debug.bytes()).unwrap();
        assert!(obj.section_by_name(".debug_info").is_some());
    }

    #[test]
    fn a_link_planted_beside_a_module_is_not_followed_and_a_stranger_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("secret");
        std::fs::write(&target, b"root-only bytes").unwrap();
        let mut f = File::open(&target).unwrap();
        let crc = crc32_of(&mut f).unwrap();
        let me = std::fs::metadata(&target).unwrap().uid();
        assert!(open_checked(&target, crc, Some(me)).is_some(), "a plain file with the right CRC");
        assert!(open_checked(&target, crc ^ 1, Some(me)).is_none(), "the CRC must match");
        let link = dir.path().join("app.debug");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        assert!(open_checked(&link, crc, Some(me)).is_none(), "never through a link");
    }

    #[test]
    fn a_debug_file_beside_a_module_belongs_to_root_or_its_owner() {
        assert!(owner_ok(0, 1000));
        assert!(owner_ok(1000, 1000));
        assert!(!owner_ok(1001, 1000), "another user's file");
    }
}
