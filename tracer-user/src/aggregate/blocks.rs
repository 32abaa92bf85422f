//! One process's outstanding heap blocks by address, 16 bytes each: the
//! address, size, stack and time packed into two words of a hash table
//! keyed by hand (hashbrown's `HashTable`). A million blocks take a table of
//! two million buckets (the load factor stays under 7/8), so each byte of a
//! bucket is two MiB: 16-byte buckets instead of 24 keep a million
//! outstanding blocks, scanned at exit, under leaktrace's 100 MiB.
//!
//! The rare block that does not pack (an address above 2^48 or not 8-byte
//! aligned, a size of 4 GiB or more, a stack id of 2^24 or more) is kept
//! unpacked in a side map.

use std::collections::HashMap;

use hashbrown::hash_table::Entry;
use hashbrown::HashTable;

use super::stacks::StackId;

/// Times are kept in units of this many milliseconds, in 27 bits: ages
/// have 8 ms resolution and wrap after 12.4 days.
pub const TS_UNIT_MS: u64 = 8;
const TS_BITS: u32 = 27;
const TS_MASK: u32 = (1 << TS_BITS) - 1;

const ADDR_BITS: u32 = 45; // address / 8, for addresses below 2^48
const ADDR_MASK: u64 = (1 << ADDR_BITS) - 1;
const TS_LOW_BITS: u32 = 64 - ADDR_BITS; // 19 in the key word, 8 in the value word
const STACK_BITS: u32 = 24;
const STACK_MASK: u64 = (1 << STACK_BITS) - 1;

/// A block as the aggregator sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Allocation {
    pub size: u64,
    pub stack: StackId,
    /// [`ts_of`] of its allocation time.
    pub ts: u32,
}

/// A time in [`TS_UNIT_MS`] units, as kept per block.
pub fn ts_of(ts_ns: u64) -> u32 {
    (ts_ns / 1_000_000 / TS_UNIT_MS) as u32 & TS_MASK
}

/// The time `ts` stood for, given the time now (`ts` is at most one wrap old).
pub fn ns_of(ts: u32, now_ns: u64) -> u64 {
    let behind = u64::from(ts_of(now_ns).wrapping_sub(ts) & TS_MASK);
    now_ns.saturating_sub(behind * TS_UNIT_MS * 1_000_000)
}

/// Whether `a` is older than `b` (both at most half a wrap apart).
pub fn older(a: u32, b: u32) -> bool {
    let d = b.wrapping_sub(a) & TS_MASK;
    d != 0 && d < 1 << (TS_BITS - 1)
}

#[derive(Clone, Copy)]
struct Packed {
    /// Address / 8 (45 bits), then the time's low 19 bits.
    key: u64,
    /// Size (32 bits), stack (24 bits), then the time's high 8 bits.
    val: u64,
}

impl Packed {
    fn new(addr: u64, a: Allocation) -> Option<Self> {
        let fits =
            addr.is_multiple_of(8) && addr >> (ADDR_BITS + 3) == 0 && a.size <= u64::from(u32::MAX) && u64::from(a.stack.0) <= STACK_MASK;
        let ts = u64::from(a.ts & TS_MASK);
        fits.then(|| Self {
            key: addr >> 3 | (ts << ADDR_BITS),
            val: a.size | u64::from(a.stack.0) << 32 | (ts >> TS_LOW_BITS) << (32 + STACK_BITS),
        })
    }

    fn addr(&self) -> u64 {
        (self.key & ADDR_MASK) << 3
    }

    fn unpack(&self) -> Allocation {
        let ts = (self.key >> ADDR_BITS) | (self.val >> (32 + STACK_BITS)) << TS_LOW_BITS;
        Allocation { size: self.val & u64::from(u32::MAX), stack: StackId(((self.val >> 32) & STACK_MASK) as u32), ts: ts as u32 }
    }
}

/// Nearby addresses land in nearby buckets (the bucket is chosen by the low
/// bits: the address over 16), the high bits (the table's tag byte) mixed:
/// a table reserved for a million blocks costs memory for the address range
/// in use, not for every page of the reservation, as a scattering hash would.
fn hash(addr: u64) -> u64 {
    let mixed = addr.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    (addr >> 4) & ((1 << 57) - 1) | (mixed & !((1 << 57) - 1))
}

#[derive(Default, Clone)]
pub struct BlockTable {
    table: HashTable<Packed>,
    /// Blocks that do not pack, by address.
    wide: HashMap<u64, Allocation>,
}

impl BlockTable {
    /// Room for `n` blocks before the table grows (untouched room costs no memory).
    pub fn with_capacity(n: usize) -> Self {
        Self { table: HashTable::with_capacity(n), wide: HashMap::new() }
    }

