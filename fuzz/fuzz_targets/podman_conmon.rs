#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sockdiag_exporter_fuzz::podman_conmon(data));
