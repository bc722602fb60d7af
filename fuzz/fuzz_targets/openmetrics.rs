//! `cargo fuzz run openmetrics`: see [`fleetscope_fuzz::openmetrics`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| fleetscope_fuzz::openmetrics(data));
