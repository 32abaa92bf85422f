use super::*;

fn block(stack: u32, size: u64) -> Allocation {
    Allocation { size, stack: StackId(stack), ts: 1 }
}

fn addrs(v: &ProcHeap) -> Vec<u64> {
    let mut a: Vec<u64> = v.iter().map(|(addr, _)| addr).collect();
    a.sort_unstable();
    a
}

fn base_of(v: &ProcHeap) -> *const Frozen {
    v.base.as_ref().map_or(std::ptr::null(), Arc::as_ptr)
}

#[test]
fn a_child_holds_its_parents_blocks_and_each_side_frees_its_own() {
    let mut parent = ProcHeap::default();
    for (i, addr) in [0x1000, 0x2000, 0x3000].into_iter().enumerate() {
        assert_eq!(parent.insert(addr, block(i as u32 % 2, 16 << i)), None);
    }
    let mut child = parent.fork();
    assert_eq!(addrs(&child), vec![0x1000, 0x2000, 0x3000]);
    assert_eq!(child.totals(), (112, 3));
    assert_eq!(parent.remove(0x1000), Some(block(0, 16)));
    assert_eq!(child.get(0x1000), Some(block(0, 16)), "the parent's free is not the child's");
    assert_eq!(child.remove(0x2000), Some(block(1, 32)));
    assert_eq!(child.remove(0x2000), None, "freed once");
    assert_eq!(parent.get(0x2000), Some(block(1, 32)), "nor the child's the parent's");
    assert_eq!(child.insert(0x3000, block(5, 8)), Some(block(0, 64)), "an address handed out again in the child: its free was missed");
    assert_eq!(parent.get(0x3000), Some(block(0, 64)));
    assert_eq!(child.insert(0x4000, block(5, 8)), None);
    assert_eq!(addrs(&child), vec![0x1000, 0x3000, 0x4000]);
    assert_eq!(child.totals(), (32, 3));
    assert_eq!(addrs(&parent), vec![0x2000, 0x3000]);
    assert_eq!(parent.totals(), (96, 2));
    assert_eq!(child.per_stack(), StackTotals::from([(StackId(0), (1, 16)), (StackId(5), (2, 16))]));
    assert_eq!(parent.per_stack(), StackTotals::from([(StackId(0), (1, 64)), (StackId(1), (1, 32))]));
}

#[test]
fn children_share_one_frozen_table_and_a_lone_holder_changes_it_in_place() {
    let mut parent = ProcHeap::default();
    for i in 0..100u64 {
        parent.insert(0x10_0000 + i * 16, block(1, 16));
    }
    let first = parent.fork();
    let frozen = base_of(&first);
    assert_eq!(base_of(&parent), frozen);
    // A few changes between forks: the table stays shared, the changes are copied.
    parent.insert(0x20_0000, block(2, 8));
    parent.remove(0x10_0000);
    let second = parent.fork();
    assert_eq!((base_of(&second), second.added.len(), second.removed.len()), (frozen, 1, 1));
    assert_eq!(second.totals(), (100 * 16 - 16 + 8, 100));
    // Many changes: frozen anew, the old table kept by the children that hold it.
    for i in 0..20u64 {
        parent.insert(0x30_0000 + i * 16, block(3, 8));
    }
    let third = parent.fork();
    assert_ne!(base_of(&third), frozen);
    assert!(third.added.is_empty() && third.removed.is_empty());
    assert_eq!(addrs(&third), addrs(&parent));
    assert_eq!(first.totals(), (1600, 100), "an older child keeps what it was given");
    assert_eq!(addrs(&first).len(), 100);
    // Once its children are gone the parent alone holds its table: changes go into it.
    drop((first, second, third));
    let held = base_of(&parent);
    parent.remove(0x30_0000);
    let fourth = parent.fork();
    assert_eq!(base_of(&fourth), held, "changed in place, not copied");
    assert!(parent.added.is_empty() && parent.removed.is_empty());
    assert_eq!(fourth.get(0x30_0000), None);
    assert_eq!(fourth.per_stack()[&StackId(3)], (19, 152));
}

#[test]
fn each_held_walks_a_shared_table_once_and_skips_what_every_holder_freed() {
    let mut parent = ProcHeap::default();
    parent.insert(0x1000, block(1, 16));
    parent.insert(0x2000, block(2, 16));
    let mut child = parent.fork();
    child.insert(0x3000, block(3, 16));
    parent.remove(0x2000);
    child.remove(0x2000);
    child.remove(0x1000);
    let mut seen = Vec::new();
    each_held(&[&parent, &child], |a| seen.push(a.stack.0));
    seen.sort_unstable();
    assert_eq!(seen, vec![1, 3], "0x1000 once (the parent holds it), 0x2000 freed by both");
    let mut alone = Vec::new();
    each_held(&[&child], |a| alone.push(a.stack.0));
    assert_eq!(alone, vec![3]);
}
