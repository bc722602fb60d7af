//! `cargo fuzz run block`: see [`fleetscope_fuzz::block`].
#![no_main]

libfuzzer_sys::fuzz_target!(
    init: {
        // libFuzzer's panic hook aborts at once, even inside the reader's guard, which turns a
        // panic of Parquet's decoder into this block's error (as the querier runs). Keep the
        // default hook: a panic the guard does not catch still ends the run as a crash.
        let _ = std::panic::take_hook();
    },
    |data: &[u8]| fleetscope_fuzz::block(data)
);
