//! The environment-variable configuration: one table per variable family.
#![allow(clippy::unwrap_used, reason = "tests")]

use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use baton_exporters::config::{Batch, Compression, Config, ExporterKind, Protocol, Sampler};
use opentelemetry::propagation::TextMapPropagator;
use proptest::prelude::*;

fn load(vars: &[(&str, &str)]) -> Config {
    let map: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    Config::from_vars(move |name| map.get(name).cloned())
}

/// The variables the warnings name, in order.
fn warned(config: &Config) -> Vec<&'static str> {
    config.warnings.iter().map(|w| w.variable).collect()
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

#[test]
fn every_listed_variable_is_read_and_nothing_else() {
    let asked = RefCell::new(BTreeSet::new());
    let _ = Config::from_vars(|name| {
        asked.borrow_mut().insert(name.to_owned());
        None
    });
    let listed: BTreeSet<String> = Config::VARIABLES.iter().map(|v| (*v).to_owned()).collect();
    assert_eq!(asked.into_inner(), listed);
}

#[test]
fn defaults() {
    let config = load(&[]);
    assert_eq!(config, Config::default());
    assert!(config.warnings.is_empty());
    assert!(!config.sdk_disabled);
    assert_eq!(config.resource.service_name(), None);
    assert!(config.resource.attributes.is_empty());
    assert_eq!(config.propagators, "tracecontext,baggage");
    assert_eq!(config.sampler, Sampler::ParentBasedAlwaysOn);
    for exporters in [
        &config.exporters.traces,
        &config.exporters.metrics,
        &config.exporters.logs,
    ] {
        assert_eq!(exporters, &[ExporterKind::Otlp]);
    }
    assert_eq!(
        config.otlp.traces.endpoint,
        "http://localhost:4318/v1/traces"
    );
    assert_eq!(
        config.otlp.metrics.endpoint,
        "http://localhost:4318/v1/metrics"
    );
    assert_eq!(config.otlp.logs.endpoint, "http://localhost:4318/v1/logs");
    assert_eq!(config.otlp.traces.protocol, Protocol::HttpProtobuf);
    assert!(config.otlp.traces.headers.is_empty());
    assert_eq!(config.otlp.traces.timeout, ms(10_000));
    assert_eq!(config.otlp.traces.compression, Compression::None);
    assert_eq!(config.bsp.schedule_delay, ms(5_000));
    assert_eq!(config.bsp.export_timeout, ms(30_000));
    assert_eq!(config.bsp.max_queue_size, 65_536);
    assert_eq!(config.bsp.max_export_batch_size, 512);
    // The log record processor's own defaults: exports every second.
    assert_eq!(config.blrp.schedule_delay, ms(1_000));
    assert_eq!(config.blrp.export_timeout, ms(30_000));
    assert_eq!(config.blrp.max_queue_size, 65_536);
    assert_eq!(config.blrp.max_export_batch_size, 512);
    assert_eq!(config.metric_export.interval, ms(60_000));
    assert_eq!(config.metric_export.timeout, ms(30_000));
}

#[test]
fn empty_and_blank_values_mean_unset() {
    let blank: Vec<(&str, &str)> = Config::VARIABLES
        .iter()
        .zip(["", "  ", "\t"].iter().cycle())
        .map(|(k, v)| (*k, *v))
        .collect();
    assert_eq!(load(&blank), Config::default());
}

#[test]
fn sdk_disabled() {
    const V: &str = "OTEL_SDK_DISABLED";
    // (value, disabled, warns)
    let rows = [
        ("true", true, false),
        ("TRUE", true, false),
        ("True", true, false),
        (" true ", true, false),
        ("false", false, false),
        ("FALSE", false, false),
        ("1", false, true),
        ("yes", false, true),
        ("on", false, true),
        ("truee", false, true),
    ];
    for (value, disabled, warns) in rows {
        let config = load(&[(V, value)]);
        assert_eq!(config.sdk_disabled, disabled, "{value:?}");
        let want: &[&str] = if warns { &[V] } else { &[] };
        assert_eq!(warned(&config), want, "{value:?}");
    }
}

