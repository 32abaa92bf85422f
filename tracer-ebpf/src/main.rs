//! leaktrace's kernel side: syscall tracepoints for descriptors, uprobes on the
//! allocator for heap and on libuv for handles, process lifecycle
//! tracepoints. Every record goes to one ring buffer; nothing from an untraced process reaches userspace.
//!
//! Built for `bpfel-unknown-none` by tracer-user's build script. On the host
//! (workspace-wide `cargo check`/`clippy`) the same code compiles as an
//! ordinary program with an empty `main`, so it is linted like the rest.
#![cfg_attr(target_arch = "bpf", no_std, no_main)]

mod capture;
mod descriptors;
mod event_loop;
mod heap;
mod loaded;
mod loader_check;
mod maps;
mod process;
mod walk;

#[cfg(target_arch = "bpf")]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";

#[cfg(not(target_arch = "bpf"))]
fn main() {}
