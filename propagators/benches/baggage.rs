//! Baton's `BaggagePropagator` against `opentelemetry_sdk`'s, extract and
//! inject, on the same `http::HeaderMap` carriers.

use std::hint::black_box;

use baton_propagators::{BaggagePropagator, HeaderCarrier, HeaderCarrierMut};
use criterion::{Criterion, criterion_group, criterion_main};
use http::HeaderMap;
use opentelemetry::baggage::{Baggage, BaggageExt};
use opentelemetry::propagation::Injector;
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::{Context, StringValue};
use opentelemetry_sdk::propagation::BaggagePropagator as Upstream;

/// Five entries, one with a property, one needing percent-encoding.
const REALISTIC: &str =
    "userId=alice,serverNode=DF%2028,isProduction=false,tenant=acme;sampled,region=eu-west-1";

/// 64 entries (the limit), some with properties or escapes, under 8192 bytes
/// (upstream drops a larger header whole).
fn large() -> String {
    (0..64)
        .map(|i| match i % 8 {
            0 => format!("key{i:02}=value%20{i};prop{i}"),
            4 => format!("key{i:02}=Am%C3%A9lie-{i}"),
            _ => format!("key{i:02}=value-{i}-0123456789abcdef"),
        })
        .collect::<Vec<_>>()
        .join(",")
}

fn bench(c: &mut Criterion) {
    for (name, header) in [("realistic", REALISTIC.to_owned()), ("large", large())] {
        let mut incoming = HeaderMap::new();
        incoming.insert("baggage", header.parse().expect("valid header"));
        let cx: Context = BaggagePropagator.extract(&HeaderCarrier(&incoming));

        let mut group = c.benchmark_group(format!("baggage/extract/{name}"));
        group.bench_function("baton", |b| {
            b.iter(|| BaggagePropagator.extract(&HeaderCarrier(black_box(&incoming))));
        });
        group.bench_function("upstream", |b| {
            b.iter(|| Upstream::new().extract(&HeaderCarrier(black_box(&incoming))));
        });
        // What any extract into OTel's `Baggage` costs at least: the entries,
        // already parsed and decoded, copied into a `Baggage` in a `Context`.
        let parsed: Vec<(String, String, String)> = cx
            .baggage()
            .iter()
            .map(|(k, (v, m))| (k.to_string(), v.to_string(), m.as_str().to_owned()))
            .collect();
        group.bench_function("floor", |b| {
            b.iter(|| {
                let mut baggage = Baggage::new();
                for (k, v, m) in black_box(&parsed) {
                    baggage.insert_with_metadata(
                        k.clone(),
                        StringValue::from(v.clone()),
                        m.as_str(),
                    );
                }
                Context::new().with_baggage(baggage)
            });
        });
        group.finish();

        let mut group = c.benchmark_group(format!("baggage/inject/{name}"));
        let mut outgoing = HeaderMap::new();
        group.bench_function("baton", |b| {
            b.iter(|| {
                outgoing.clear();
                BaggagePropagator
                    .inject_context(black_box(&cx), &mut HeaderCarrierMut(&mut outgoing));
            });
        });
        group.bench_function("upstream", |b| {
            b.iter(|| {
                outgoing.clear();
                Upstream::new()
                    .inject_context(black_box(&cx), &mut HeaderCarrierMut(&mut outgoing));
            });
        });
        // What any inject through this carrier costs at least: setting the
        // finished header.
        BaggagePropagator.inject_context(&cx, &mut HeaderCarrierMut(&mut outgoing));
        let header = outgoing["baggage"].to_str().expect("ascii").to_owned();
        group.bench_function("floor", |b| {
            b.iter(|| {
                outgoing.clear();
                HeaderCarrierMut(&mut outgoing).set("baggage", black_box(&header).clone());
            });
        });
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
