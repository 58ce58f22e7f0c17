//! The context model, point for point with `AsyncLocalStorage`.
#![allow(clippy::unwrap_used, reason = "tests")]

use std::time::Duration;

use baton::{InContext, Local};
use futures_util::StreamExt;
use opentelemetry::trace::{TraceContextExt, Tracer, TracerProvider as _};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider};

static REQUEST: Local<u32> = Local::new();
static TENANT: Local<String> = Local::new();

fn cx_with(id: u32) -> baton::Context {
    REQUEST.set_in(&baton::current(), id)
}

#[tokio::test]
async fn run_keeps_the_context_across_awaits_timers_select_join_and_timeouts() {
    baton::run(cx_with(1), async {
        tokio::task::yield_now().await;
        assert_eq!(REQUEST.get(), Some(1));
        tokio::time::sleep(Duration::from_millis(2)).await;
        assert_eq!(REQUEST.get(), Some(1));
        tokio::select! {
            () = tokio::time::sleep(Duration::from_millis(1)) => assert_eq!(REQUEST.get(), Some(1)),
            () = std::future::pending::<()>() => unreachable!(),
        }
        let (a, b) = tokio::join!(async { REQUEST.get() }, async {
            tokio::task::yield_now().await;
            REQUEST.get()
        });
        assert_eq!((a, b), (Some(1), Some(1)));
        let t = tokio::time::timeout(Duration::from_secs(1), async {
            tokio::time::sleep(Duration::from_millis(1)).await;
            REQUEST.get()
        })
        .await
        .unwrap();
        assert_eq!(t, Some(1));
    })
    .await;
    assert_eq!(REQUEST.get(), None, "restored after the run");
}

#[tokio::test]
async fn nested_runs_override_and_restore() {
    baton::run(cx_with(1), async {
        baton::run(cx_with(2), async {
            tokio::task::yield_now().await;
            assert_eq!(REQUEST.get(), Some(2));
        })
        .await;
        assert_eq!(REQUEST.get(), Some(1));
    })
    .await;
}

#[tokio::test]
async fn streams_carry_the_context_into_every_item() {
    let items: Vec<_> = futures_util::stream::iter(0..3)
        .then(|_| async {
            tokio::task::yield_now().await;
            REQUEST.get()
        })
        .in_context(cx_with(9))
        .collect()
        .await;
    assert_eq!(items, vec![Some(9); 3]);
}

#[test]
fn run_sync_restores_on_panic() {
    let caught = std::panic::catch_unwind(|| {
        baton::run_sync(cx_with(5), || {
            assert_eq!(REQUEST.get(), Some(5));
            panic!("boom");
        })
    });
    assert!(caught.is_err());
    assert_eq!(REQUEST.get(), None);
}

#[tokio::test]
async fn run_restores_when_the_future_panics() {
    let joined = tokio::spawn(baton::run(cx_with(6), async {
        tokio::task::yield_now().await;
        panic!("boom");
    }))
    .await;
    assert!(joined.unwrap_err().is_panic());
    let caught = futures_util::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(baton::run(
        cx_with(7),
        async { panic!("boom") },
    )))
    .await;
    assert!(caught.is_err());
    assert_eq!(REQUEST.get(), None);
}

