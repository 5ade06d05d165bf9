#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sockdiag_exporter_fuzz::proc_net_snmp(data));
