#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sockdiag_exporter_fuzz::runtime_spec(data));
