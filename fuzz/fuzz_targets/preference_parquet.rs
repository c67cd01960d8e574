#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| rmlab_fuzz::preference_parquet(data));