#[test]
fn resource() {
    const NAME: &str = "OTEL_SERVICE_NAME";
    const ATTRS: &str = "OTEL_RESOURCE_ATTRIBUTES";
    // (vars, service name, attributes, warns)
    type Row<'a> = (
        &'a [(&'a str, &'a str)],
        Option<&'a str>,
        &'a [(&'a str, &'a str)],
        bool,
    );
    let rows: [Row<'_>; 11] = [
        (&[(NAME, "checkout")], Some("checkout"), &[], false),
        (
            &[(ATTRS, "a=1,b=2")],
            None,
            &[("a", "1"), ("b", "2")],
            false,
        ),
        (
            &[(ATTRS, " a = 1 , b=2 ,")],
            None,
            &[("a", "1"), ("b", "2")],
            false,
        ),
        (
            &[(ATTRS, "k=a%2Cb%3Dc%20d,%6B2=v")],
            None,
            &[("k", "a,b=c d"), ("k2", "v")],
            false,
        ),
        (&[(ATTRS, "a=1,a=2")], None, &[("a", "2")], false),
        (
            &[(ATTRS, "service.name=attr")],
            Some("attr"),
            &[("service.name", "attr")],
            false,
        ),
        (
            &[(NAME, "env"), (ATTRS, "service.name=attr")],
            Some("env"),
            &[("service.name", "attr")],
            false,
        ),
        // Any bad entry discards the whole value, as the specification says.
        (&[(ATTRS, "a=1,b")], None, &[], true),
        (&[(ATTRS, "a=1,=2")], None, &[], true),
        (&[(ATTRS, "a=100%")], None, &[], true),
        (&[(ATTRS, "a=%FF")], None, &[], true),
    ];
    for (vars, service_name, attributes, warns) in rows {
        let config = load(vars);
        assert_eq!(config.resource.service_name(), service_name, "{vars:?}");
        let got: Vec<(&str, &str)> = config
            .resource
            .attributes
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(got, attributes, "{vars:?}");
        let want: &[&str] = if warns { &[ATTRS] } else { &[] };
        assert_eq!(warned(&config), want, "{vars:?}");
    }
}

#[test]
fn resource_converts_with_service_name_precedence() {
    use opentelemetry::{Key, Value};
    let get = |config: &Config, key: &'static str| {
        opentelemetry_sdk::Resource::from(&config.resource).get(&Key::from_static_str(key))
    };
    let config = load(&[
        ("OTEL_SERVICE_NAME", "env"),
        ("OTEL_RESOURCE_ATTRIBUTES", "service.name=attr,team=core"),
    ]);
    assert_eq!(get(&config, "service.name"), Some(Value::from("env")));
    assert_eq!(get(&config, "team"), Some(Value::from("core")));
    assert_eq!(
        get(&config, "telemetry.sdk.language"),
        Some(Value::from("rust"))
    );

    let config = load(&[("OTEL_RESOURCE_ATTRIBUTES", "service.name=attr")]);
    assert_eq!(get(&config, "service.name"), Some(Value::from("attr")));

    let unnamed = get(&load(&[]), "service.name").unwrap().to_string();
    assert!(unnamed.starts_with("unknown_service"), "{unnamed}");
}

#[test]
fn propagators() {
    const V: &str = "OTEL_PROPAGATORS";
    // (value, fields, warnings)
    let rows: [(&str, &[&str], usize); 6] = [
        (
            "tracecontext,baggage",
            &["traceparent", "tracestate", "baggage"],
            0,
        ),
        ("b3", &["b3"], 0),
        (" Jaeger ", &["uber-trace-id"], 0),
        ("none", &[], 0),
        ("tracecontext,bogus", &["traceparent", "tracestate"], 1),
        ("xray", &[], 1),
    ];
    for (value, fields, warnings) in rows {
        let config = load(&[(V, value)]);
        let got: Vec<String> = config.propagator().fields().map(str::to_owned).collect();
        assert_eq!(got, fields, "{value:?}");
        assert_eq!(warned(&config), vec![V; warnings], "{value:?}");
    }
}

