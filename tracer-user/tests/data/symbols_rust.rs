// A Rust program for the demangling test: prints a function's address, stops.
pub mod module {
    #[inline(never)]
    pub fn function(x: u64) -> u64 {
        x.wrapping_mul(31).rotate_left(7)
    }
}

fn main() {
    println!("function {:p}", module::function as fn(u64) -> u64);
    unsafe { libc_raise(19) };
    std::process::exit(module::function(3) as i32 & 1);
}

extern "C" {
    #[link_name = "raise"]
    fn libc_raise(sig: i32) -> i32;
}
