//! Descriptor numbers found inside blocks: a descriptor whose number is in
//! a lost block and in no live one is owned by a lost object.

/// Numbers at or above this are not watched (a bitmap of 128 KiB each side).
const LIMIT: u32 = 1 << 20;

pub struct FdWatch {
    limit: u32,
    open: Vec<u64>,
    live: Vec<u64>,
    lost: Vec<u64>,
}

fn bit(set: &[u64], n: u32) -> bool {
    set[(n / 64) as usize] & (1 << (n % 64)) != 0
}

fn set(set: &mut [u64], n: u32) {
    set[(n / 64) as usize] |= 1 << (n % 64);
}

impl FdWatch {
    /// The outstanding descriptors of the process scanned.
    pub fn new(open: &[i32]) -> Self {
        let nums: Vec<u32> = open.iter().filter_map(|&fd| u32::try_from(fd).ok()).filter(|&fd| fd < LIMIT).collect();
        let limit = nums.iter().max().map_or(0, |&m| m + 1);
        let words = limit.div_ceil(64) as usize;
        let mut w = Self { limit, open: vec![0; words], live: vec![0; words], lost: vec![0; words] };
        for n in nums {
            set(&mut w.open, n);
        }
        w
    }

    /// A word of a block: either 32-bit half may be an `int` holding a descriptor.
    #[inline]
    pub fn note(&mut self, word: u64, in_lost: bool) {
        for half in [word as u32, (word >> 32) as u32] {
            if half < self.limit && bit(&self.open, half) {
                set(if in_lost { &mut self.lost } else { &mut self.live }, half);
            }
        }
    }

    /// Descriptors found in a lost block and in no reachable or possibly reachable one.
    pub fn owned_by_lost(&self) -> Vec<i32> {
        (0..self.limit).filter(|&n| bit(&self.lost, n) && !bit(&self.live, n)).map(|n| n as i32).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_number_only_in_lost_blocks_is_owned_by_them() {
        let mut w = FdWatch::new(&[3, 7, 9, -1]);
        w.note(7, true);
        w.note(9u64 << 32, true);
        w.note(9, false);
        w.note(3 << 32 | 5, false);
        w.note(1 << 40, true);
        assert_eq!(w.owned_by_lost(), vec![7]);
        let mut none = FdWatch::new(&[]);
        none.note(0, true);
        assert!(none.owned_by_lost().is_empty());
    }
}