#[test]
fn sampler() {
    const S: &str = "OTEL_TRACES_SAMPLER";
    const A: &str = "OTEL_TRACES_SAMPLER_ARG";
    // (sampler, arg, expected, warned variable)
    let rows = [
        ("always_on", "", Sampler::AlwaysOn, None),
        ("ALWAYS_OFF", "", Sampler::AlwaysOff, None),
        ("traceidratio", "0.25", Sampler::TraceIdRatio(0.25), None),
        ("traceidratio", "", Sampler::TraceIdRatio(1.0), None),
        ("traceidratio", "0", Sampler::TraceIdRatio(0.0), None),
        ("traceidratio", "1", Sampler::TraceIdRatio(1.0), None),
        (
            "parentbased_always_on",
            "",
            Sampler::ParentBasedAlwaysOn,
            None,
        ),
        (
            "parentbased_always_off",
            "",
            Sampler::ParentBasedAlwaysOff,
            None,
        ),
        (
            "parentbased_traceidratio",
            "0.5",
            Sampler::ParentBasedTraceIdRatio(0.5),
            None,
        ),
        ("traceidratio", "1.5", Sampler::TraceIdRatio(1.0), Some(A)),
        ("traceidratio", "-0.1", Sampler::TraceIdRatio(1.0), Some(A)),
        ("traceidratio", "half", Sampler::TraceIdRatio(1.0), Some(A)),
        ("traceidratio", "NaN", Sampler::TraceIdRatio(1.0), Some(A)),
        (
            "parentbased_traceidratio",
            "inf",
            Sampler::ParentBasedTraceIdRatio(1.0),
            Some(A),
        ),
        ("always_on", "0.5", Sampler::AlwaysOn, Some(A)),
        ("", "0.5", Sampler::ParentBasedAlwaysOn, Some(A)),
        ("sometimes", "", Sampler::ParentBasedAlwaysOn, Some(S)),
        ("sometimes", "0.5", Sampler::ParentBasedAlwaysOn, Some(S)),
        ("jaeger_remote", "", Sampler::ParentBasedAlwaysOn, Some(S)),
        ("xray", "", Sampler::ParentBasedAlwaysOn, Some(S)),
    ];
    for (sampler, arg, expected, warning) in rows {
        let config = load(&[(S, sampler), (A, arg)]);
        assert_eq!(config.sampler, expected, "{sampler:?} {arg:?}");
        assert_eq!(
            warned(&config),
            Vec::from_iter(warning),
            "{sampler:?} {arg:?}"
        );
    }
}

#[test]
fn sampler_converts() {
    use opentelemetry_sdk::trace::Sampler as Sdk;
    let rows = [
        (Sampler::AlwaysOn, Sdk::AlwaysOn),
        (Sampler::AlwaysOff, Sdk::AlwaysOff),
        (Sampler::TraceIdRatio(0.5), Sdk::TraceIdRatioBased(0.5)),
        (
            Sampler::ParentBasedAlwaysOn,
            Sdk::ParentBased(Box::new(Sdk::AlwaysOn)),
        ),
        (
            Sampler::ParentBasedAlwaysOff,
            Sdk::ParentBased(Box::new(Sdk::AlwaysOff)),
        ),
        (
            Sampler::ParentBasedTraceIdRatio(0.5),
            Sdk::ParentBased(Box::new(Sdk::TraceIdRatioBased(0.5))),
        ),
    ];
    for (ours, sdk) in rows {
        assert_eq!(format!("{:?}", Sdk::from(&ours)), format!("{sdk:?}"));
    }
}

#[test]
fn exporters() {
    use ExporterKind::{Console, Otlp};
    // (value, exporters, warnings)
    let rows: [(&str, &[ExporterKind], usize); 10] = [
        ("otlp", &[Otlp], 0),
        ("console", &[Console], 0),
        ("Console", &[Console], 0),
        ("otlp, console", &[Otlp, Console], 0),
        ("console,otlp,console", &[Console, Otlp], 0),
        ("none", &[], 0),
        ("none,otlp", &[], 1),
        ("zipkin", &[Otlp], 1),
        ("console,zipkin", &[Console], 1),
        (",", &[Otlp], 0),
    ];
    for variable in [
        "OTEL_TRACES_EXPORTER",
        "OTEL_METRICS_EXPORTER",
        "OTEL_LOGS_EXPORTER",
    ] {
        for (value, want, warnings) in rows {
            let config = load(&[(variable, value)]);
            let e = &config.exporters;
            let (this, others): (&Vec<_>, [&Vec<_>; 2]) = match variable {
                "OTEL_TRACES_EXPORTER" => (&e.traces, [&e.metrics, &e.logs]),
                "OTEL_METRICS_EXPORTER" => (&e.metrics, [&e.traces, &e.logs]),
                _ => (&e.logs, [&e.traces, &e.metrics]),
            };
            assert_eq!(this, want, "{variable}={value:?}");
            assert!(
                others.iter().all(|o| **o == [Otlp]),
                "{variable}: per signal"
            );
            assert_eq!(
                warned(&config),
                vec![variable; warnings],
                "{variable}={value:?}"
            );
        }
    }
}

