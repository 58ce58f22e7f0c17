//! Baton's `TraceContextPropagator` against `opentelemetry_sdk`'s, on the same
//! `http::HeaderMap` carrier; each group puts the implementations side by side.

use std::hint::black_box;

use baton_propagators::{HeaderCarrier, HeaderCarrierMut, TraceContextPropagator};
use criterion::{Criterion, criterion_group, criterion_main};
use http::HeaderMap;
use opentelemetry::Context;
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry_sdk::propagation::TraceContextPropagator as Upstream;

fn incoming() -> HeaderMap {
    let mut headers = HeaderMap::new();
    let traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    headers.insert(
        "traceparent",
        traceparent.parse().expect("valid header value"),
    );
    let tracestate = "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE";
    headers.insert(
        "tracestate",
        tracestate.parse().expect("valid header value"),
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
    group.finish();
}

criterion_group!(benches, extract, inject);
criterion_main!(benches);
