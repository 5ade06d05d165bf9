#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sockdiag_exporter_fuzz::docker_config(data));