#[test]
fn otlp_endpoint_and_protocol() {
    const E: &str = "OTEL_EXPORTER_OTLP_ENDPOINT";
    const P: &str = "OTEL_EXPORTER_OTLP_PROTOCOL";
    const TE: &str = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT";
    const TP: &str = "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL";
    const ME: &str = "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT";
    const LP: &str = "OTEL_EXPORTER_OTLP_LOGS_PROTOCOL";
    use Protocol::{Grpc, HttpProtobuf as Http};
    // (vars, traces, metrics, logs, warned)
    type Row<'a> = (
        &'a [(&'a str, &'a str)],
        (&'a str, Protocol),
        (&'a str, Protocol),
        (&'a str, Protocol),
        &'a [&'a str],
    );
    let rows: [Row<'_>; 15] = [
        (
            &[(E, "http://c:4318/base/?q=1#f")],
            ("http://c:4318/base/v1/traces", Http),
            ("http://c:4318/base/v1/metrics", Http),
            ("http://c:4318/base/v1/logs", Http),
            &[],
        ),
        (
            &[(E, "http://c:4318")],
            ("http://c:4318/v1/traces", Http),
            ("http://c:4318/v1/metrics", Http),
            ("http://c:4318/v1/logs", Http),
            &[],
        ),
        (
            &[(E, "https://c/otlp/")],
            ("https://c/otlp/v1/traces", Http),
            ("https://c/otlp/v1/metrics", Http),
            ("https://c/otlp/v1/logs", Http),
            &[],
        ),
        (
            &[(P, "grpc")],
            ("http://localhost:4317", Grpc),
            ("http://localhost:4317", Grpc),
            ("http://localhost:4317", Grpc),
            &[],
        ),
        (
            &[(P, "GRPC"), (E, "https://c:4317/")],
            ("https://c:4317/", Grpc),
            ("https://c:4317/", Grpc),
            ("https://c:4317/", Grpc),
            &[],
        ),
        (
            &[
                (E, "http://c:4318"),
                (TE, "http://t:9/custom"),
                (ME, "http://m:9"),
            ],
            ("http://t:9/custom", Http),
            ("http://m:9", Http),
            ("http://c:4318/v1/logs", Http),
            &[],
        ),
        (
            &[(P, "grpc"), (TP, "http/protobuf"), (E, "http://c:1")],
            ("http://c:1/v1/traces", Http),
            ("http://c:1", Grpc),
            ("http://c:1", Grpc),
            &[],
        ),
        (
            &[(LP, "grpc")],
            ("http://localhost:4318/v1/traces", Http),
            ("http://localhost:4318/v1/metrics", Http),
            ("http://localhost:4317", Grpc),
            &[],
        ),
        (
            &[(E, "localhost:4318")],
            ("http://localhost:4318/v1/traces", Http),
            ("http://localhost:4318/v1/metrics", Http),
            ("http://localhost:4318/v1/logs", Http),
            &[E],
        ),
        (
            &[(E, "ftp://c")],
            ("http://localhost:4318/v1/traces", Http),
            ("http://localhost:4318/v1/metrics", Http),
            ("http://localhost:4318/v1/logs", Http),
            &[E],
        ),
        (
            &[(E, "http://")],
            ("http://localhost:4318/v1/traces", Http),
            ("http://localhost:4318/v1/metrics", Http),
            ("http://localhost:4318/v1/logs", Http),
            &[E],
        ),
        (
            &[(E, "http://c"), (TE, "not a url")],
            ("http://c/v1/traces", Http),
            ("http://c/v1/metrics", Http),
            ("http://c/v1/logs", Http),
            &[TE],
        ),
        (
            &[(P, "http/json")],
            ("http://localhost:4318/v1/traces", Http),
            ("http://localhost:4318/v1/metrics", Http),
            ("http://localhost:4318/v1/logs", Http),
            &[P],
        ),
        (
            &[(P, "grpc"), (TP, "udp")],
            ("http://localhost:4317", Grpc),
            ("http://localhost:4317", Grpc),
            ("http://localhost:4317", Grpc),
            &[TP],
        ),
        (
            &[(P, "HTTP/PROTOBUF")],
            ("http://localhost:4318/v1/traces", Http),
            ("http://localhost:4318/v1/metrics", Http),
            ("http://localhost:4318/v1/logs", Http),
            &[],
        ),
    ];
    for (vars, traces, metrics, logs, warnings) in rows {
        let config = load(vars);
        let o = &config.otlp;
        assert_eq!(
            (o.traces.endpoint.as_str(), o.traces.protocol),
            traces,
            "{vars:?}"
        );
        assert_eq!(
            (o.metrics.endpoint.as_str(), o.metrics.protocol),
            metrics,
            "{vars:?}"
        );
        assert_eq!(
            (o.logs.endpoint.as_str(), o.logs.protocol),
            logs,
            "{vars:?}"
        );
        assert_eq!(warned(&config), warnings, "{vars:?}");
    }
}

#[test]
fn otlp_headers() {
    const H: &str = "OTEL_EXPORTER_OTLP_HEADERS";
    const TH: &str = "OTEL_EXPORTER_OTLP_TRACES_HEADERS";
    const MH: &str = "OTEL_EXPORTER_OTLP_METRICS_HEADERS";
    const LH: &str = "OTEL_EXPORTER_OTLP_LOGS_HEADERS";
    // (vars, traces headers, metrics headers, warned)
    type Row<'a> = (
        &'a [(&'a str, &'a str)],
        &'a [(&'a str, &'a str)],
        &'a [(&'a str, &'a str)],
        &'a [&'a str],
    );
    let rows: [Row<'_>; 10] = [
        (
            &[(H, "a=1,b=2")],
            &[("a", "1"), ("b", "2")],
            &[("a", "1"), ("b", "2")],
            &[],
        ),
        (
            &[(H, "Api-Key=x%20y, authorization = Basic dXNlcjpwYXNz==")],
            &[
                ("api-key", "x y"),
                ("authorization", "Basic dXNlcjpwYXNz=="),
            ],
            &[
                ("api-key", "x y"),
                ("authorization", "Basic dXNlcjpwYXNz=="),
            ],
            &[],
        ),
        // A per-signal list replaces the generic one, it is not merged.
        (
            &[(H, "a=1"), (TH, "t=2")],
            &[("t", "2")],
            &[("a", "1")],
            &[],
        ),
        (&[(MH, "m=3")], &[], &[("m", "3")], &[]),
        (&[(H, "a=1,bad")], &[("a", "1")], &[("a", "1")], &[H]),
        (&[(H, "a b=1,c=2")], &[("c", "2")], &[("c", "2")], &[H]),
        (&[(H, "a=%0A,c=2")], &[("c", "2")], &[("c", "2")], &[H]),
        (&[(H, "a=%zz")], &[], &[], &[H]),
        // Nothing usable in the per-signal list: the generic one applies.
        (
            &[(H, "a=1"), (TH, "oops")],
            &[("a", "1")],
            &[("a", "1")],
            &[TH],
        ),
        (&[(LH, "=1")], &[], &[], &[LH]),
    ];
    for (vars, traces, metrics, warnings) in rows {
        let config = load(vars);
        let t: Vec<_> = config.otlp.traces.headers.iter().collect();
        let m: Vec<_> = config.otlp.metrics.headers.iter().collect();
        assert_eq!(t, traces, "{vars:?}");
        assert_eq!(m, metrics, "{vars:?}");
        assert_eq!(warned(&config), warnings, "{vars:?}");
    }
}

