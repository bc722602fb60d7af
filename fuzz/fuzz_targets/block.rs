//! `cargo fuzz run block`: see [`fleetscope_fuzz::block`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| fleetscope_fuzz::block(data));
