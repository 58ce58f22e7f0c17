//! Baton's `TraceContextPropagator` against `opentelemetry_sdk`'s, on the same
//! `http::HeaderMap` carrier; each group puts the implementations side by side.
//!
//! The `*_floor` lines measure what any implementation must pay for the
//! OpenTelemetry and carrier types alone: building the `TraceState` (two
//! `String`s per member) and the `Context` on extract, and the `String` per
//! header that `Injector::set` takes plus the carrier's header name and value
//! on inject.

use std::hint::black_box;

use baton_propagators::{HeaderCarrier, HeaderCarrierMut, TraceContextPropagator};
use criterion::{Criterion, criterion_group, criterion_main};
use http::HeaderMap;
use opentelemetry::Context;
use opentelemetry::propagation::{Injector, TextMapPropagator};
use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};
use opentelemetry_sdk::propagation::TraceContextPropagator as Upstream;

const TRACEPARENT: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
const TRACESTATE: &str = "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE";

fn incoming() -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(
        "traceparent",
        TRACEPARENT.parse().expect("valid header value"),
    );
    headers.insert(
        "tracestate",
        TRACESTATE.parse().expect("valid header value"),
    );
    headers
}

fn extract(c: &mut Criterion) {
    let headers = incoming();
    let cx = Context::new();
    let (upstream, baton) = (Upstream::new(), TraceContextPropagator::new());
    let mut group = c.benchmark_group("extract");
    group.bench_function("upstream", |b| {
        b.iter(|| upstream.extract_with_context(&cx, &HeaderCarrier(black_box(&headers))));
    });
    group.bench_function("baton", |b| {
        b.iter(|| baton.extract_with_context(&cx, &HeaderCarrier(black_box(&headers))));
    });
    group.bench_function("baton_headers", |b| {
        b.iter(|| baton.extract_from_headers(&cx, black_box(&headers)));
    });
    group.bench_function("opentelemetry_floor", |b| {
        b.iter(|| {
            let members = [("rojo", "00f067aa0ba902b7"), ("congo", "t61rcWkgMzE")];
            let state = TraceState::from_key_value(black_box(members)).unwrap_or_default();
            let trace_id = TraceId::from_bytes(black_box([0x0a; 16]));
            let span_id = SpanId::from_bytes(black_box([0xb7; 8]));
            let sc = SpanContext::new(trace_id, span_id, TraceFlags::SAMPLED, true, state);
            cx.with_remote_span_context(sc)
        });
    });
    group.finish();
}

fn inject(c: &mut Criterion) {
    let (upstream, baton) = (Upstream::new(), TraceContextPropagator::new());
    let cx = baton.extract_from_headers(&Context::new(), &incoming());
    let mut out = HeaderMap::new();
    let mut group = c.benchmark_group("inject");
    group.bench_function("upstream", |b| {
        b.iter(|| upstream.inject_context(black_box(&cx), &mut HeaderCarrierMut(&mut out)));
    });
    group.bench_function("baton", |b| {
        b.iter(|| baton.inject_context(black_box(&cx), &mut HeaderCarrierMut(&mut out)));
    });
    group.bench_function("baton_headers", |b| {
        b.iter(|| baton.inject_into_headers(black_box(&cx), &mut out));
    });
    group.bench_function("injector_floor", |b| {
        b.iter(|| {
            let mut carrier = HeaderCarrierMut(&mut out);
            carrier.set("traceparent", black_box(TRACEPARENT).to_owned());
            carrier.set("tracestate", black_box(TRACESTATE).to_owned());
        });
    });
    group.finish();
}

criterion_group!(benches, extract, inject);
criterion_main!(benches);
