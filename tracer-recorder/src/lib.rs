//! leaktrace's in-process heap recorder.
//!
//! A library leaktrace preloads into the command it runs (`LD_PRELOAD`), or
//! loads into a running process and redirects the malloc family to through
//! each module's GOT. Its allocator entry points call the allocator that
//! would have served the call and write the same records the eBPF allocator
//! probes write, with the same stacks, into a ring leaktrace reads (see
//! `tracer_common::inprocess`): no trap per call.
//!
//! What it must never do: allocate (it is the allocator's caller), take a
//! lock a signal or a fork could leave held, fault on a bad frame, or change
//! what the program sees — but for the bytes of a new block the program has
//! not written yet, which read as zeros (malloc may hand out any bytes; see
//! `entry.rs`). Every failure makes it inert: the program runs on,
//! untraced, and leaktrace's report says so.

#![no_std]

mod connect;
mod emit;
mod entry;
mod env;
mod got;
mod init;
mod modules;
mod real;
mod thread;
mod walk;

/// A static the recorder's own code synchronises by hand (atomics beside it
/// say who may touch it when): no `static mut` references.
struct Global<T>(core::cell::UnsafeCell<T>);

// SAFETY: each user documents how its accesses are ordered.
unsafe impl<T> Sync for Global<T> {}

impl<T> Global<T> {
    const fn new(v: T) -> Self {
        Self(core::cell::UnsafeCell::new(v))
    }

    fn get(&self) -> *mut T {
        self.0.get()
    }
}

/// Nothing in the recorder panics on purpose; if it did, unwinding out of an
/// allocator call would be worse than stopping the program.
#[cfg(not(test))]
#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    // SAFETY: no preconditions.
    unsafe { libc::abort() }
}

// The prebuilt `core` names the unwinder's personality routine in its
// unwind tables; nothing here unwinds (panic = abort), so it is never
// called. Hidden: it resolves the library's own references and is not
// exported, so it can never stand in for a Rust program's own.
#[cfg(not(test))]
core::arch::global_asm!(".globl rust_eh_personality", ".hidden rust_eh_personality", "rust_eh_personality:", "ud2");
