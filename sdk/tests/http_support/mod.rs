//! What the HTTP server and client tests share: a real axum server on
//! 127.0.0.1. Telemetry is captured with `baton::testing`.

#![allow(dead_code, reason = "each test crate uses part of it")]

use std::net::SocketAddr;

use axum::Router;
use axum::serve::ListenerExt as _;
use baton::testing::{Metrics, Point};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A real axum server on 127.0.0.1, port picked by the OS.
pub(crate) struct Server {
    pub(crate) addr: SocketAddr,
    shutdown: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl Server {
    pub(crate) async fn start(app: Router) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("address");
        let (shutdown, stop) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            // Without it each response waits for a delayed ACK.
            let listener = listener.tap_io(|tcp| {
                let _ = tcp.set_nodelay(true);
            });
            axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stop.await;
                })
                .await
                .expect("serve");
        });
        Server {
            addr,
            shutdown,
            task,
        }
    }

    pub(crate) fn url(&self, path_and_query: &str) -> String {
        format!("http://{}{path_and_query}", self.addr)
    }

    pub(crate) async fn stop(self) {
        let _ = self.shutdown.send(());
        self.task.await.expect("server task");
    }
}

/// The points of duration histogram `name`, each checked to be a histogram
/// in seconds.
pub(crate) fn durations<'a>(metrics: &'a Metrics, name: &'a str) -> Vec<&'a Point> {
    metrics
        .points(name)
        .inspect(|point| {
            assert_eq!(point.unit, "s", "{point}");
            assert!(point.count().is_some(), "{point} is not a histogram");
        })
        .collect()
}
