//! Offsets of kernel structure members, read from the kernel's own BTF
//! (/sys/kernel/btf/vmlinux), for programs that read kernel structures
//! (a vma's file, a file's inode) without CO-RE: the loader passes the
//! offsets as load-time constants.

use std::collections::HashMap;

const BTF_MAGIC: u16 = 0xeb9f;
const KIND_STRUCT: u32 = 4;
const KIND_UNION: u32 = 5;
/// Nested anonymous members followed at most this deep.
const MAX_NESTING: usize = 8;

#[derive(Debug, thiserror::Error)]
pub enum BtfError {
    #[error("cannot read /sys/kernel/btf/vmlinux")]
    Read(#[source] std::io::Error),
    #[error("kernel BTF: {0}")]
    Malformed(&'static str),
    #[error("kernel BTF has no struct {0}")]
    NoStruct(String),
    #[error("kernel BTF: struct {0} has no member {1}")]
    NoMember(String, String),
}

struct Member {
    name: u32,
    ty: u32,
    bit_offset: u32,
}

enum Type {
    Composite { name: u32, members: Vec<Member> },
    Other,
}

/// The struct and union types of a BTF blob, with their members.
pub struct KernelBtf {
    strings: Vec<u8>,
    /// Index 0 is the void type.
    types: Vec<Type>,
    structs: HashMap<String, u32>,
}

fn u32_at(b: &[u8], off: usize) -> Result<u32, BtfError> {
    b.get(off..off + 4).map(|s| u32::from_le_bytes(s.try_into().unwrap_or([0; 4]))).ok_or(BtfError::Malformed("truncated"))
}

/// Bytes of kind-specific data after a type's 12-byte header.
fn extra_len(kind: u32, vlen: usize) -> Option<usize> {
    Some(match kind {
        1 | 14 | 17 => 4,             // int, var, decl_tag
        2 | 7..=12 | 16 | 18 => 0,    // ptr, fwd, typedef, volatile, const, restrict, func, float, type_tag
        3 => 12,                      // array
        4 | 5 | 15 | 19 => 12 * vlen, // struct, union, datasec, enum64
        6 | 13 => 8 * vlen,           // enum, func_proto
        _ => return None,
    })
}

impl KernelBtf {
    pub fn load() -> Result<Self, BtfError> {
        let data = std::fs::read("/sys/kernel/btf/vmlinux").map_err(BtfError::Read)?;
        Self::parse(&data)
    }

    pub fn parse(data: &[u8]) -> Result<Self, BtfError> {
        if data.get(0..2) != Some(&BTF_MAGIC.to_le_bytes()[..]) {
            return Err(BtfError::Malformed("bad magic (not little-endian BTF)"));
        }
        let hdr_len = u32_at(data, 4)? as usize;
        let (type_off, type_len) = (u32_at(data, 8)? as usize, u32_at(data, 12)? as usize);
        let (str_off, str_len) = (u32_at(data, 16)? as usize, u32_at(data, 20)? as usize);
        let section =
            |off: usize, len: usize| data.get(hdr_len + off..hdr_len + off + len).ok_or(BtfError::Malformed("section out of bounds"));
        let (tdata, strings) = (section(type_off, type_len)?, section(str_off, str_len)?.to_vec());
        let mut types = vec![Type::Other];
        let mut at = 0;
        while at < tdata.len() {
            let (name, info) = (u32_at(tdata, at)?, u32_at(tdata, at + 4)?);
            let (kind, vlen) = ((info >> 24) & 0x1f, (info & 0xffff) as usize);
            let extra = extra_len(kind, vlen).ok_or(BtfError::Malformed("unknown type kind"))?;
            let body = at + 12;
            let ty = if kind == KIND_STRUCT || kind == KIND_UNION {
                let bitfields = info >> 31 == 1;
                let members = (0..vlen)
                    .map(|i| {
                        let m = body + 12 * i;
                        let raw = u32_at(tdata, m + 8)?;
                        Ok(Member {
                            name: u32_at(tdata, m)?,
                            ty: u32_at(tdata, m + 4)?,
                            bit_offset: if bitfields { raw & 0xff_ffff } else { raw },
                        })
                    })
                    .collect::<Result<_, BtfError>>()?;
                Type::Composite { name, members }
            } else {
                Type::Other
            };
            types.push(ty);
            at = body + extra;
        }
        let mut btf = Self { strings, types, structs: HashMap::new() };
        for (id, t) in btf.types.iter().enumerate() {
            if let Type::Composite { name, .. } = t {
                let n = btf.str_at(*name);
                if !n.is_empty() {
                    btf.structs.entry(n.to_owned()).or_insert(id as u32);
                }
            }
        }
        Ok(btf)
    }

    fn str_at(&self, off: u32) -> &str {
        let rest = self.strings.get(off as usize..).unwrap_or(&[]);
        let end = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
        std::str::from_utf8(&rest[..end]).unwrap_or("")
    }

    /// Byte offset of `member` in `struct name`, through anonymous unions and structs.
    pub fn member_offset(&self, name: &str, member: &str) -> Result<u32, BtfError> {
        let id = *self.structs.get(name).ok_or_else(|| BtfError::NoStruct(name.to_owned()))?;
        self.find(id, member, 0).map(|bits| bits / 8).ok_or_else(|| BtfError::NoMember(name.to_owned(), member.to_owned()))
    }

    fn find(&self, id: u32, member: &str, depth: usize) -> Option<u32> {
        let Some(Type::Composite { members, .. }) = self.types.get(id as usize) else { return None };
        for m in members {
            let n = self.str_at(m.name);
            if n == member {
                return Some(m.bit_offset);
            }
            if n.is_empty() && depth < MAX_NESTING {
                // Anonymous members are unions and structs themselves.
                if let Some(inner) = self.find(m.ty, member, depth + 1) {
                    return Some(m.bit_offset + inner);
                }
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_running_kernel_has_the_members_leaktrace_reads() {
        let btf = KernelBtf::load().unwrap();
        // vm_start is the first member (inside an anonymous struct in a union).
        assert_eq!(btf.member_offset("vm_area_struct", "vm_start").unwrap(), 0);
        assert_eq!(btf.member_offset("vm_area_struct", "vm_end").unwrap(), 8);
        for (s, m) in [
            ("vm_area_struct", "vm_pgoff"),
            ("vm_area_struct", "vm_file"),
            ("file", "f_inode"),
            ("inode", "i_ino"),
            ("inode", "i_sb"),
            ("super_block", "s_dev"),
        ] {
            let off = btf.member_offset(s, m).unwrap_or_else(|e| panic!("{e}"));
            assert!(off > 0 && off < 4096, "{s}.{m} at {off}");
        }
        assert!(matches!(
            btf.member_offset("vm_area_struct", "no_such_member"),
            Err(BtfError::NoMember(s, m)) if s == "vm_area_struct" && m == "no_such_member"
        ));
        assert!(matches!(btf.member_offset("no_such_struct", "x"), Err(BtfError::NoStruct(_))));
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(KernelBtf::parse(b"").is_err());
        assert!(KernelBtf::parse(&[0x9f, 0xeb, 1, 0, 24, 0, 0, 0, 0xff, 0xff, 0xff, 0xff]).is_err());
        let mut hdr = vec![0x9f, 0xeb, 1, 0, 24, 0, 0, 0];
        hdr.extend([0, 0, 0, 0, 12, 0, 0, 0, 12, 0, 0, 0, 1, 0, 0, 0]);
        hdr.extend([0, 0, 0, 0, 0, 0, 0, 0x1f, 0, 0, 0, 0, 0]); // a type of unknown kind 31
        assert!(matches!(KernelBtf::parse(&hdr), Err(BtfError::Malformed("unknown type kind"))));
    }
}