#[test]
fn otlp_header_warnings_are_redacted() {
    let config = load(&[(
        "OTEL_EXPORTER_OTLP_HEADERS",
        "api-key=s3cr3t,Authorization: Bearer t0ken=",
    )]);
    assert_eq!(config.warnings.len(), 1);
    assert_eq!(config.warnings[0].value, "api-key=***,***");
    let text = config.to_string();
    assert!(
        !text.contains("s3cr3t") && !text.contains("t0ken"),
        "{text}"
    );
}

#[test]
fn otlp_timeout_and_compression() {
    const T: &str = "OTEL_EXPORTER_OTLP_TIMEOUT";
    const TT: &str = "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT";
    const C: &str = "OTEL_EXPORTER_OTLP_COMPRESSION";
    const LC: &str = "OTEL_EXPORTER_OTLP_LOGS_COMPRESSION";
    const MC: &str = "OTEL_EXPORTER_OTLP_METRICS_COMPRESSION";
    use Compression::{Gzip, None as Plain};
    // (vars, (traces, metrics) timeout ms, (traces, metrics, logs) compression, warned)
    type Row<'a> = (
        &'a [(&'a str, &'a str)],
        (u64, u64),
        (Compression, Compression, Compression),
        &'a [&'a str],
    );
    let rows: [Row<'_>; 13] = [
        (&[(T, "2500")], (2500, 2500), (Plain, Plain, Plain), &[]),
        (
            &[(T, "2500"), (TT, "100")],
            (100, 2500),
            (Plain, Plain, Plain),
            &[],
        ),
        (&[(TT, "100")], (100, 10_000), (Plain, Plain, Plain), &[]),
        (
            &[(T, "2147483647")],
            (2_147_483_647, 2_147_483_647),
            (Plain, Plain, Plain),
            &[],
        ),
        (&[(T, "10s")], (10_000, 10_000), (Plain, Plain, Plain), &[T]),
        (&[(T, "-1")], (10_000, 10_000), (Plain, Plain, Plain), &[T]),
        (&[(T, "0")], (10_000, 10_000), (Plain, Plain, Plain), &[T]),
        (&[(T, "1.5")], (10_000, 10_000), (Plain, Plain, Plain), &[T]),
        (
            &[(T, "2147483648")],
            (10_000, 10_000),
            (Plain, Plain, Plain),
            &[T],
        ),
        (
            &[(T, "7"), (TT, "+5")],
            (7, 7),
            (Plain, Plain, Plain),
            &[TT],
        ),
        (&[(C, "GZIP")], (10_000, 10_000), (Gzip, Gzip, Gzip), &[]),
        (
            &[(C, "gzip"), (LC, "none")],
            (10_000, 10_000),
            (Gzip, Gzip, Plain),
            &[],
        ),
        (
            &[(C, "gzip"), (MC, "zstd")],
            (10_000, 10_000),
            (Gzip, Gzip, Gzip),
            &[MC],
        ),
    ];
    for (vars, (traces_ms, metrics_ms), compression, warnings) in rows {
        let config = load(vars);
        let o = &config.otlp;
        assert_eq!(
            (o.traces.timeout, o.metrics.timeout),
            (ms(traces_ms), ms(metrics_ms)),
            "{vars:?}"
        );
        assert_eq!(o.logs.timeout, o.metrics.timeout, "{vars:?}");
        assert_eq!(
            (
                o.traces.compression,
                o.metrics.compression,
                o.logs.compression
            ),
            compression,
            "{vars:?}"
        );
        assert_eq!(warned(&config), warnings, "{vars:?}");
    }
}

