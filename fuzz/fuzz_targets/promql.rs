//! `cargo fuzz run promql`: see [`fleetscope_fuzz::promql`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| fleetscope_fuzz::promql(data));
