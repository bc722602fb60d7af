//! `cargo fuzz run remote_write`: see [`fleetscope_fuzz::remote_write`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| fleetscope_fuzz::remote_write(data));
