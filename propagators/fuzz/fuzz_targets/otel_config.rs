//! Arbitrary values for every `OTEL_*` (and `BATON_*`) variable Baton reads: reading the
//! configuration never panics (a bad value is a warning and the default),
//! and printing it never shows a header value.

#![no_main]

use std::collections::HashMap;

use baton_exporters::Config;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    // One value per input line, in the order of every variable Baton reads.
    let vars: HashMap<&str, String> = Config::VARIABLES
        .iter()
        .copied()
        .zip(text.split('\n').map(str::to_owned))
        .collect();
    let config = Config::from_vars(|name| vars.get(name).cloned());
    let _ = config.propagator();
    let shown = config.to_string();
    for name in [
        "OTEL_EXPORTER_OTLP_HEADERS",
        "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
    ] {
        let Some(headers) = vars.get(name) else {
            continue;
        };
        for value in headers.split(',').filter_map(|pair| pair.split_once('=')) {
            let value = value.1.trim();
            // Only values that no other variable's text contains (which
            // printing may show) and long enough not to appear by chance.
            let elsewhere = vars
                .iter()
                .any(|(other, v)| other != &name && v.contains(value));
            if value.len() >= 12 && !elsewhere && value.bytes().all(|b| b.is_ascii_alphanumeric()) {
                assert!(!shown.contains(value), "{name} value shown: {shown}");
            }
        }
    }
});