#[tokio::test]
async fn destructors_of_a_run_future_see_its_context() {
    struct Probe(std::sync::mpsc::Sender<Option<u32>>);
    impl Drop for Probe {
        fn drop(&mut self) {
            self.0.send(REQUEST.get()).unwrap();
        }
    }
    let (tx, rx) = std::sync::mpsc::channel();
    let probe = Probe(tx);
    let fut = baton::run(cx_with(3), async move {
        let _probe = probe;
        std::future::pending::<()>().await;
    });
    // Poll once so the probe moves into the future's state, then drop it.
    assert!(
        tokio::time::timeout(Duration::from_millis(1), fut)
            .await
            .is_err()
    );
    assert_eq!(rx.recv().unwrap(), Some(3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hand_offs_carry_the_context() {
    baton::run(cx_with(11), async {
        assert_eq!(
            baton::spawn(async { REQUEST.get() }).await.unwrap(),
            Some(11)
        );
        assert_eq!(
            baton::spawn(async { baton::spawn(async { REQUEST.get() }).await.unwrap() })
                .await
                .unwrap(),
            Some(11),
            "nested spawns"
        );
        assert_eq!(
            baton::spawn_blocking(|| REQUEST.get()).await.unwrap(),
            Some(11)
        );
        assert_eq!(
            baton::spawn_thread(|| REQUEST.get()).join().unwrap(),
            Some(11)
        );
        let bound = baton::bind(|| REQUEST.get());
        let snap = baton::snapshot();
        let later = async { tokio::task::yield_now().await }.in_current_context();
        baton::run(cx_with(12), async move {
            assert_eq!(bound(), Some(11));
            assert_eq!(snap.run(|| REQUEST.get()), Some(11));
            assert_eq!(REQUEST.get(), Some(12));
            later.await;
        })
        .await;
    })
    .await;
}

#[tokio::test]
async fn without_a_hand_off_a_plain_spawn_does_not_inherit() {
    // Documents why `baton::spawn` (or the runtime hooks) exist.
    let seen = baton::run(cx_with(13), async {
        tokio::spawn(async { REQUEST.get() }).await
    })
    .await
    .unwrap();
    assert_eq!(seen, None);
}

#[test]
fn locals_of_one_context_travel_together() {
    let cx = TENANT.set_in(&cx_with(21), "acme".into());
    let (id, tenant) = baton::run_sync(cx, || baton::bind(|| (REQUEST.get(), TENANT.get())))();
    assert_eq!((id, tenant.as_deref()), (Some(21), Some("acme")));
    TENANT.run_sync("a".into(), || {
        let _g = TENANT.enter("b".into());
        assert_eq!(TENANT.with(|t| t.cloned()).as_deref(), Some("b"));
    });
}

#[tokio::test]
async fn baggage_helpers_read_set_and_remove() {
    let cx = baton::baggage::set("tenant", "acme").unwrap();
    let cx =
        baton::baggage::set_with_properties_in(&cx, "user", "ada", "ttl = 60;internal").unwrap();
    assert_eq!(
        baton::baggage::set("bad key", "v").unwrap_err(),
        baton::baggage::BaggageError::InvalidKey
    );
    assert_eq!(
        baton::baggage::set_with_properties("k", "v", "bad key=1").unwrap_err(),
        baton::baggage::BaggageError::InvalidProperties
    );
    baton::run(cx, async {
        let entry = |key: &str, value: &str, properties: &str| baton::baggage::Entry {
            key: key.into(),
            value: value.into(),
            properties: properties.into(),
        };
        assert_eq!(
            baton::baggage::entries(),
            vec![
                entry("tenant", "acme", ""),
                entry("user", "ada", "ttl=60;internal")
            ]
        );
        assert_eq!(
            baton::baggage::entry("user"),
            Some(entry("user", "ada", "ttl=60;internal"))
        );
        // Properties travel: the baggage header carries them, through
        // Baton's propagator and OpenTelemetry's alike (they are one).
        let mut headers = http::HeaderMap::new();
        let cx = baton::current();
        baton::global::propagator().inject_into_header_map(&cx, &mut headers, &mut Vec::new());
        assert_eq!(headers["baggage"], "tenant=acme,user=ada;ttl=60;internal");
        let mut otel = http::HeaderMap::new();
        opentelemetry::global::get_text_map_propagator(|p| {
            p.inject(&mut baton::propagators::HeaderCarrierMut(&mut otel));
        });
        assert_eq!(otel, headers);
        let cx = baton::baggage::remove("user");
        baton::run(cx, async {
            assert_eq!(baton::baggage::get("user"), None);
            assert_eq!(baton::baggage::get("tenant").as_deref(), Some("acme"));
        })
        .await;
    })
    .await;
    let mut cx = baton::current();
    for i in 0..64 {
        cx = baton::baggage::set_in(&cx, &format!("k{i}"), "v").unwrap();
    }
    assert_eq!(
        baton::baggage::set_in(&cx, "k64", "v").unwrap_err(),
        baton::baggage::BaggageError::LimitExceeded
    );
}

#[tokio::test]
async fn opentelemetry_sees_the_same_context_and_spans_nest() {
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    let tracer = provider.tracer("test");
    let root = tracer.start("root");
    let cx = REQUEST.set_in(&baton::current().with_span(root), 31);
    baton::run(cx, async {
        // Plain OpenTelemetry API inside a baton run: same context.
        assert_eq!(opentelemetry::Context::current().get::<u8>(), None);
        assert_eq!(
            REQUEST.get_in(&opentelemetry::Context::current()).copied(),
            Some(31)
        );
        tokio::task::yield_now().await;
        let child = tracer.start("child");
        let cx = baton::current().with_span(child);
        baton::run(cx, async {
            let grandchild = tracer.start("grandchild");
            drop(grandchild);
        })
        .await;
        baton::current().span().end();
        let spawned = baton::spawn(async move {
            tracer.start("spawned");
        });
        spawned.await.unwrap();
    })
    .await;
    drop(provider.force_flush());
    let spans = exporter.get_finished_spans().unwrap();
    let by_name = |n: &str| spans.iter().find(|s| s.name == n).unwrap();
    let (root, child, grandchild, spawned) = (
        by_name("root"),
        by_name("child"),
        by_name("grandchild"),
        by_name("spawned"),
    );
    assert_eq!(child.parent_span_id, root.span_context.span_id());
    assert_eq!(grandchild.parent_span_id, child.span_context.span_id());
    assert_eq!(spawned.parent_span_id, root.span_context.span_id());
    assert!(
        spans
            .iter()
            .all(|s| s.span_context.trace_id() == root.span_context.trace_id())
    );
}
