// Two functions leak through Rust's allocator (__rust_alloc, alloc::...);
// without --focus each must be its own site, named after it.
#[inline(never)]
fn leak_boxes(n: usize) {
    for i in 0..n {
        std::hint::black_box(Box::leak(Box::new([i as u8; 48])));
    }
}

#[inline(never)]
fn leak_vecs(n: usize) {
    for i in 0..n {
        std::hint::black_box(vec![i as u32; 20].leak());
    }
}

fn main() {
    leak_boxes(3);
    leak_vecs(4);
}
