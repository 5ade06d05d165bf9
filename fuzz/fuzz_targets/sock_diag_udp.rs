#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sockdiag_exporter_fuzz::sock_diag_udp(data));
