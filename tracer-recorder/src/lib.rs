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
//! what the program sees. Every failure makes it inert: the program runs on,
//! untraced, and leaktrace's report says so.

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
