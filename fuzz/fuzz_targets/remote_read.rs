//! `cargo fuzz run remote_read`: see [`fleetscope_fuzz::remote_read`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| fleetscope_fuzz::remote_read(data));
