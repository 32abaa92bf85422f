// Rust leaks: a forgotten File (opened through std's 384-byte stack buffer
// for the path), a leaked Box, a forgotten Vec.
use std::fs::File;

#[inline(never)]
fn leak_file() {
    std::mem::forget(File::open("/etc/hostname").expect("/etc/hostname"));
}

#[inline(never)]
fn leak_box() {
    let b: &'static mut [u8; 100] = Box::leak(Box::new([7u8; 100]));
    std::hint::black_box(b);
}

#[inline(never)]
fn leak_vec() {
    let v: Vec<u64> = (0..50).collect();
    std::mem::forget(std::hint::black_box(v));
}

fn main() {
    leak_file();
    leak_box();
    leak_vec();
}
