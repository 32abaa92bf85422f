//! leaktrace's kernel side: syscall tracepoints for descriptors, uprobes on the
//! allocator for heap, process lifecycle tracepoints. Every record goes to one
//! ring buffer; nothing from an untraced process reaches userspace.
#![no_std]
#![no_main]

mod capture;
mod handles;
mod heap;
mod maps;
mod process;

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";