/// The settings of one batch processor as read, as (delay ms, timeout ms,
/// queue, batch).
fn batch(config: &Config, pick: fn(&Config) -> Batch) -> (Duration, Duration, usize, usize) {
    let b = pick(config);
    (
        b.schedule_delay,
        b.export_timeout,
        b.max_queue_size,
        b.max_export_batch_size,
    )
}

/// The same table for `OTEL_BSP_*` and `OTEL_BLRP_*`: the two are read by
/// one function, with their own names and defaults, and neither reads the
/// other's variables.
#[test]
fn batch_processors() {
    // (prefix, its processor, the other, default delay ms)
    type Processor = (
        &'static str,
        fn(&Config) -> Batch,
        fn(&Config) -> Batch,
        u64,
    );
    let processors: [Processor; 2] = [
        ("OTEL_BSP_", |c| c.bsp, |c| c.blrp, 5000),
        ("OTEL_BLRP_", |c| c.blrp, |c| c.bsp, 1000),
    ];
    // (vars by suffix, (delay ms or None for the default, timeout ms, queue,
    // batch), suffixes warned)
    type Row<'a> = (
        &'a [(&'a str, &'a str)],
        (Option<u64>, u64, usize, usize),
        &'a [&'a str],
    );
    const D: &str = "SCHEDULE_DELAY";
    const T: &str = "EXPORT_TIMEOUT";
    const Q: &str = "MAX_QUEUE_SIZE";
    const B: &str = "MAX_EXPORT_BATCH_SIZE";
    let rows: [Row<'_>; 12] = [
        (
            &[(D, "100"), (T, "200")],
            (Some(100), 200, 65_536, 512),
            &[],
        ),
        (&[(Q, "4096"), (B, "1024")], (None, 30_000, 4096, 1024), &[]),
        (&[(Q, "100"), (B, "100")], (None, 30_000, 100, 100), &[]),
        // The default batch size yields to a small queue without a warning.
        (&[(Q, "100")], (None, 30_000, 100, 100), &[]),
        (&[(Q, "100"), (B, "200")], (None, 30_000, 100, 100), &[B]),
        (&[(B, "100000")], (None, 30_000, 65_536, 65_536), &[B]),
        (&[(D, "5s")], (None, 30_000, 65_536, 512), &[D]),
        (&[(D, "0")], (None, 30_000, 65_536, 512), &[D]),
        (&[(T, "-30000")], (None, 30_000, 65_536, 512), &[T]),
        (&[(Q, "lots")], (None, 30_000, 65_536, 512), &[Q]),
        (&[(Q, "0")], (None, 30_000, 65_536, 512), &[Q]),
        (&[(B, "1e3")], (None, 30_000, 65_536, 512), &[B]),
    ];
    for (prefix, this, other, default_delay) in processors {
        for (vars, (delay, timeout, queue, batch_size), warnings) in rows {
            let vars: Vec<(String, &str)> = vars
                .iter()
                .map(|&(suffix, value)| (format!("{prefix}{suffix}"), value))
                .collect();
            let borrowed: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (k.as_str(), *v)).collect();
            let config = load(&borrowed);
            assert_eq!(
                batch(&config, this),
                (
                    ms(delay.unwrap_or(default_delay)),
                    ms(timeout),
                    queue,
                    batch_size
                ),
                "{vars:?}"
            );
            let untouched = load(&[]);
            assert_eq!(
                batch(&config, other),
                batch(&untouched, other),
                "{vars:?} changed the other processor"
            );
            let warned_names: Vec<String> =
                warnings.iter().map(|w| format!("{prefix}{w}")).collect();
            assert_eq!(warned(&config), warned_names, "{vars:?}");
        }
    }
}

