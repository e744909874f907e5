#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tcptracer_fuzz::targets::btf_parse(data));
