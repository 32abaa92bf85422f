//! Ring-buffer records: any bytes decode to an event or an error, never a
//! panic, and a decoded stack never exceeds what a record can hold.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tracer_common::decode::Event;
use tracer_common::{MAX_FRAMES, STACK_COPY_WORDS};

fuzz_target!(|data: &[u8]| {
    if let Ok(event) = Event::try_from(data) {
        if let Some(stack) = event.stack {
            assert!(stack.frames.len() <= MAX_FRAMES);
            assert!(stack.copy.len() <= STACK_COPY_WORDS);
        }
    }
});