#[test]
fn metric_export() {
    const I: &str = "OTEL_METRIC_EXPORT_INTERVAL";
    const T: &str = "OTEL_METRIC_EXPORT_TIMEOUT";
    // (vars, (interval ms, timeout ms), warned)
    type Row<'a> = (&'a [(&'a str, &'a str)], (u64, u64), &'a [&'a str]);
    let rows: [Row<'_>; 6] = [
        (&[(I, "15000")], (15_000, 30_000), &[]),
        (&[(T, "1000")], (60_000, 1000), &[]),
        (&[(I, " 1 ")], (1, 30_000), &[]),
        (&[(I, "1m")], (60_000, 30_000), &[I]),
        (&[(I, "0")], (60_000, 30_000), &[I]),
        (&[(T, "-5")], (60_000, 30_000), &[T]),
    ];
    for (vars, (interval, timeout), warnings) in rows {
        let config = load(vars);
        let m = config.metric_export;
        assert_eq!(
            (m.interval, m.timeout),
            (ms(interval), ms(timeout)),
            "{vars:?}"
        );
        assert_eq!(warned(&config), warnings, "{vars:?}");
    }
}

#[test]
fn display_redacts_header_values_only() {
    let config = load(&[
        ("OTEL_SERVICE_NAME", "checkout"),
        ("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=prod"),
        ("OTEL_EXPORTER_OTLP_HEADERS", "api-key=s3cr3t"),
        ("OTEL_EXPORTER_OTLP_LOGS_HEADERS", "x-tenant=acme,bad"),
        ("OTEL_TRACES_EXPORTER", "console"),
        ("OTEL_BSP_MAX_QUEUE_SIZE", "-1"),
    ]);
    let text = config.to_string();
    for wanted in [
        "resource: service.name=checkout, deployment.environment=prod",
        "traces: exporters=console endpoint=http://localhost:4318/v1/traces protocol=http/protobuf headers=[api-key=***] timeout=10000ms compression=none",
        "logs: exporters=otlp endpoint=http://localhost:4318/v1/logs protocol=http/protobuf headers=[x-tenant=***]",
        "bsp: schedule_delay=5000ms export_timeout=30000ms max_queue_size=65536 max_export_batch_size=512",
        "blrp: schedule_delay=1000ms export_timeout=30000ms max_queue_size=65536 max_export_batch_size=512",
        "warning: OTEL_EXPORTER_OTLP_LOGS_HEADERS=\"x-tenant=***,***\": entry 2: no '='; entry dropped",
        "warning: OTEL_BSP_MAX_QUEUE_SIZE=\"-1\": not a positive whole number; ignored",
    ] {
        assert!(text.contains(wanted), "missing {wanted:?} in:\n{text}");
    }
    assert!(!text.contains("s3cr3t") && !text.contains("acme"), "{text}");
    assert!(
        !format!("{config:?}").contains("s3cr3t"),
        "Debug redacts too"
    );
}

