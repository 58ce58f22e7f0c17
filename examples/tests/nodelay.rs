//! Every demo service serves its connections with `TCP_NODELAY` set: without
//! it each gRPC reply waits about 40 ms for a delayed ACK, even on loopback.
//! The check reads the option on the socket each real server accepted.

use std::time::Duration;

use baton_examples::{Listener, Providers, gateway, inventory, orders, pricing};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

/// Longest wait for a server to accept the test's connection.
const ACCEPT_WITHIN: Duration = Duration::from_secs(10);

/// A listener on a loopback port reporting `TCP_NODELAY` of each socket it
/// accepts, its URL, and where the reports arrive.
async fn observed() -> (Listener, reqwest::Url, mpsc::UnboundedReceiver<bool>) {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a loopback port");
    let addr = listener.local_addr().expect("a bound listener's address");
    let url = format!("http://{addr}").parse().expect("a URL");
    let (tx, rx) = mpsc::unbounded_channel();
    let listener = Listener::from(listener).on_accept(move |stream| {
        let _ = tx.send(stream.nodelay().expect("TCP_NODELAY is readable"));
    });
    (listener, url, rx)
}

/// Connects to `url` and returns `TCP_NODELAY` of the socket the server
/// accepted for it.
async fn accepted_nodelay(
    url: &reqwest::Url,
    accepted: &mut mpsc::UnboundedReceiver<bool>,
) -> bool {
    let addr = url.socket_addrs(|| None).expect("a socket address")[0];
    let _client = TcpStream::connect(addr).await.expect("the server listens");
    tokio::time::timeout(ACCEPT_WITHIN, accepted.recv())
        .await
        .expect("the server accepted through its listener in time")
        .expect("the server is still running")
}

#[tokio::test]
async fn every_demo_server_sets_tcp_nodelay_on_accepted_connections() {
    // Peers are only dialled when a request needs them; none is sent here.
    let nowhere: reqwest::Url = "http://127.0.0.1:9".parse().expect("a URL");

    let (listener, inventory_url, mut inventory_seen) = observed().await;
    tokio::spawn(inventory::serve(listener, Providers::global()));
    let (listener, orders_url, mut orders_seen) = observed().await;
    tokio::spawn(orders::serve(
        listener,
        nowhere.clone(),
        Providers::global(),
    ));
    let (listener, pricing_url, mut pricing_seen) = observed().await;
    tokio::spawn(pricing::serve(listener, Providers::global()));
    let (listener, gateway_url, mut gateway_seen) = observed().await;
    tokio::spawn(gateway::serve(
        listener,
        nowhere.clone(),
        nowhere,
        Providers::global(),
    ));

    for (service, url, seen) in [
        ("inventory", &inventory_url, &mut inventory_seen),
        ("orders", &orders_url, &mut orders_seen),
        ("pricing", &pricing_url, &mut pricing_seen),
        ("gateway", &gateway_url, &mut gateway_seen),
    ] {
        assert!(
            accepted_nodelay(url, seen).await,
            "{service} serves a connection without TCP_NODELAY"
        );
    }
}