    /// Adds the block at `addr`; returns the block it replaces (one whose
    /// free was never seen), in one search of the table.
    pub fn insert(&mut self, addr: u64, a: Allocation) -> Option<Allocation> {
        let Some(p) = Packed::new(addr, a) else {
            let old = self.remove(addr);
            self.wide.insert(addr, a);
            return old;
        };
        match self.table.entry(hash(addr), |q| q.addr() == addr, |q| hash(q.addr())) {
            Entry::Occupied(mut e) => Some(std::mem::replace(e.get_mut(), p).unpack()),
            Entry::Vacant(e) => {
                e.insert(p);
                self.remove_wide(addr)
            }
        }
    }

    pub fn remove(&mut self, addr: u64) -> Option<Allocation> {
        match self.table.find_entry(hash(addr), |p| p.addr() == addr) {
            Ok(e) => Some(e.remove().0.unpack()),
            Err(_) => self.remove_wide(addr),
        }
    }

    /// Almost always empty: then no address is hashed for it.
    fn remove_wide(&mut self, addr: u64) -> Option<Allocation> {
        if self.wide.is_empty() {
            return None;
        }
        self.wide.remove(&addr)
    }

    /// The block at `addr`.
    pub fn get(&self, addr: u64) -> Option<Allocation> {
        match self.table.find(hash(addr), |p| p.addr() == addr) {
            Some(p) => Some(p.unpack()),
            None => self.wide.get(&addr).copied(),
        }
    }

    pub fn len(&self) -> usize {
        self.table.len() + self.wide.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every block, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (u64, Allocation)> + '_ {
        self.table.iter().map(|p| (p.addr(), p.unpack())).chain(self.wide.iter().map(|(&addr, &a)| (addr, a)))
    }

    /// Every block, emptying the table.
    pub fn drain(&mut self) -> impl Iterator<Item = (u64, Allocation)> + '_ {
        self.table.drain().map(|p| (p.addr(), p.unpack())).chain(self.wide.drain())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_is_sixteen_bytes() {
        assert_eq!(std::mem::size_of::<Packed>(), 16);
    }

    #[test]
    fn blocks_round_trip_packed_or_not() {
        let mut t = BlockTable::with_capacity(16);
        let a = |size, stack, ts| Allocation { size, stack: StackId(stack), ts };
        let cases = [
            (0x5555_0000_1010, a(16, 3, TS_MASK)),
            (0x7fff_ffff_fff8, a(u64::from(u32::MAX), STACK_MASK as u32, 1 << 19)),
            (0x5555_0000_2000, a(5 << 30, 1, 7)),                 // 5 GiB: unpacked
            (0x5555_0000_3004, a(8, 1, 7)),                       // not 8-aligned
            (u64::MAX - 15, a(8, 1, 7)),                          // above 2^48
            (0x5555_0000_4000, a(8, (STACK_MASK + 1) as u32, 9)), // a far stack
        ];
        for &(addr, alloc) in &cases {
            assert_eq!(t.insert(addr, alloc), None);
        }
        assert_eq!(t.wide.len(), 4, "four of them do not pack");
        assert!(cases.iter().all(|&(addr, a)| t.get(addr) == Some(a)));
        assert_eq!(t.len(), cases.len());
        // A block at an address already held replaces it, packed or not, and says what it replaced.
        let again = a(24, 9, 1);
        assert_eq!(t.insert(cases[0].0, again), Some(cases[0].1));
        assert_eq!(t.insert(cases[0].0, cases[0].1), Some(again));
        assert_eq!(t.insert(cases[3].0, again), Some(cases[3].1), "an unpacked one");
        assert_eq!(t.insert(cases[3].0, cases[3].1), Some(again));
        let mut all: Vec<(u64, Allocation)> = t.iter().collect();
        all.sort_by_key(|e| e.0);
        let mut want = cases.to_vec();
        want.sort_by_key(|e| e.0);
        assert_eq!(all, want);
        assert_eq!(t.remove(0x5555_0000_1010), Some(cases[0].1));
        assert_eq!(t.remove(0x5555_0000_2000), Some(cases[2].1));
        assert_eq!(t.remove(0x5555_0000_1010), None);
        assert_eq!(t.get(0x5555_0000_1018), None, "a neighbour is not found for another");
        assert_eq!(t.drain().count(), 4);
        assert_eq!(t.iter().count(), 0);
    }

    #[test]
    fn ages_survive_the_clock_wrap() {
        let wrap_ns = (u64::from(TS_MASK) + 1) * TS_UNIT_MS * 1_000_000;
        let then = wrap_ns - 3_000_000_000; // 3 s before the wrap
        let now = wrap_ns + 2_000_000_000; // 2 s after it
        let ts = ts_of(then);
        let back = ns_of(ts, now);
        assert!(back <= then && then - back < TS_UNIT_MS * 1_000_000, "{back} vs {then}");
        assert!(older(ts, ts_of(now)) && !older(ts_of(now), ts) && !older(ts, ts));
    }
}