#[test]
fn from_env_reads_the_process_environment_without_panicking() {
    let config = Config::from_env();
    assert!(config.bsp.max_export_batch_size <= config.bsp.max_queue_size);
}

/// Values near the grammar of the variables, as well as arbitrary ones.
fn value() -> impl Strategy<Value = Option<String>> {
    proptest::option::of(prop_oneof![
        any::<String>(),
        "[a-zA-Z0-9 =,%:/._+-]{0,24}",
        "(-|\\+)?[0-9]{0,12}(\\.[0-9]{0,3})?",
    ])
}

proptest! {
    #[test]
    fn arbitrary_values_never_panic(values in proptest::collection::vec(value(), Config::VARIABLES.len())) {
        let vars: HashMap<&str, String> = Config::VARIABLES
            .iter()
            .zip(values)
            .filter_map(|(k, v)| Some((*k, v?)))
            .collect();
        let config = Config::from_vars(|name| vars.get(name).cloned());
        prop_assert!(config.warnings.iter().all(|w| Config::VARIABLES.contains(&w.variable)));
        prop_assert!(config.bsp.max_export_batch_size <= config.bsp.max_queue_size);
        let _ = config.to_string();
        let _ = opentelemetry_sdk::Resource::from(&config.resource);
        let _ = opentelemetry_sdk::trace::Sampler::from(&config.sampler);
        let _ = config.propagator();
    }
}

/// The attribute value length limit: the span variable wins over the
/// generic one, 0 is a limit, anything else malformed is warned about and
/// skipped (the other variable or Baton's default of 4096 applies).
#[test]
fn attribute_value_length_limit() {
    const SPAN: &str = "OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT";
    const ANY: &str = "OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT";
    // (vars, limit, warned)
    type Row<'a> = (&'a [(&'a str, &'a str)], usize, &'a [&'a str]);
    let rows: [Row<'_>; 9] = [
        (&[], 4096, &[]),
        (&[(ANY, "100")], 100, &[]),
        (&[(SPAN, "200")], 200, &[]),
        (&[(ANY, "100"), (SPAN, "200")], 200, &[]),
        (&[(ANY, "100"), (SPAN, "0")], 0, &[]),
        (&[(ANY, "1000000")], 1_000_000, &[]),
        (&[(ANY, "100"), (SPAN, "-1")], 100, &[SPAN]),
        (&[(SPAN, "4k")], 4096, &[SPAN]),
        (&[(ANY, "99999999999")], 4096, &[ANY]),
    ];
    for (vars, limit, warnings) in rows {
        let config = load(vars);
        assert_eq!(config.span_limits.attribute_value_length, limit, "{vars:?}");
        assert_eq!(warned(&config), warnings, "{vars:?}");
    }
}

/// Baton's byte bounds of each processor, read like the other sizes, each
/// processor from its own variables.
#[test]
fn queue_and_request_bytes() {
    let defaults = load(&[]);
    for batch in [defaults.bsp, defaults.blrp] {
        assert_eq!(batch.max_queue_bytes, 32 * 1024 * 1024);
        assert_eq!(batch.max_request_bytes, 4 * 1024 * 1024);
    }
    let config = load(&[
        ("BATON_BSP_MAX_QUEUE_BYTES", "1000000"),
        ("BATON_BSP_MAX_REQUEST_BYTES", "65536"),
        ("BATON_BLRP_MAX_QUEUE_BYTES", "2000000"),
        ("BATON_BLRP_MAX_REQUEST_BYTES", "0"),
    ]);
    assert_eq!(config.bsp.max_queue_bytes, 1_000_000);
    assert_eq!(config.bsp.max_request_bytes, 65_536);
    assert_eq!(config.blrp.max_queue_bytes, 2_000_000);
    assert_eq!(
        config.blrp.max_request_bytes,
        4 * 1024 * 1024,
        "0 is refused"
    );
    assert_eq!(warned(&config), ["BATON_BLRP_MAX_REQUEST_BYTES"]);
}
