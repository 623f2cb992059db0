//! Fuzz the daml front end: arbitrary text must compile or fail cleanly, and optimizing what
//! compiles must not change its result.
#![no_main]

#[path = "common.rs"]
mod common;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        common::exercise(text, ncpc::formats::Format::Daml);
    }
});
