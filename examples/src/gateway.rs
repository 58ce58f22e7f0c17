//! `gateway`: the axum HTTP entry point. It puts the caller's tenant and user
//! into baggage, then calls `orders` over gRPC and `pricing` over HTTP in
//! parallel; both calls, and everything behind them, see that baggage.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use baton::grpc::client::GrpcClientService;
use reqwest::Url;
use reqwest_middleware::ClientWithMiddleware;
use serde_json::{Value, json};
use tokio::sync::Semaphore;
use tonic::transport::Channel;

use crate::shop::PlaceOrderRequest;
use crate::shop::orders_client::OrdersClient;
use crate::{Listener, Providers};

/// Request headers naming the caller, and what is assumed without them.
const TENANT_HEADER: &str = "x-tenant";
const USER_HEADER: &str = "x-user";
const QUANTITY_HEADER: &str = "x-quantity";
const DEFAULT_TENANT: &str = "acme";
const DEFAULT_USER: &str = "guest";

/// Most calls to `pricing` in flight at once. Over HTTP/1.1 each one needs a
/// connection of its own, and the client keeps no limit: a burst of checkouts
/// would dial thousands at once, overflowing the listen backlog and failing
/// the calls whose connection is dropped. Calls beyond the bound wait for a
/// pooled connection instead.
const PRICING_CONCURRENCY: usize = 256;

#[derive(Clone)]
struct Peers {
    orders: OrdersClient<GrpcClientService<Channel>>,
    http: ClientWithMiddleware,
    pricing: Url,
    pricing_slots: Arc<Semaphore>,
}

/// A JSON reply with its status.
type Reply = (StatusCode, axum::Json<Value>);

/// Serves `GET /checkout/{sku}` and `GET /healthz` on `listener`, calling
/// `orders` at its address and `pricing` at its base URL and recording to
/// `providers`, until the process ends. Fails at once if `pricing` cannot
/// have a path appended.
pub async fn serve(
    listener: impl Into<Listener>,
    orders: Url,
    pricing: Url,
    providers: Providers,
) -> std::io::Result<()> {
    if pricing.cannot_be_a_base() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("pricing URL {pricing} cannot take a path"),
        ));
    }
    let channel = crate::grpc_client(&orders, &providers);
    // Baggage goes to internal hosts only (the default): pricing is ours.
    let http = providers
        .http_client()
        .client(reqwest::Client::builder())
        .map_err(std::io::Error::other)?;
    let peers = Peers {
        orders: OrdersClient::new(channel),
        http,
        pricing,
        pricing_slots: Arc::new(Semaphore::new(PRICING_CONCURRENCY)),
    };
    let app = Router::new()
        .route("/checkout/{sku}", get(checkout))
        .route("/healthz", get(|| async { "ok" }))
        .with_state(peers)
        // The gateway faces the internet: callers' trace ids are linked,
        // not continued, and their baggage (`internal.acl=admin`, anyone's
        // to write) never reaches the services behind it; the tenant and
        // user it forwards are the ones it sets itself. Health probes would
        // drown the traces and skew the RED table.
        .layer(
            providers
                .http_server()
                .public_endpoint()
                .with_filter(|req| req.path() != "/healthz"),
        );
    axum::serve(listener.into(), app).await
}

/// Header `name`, or `default` when absent; an error reply when present
/// but not text, rather than a guess at what the caller meant.
fn header<'a>(headers: &'a HeaderMap, name: &str, default: &'a str) -> Result<&'a str, Reply> {
    match headers.get(name) {
        None => Ok(default),
        Some(value) => value
            .to_str()
            .map_err(|_| error(StatusCode::BAD_REQUEST, format!("{name} is not valid text"))),
    }
}

fn error(status: StatusCode, message: impl Into<String>) -> Reply {
    (status, axum::Json(json!({ "error": message.into() })))
}

async fn checkout(
    State(peers): State<Peers>,
    Path(sku): Path<String>,
    headers: HeaderMap,
) -> Reply {
    let (tenant, user, quantity) = match (
        header(&headers, TENANT_HEADER, DEFAULT_TENANT),
        header(&headers, USER_HEADER, DEFAULT_USER),
        header(&headers, QUANTITY_HEADER, "1"),
    ) {
        (Ok(tenant), Ok(user), Ok(quantity)) => (tenant, user, quantity),
        (Err(reply), _, _) | (_, Err(reply), _) | (_, _, Err(reply)) => return reply,
    };
    let Ok(quantity) = quantity.parse::<u32>() else {
        return error(StatusCode::BAD_REQUEST, "x-quantity must be a whole number");
    };
    // Baggage rejects what could not travel in a header; say so rather than
    // drop the caller's identity silently.
    let cx = match baton::baggage::set("tenant", tenant)
        .and_then(|cx| baton::baggage::set_in(&cx, "user", user))
    {
        Ok(cx) => cx,
        Err(err) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("bad tenant or user: {err}"),
            );
        }
    };
    baton::run(cx, place(peers, sku, quantity)).await
}

/// Orders and prices `sku` at once; the reply needs both.
async fn place(peers: Peers, sku: String, quantity: u32) -> Reply {
    tracing::info!(%sku, quantity, "checkout");
    let mut orders = peers.orders.clone();
    let order = orders.place_order(PlaceOrderRequest {
        sku: sku.clone(),
        quantity,
    });
    let (order, price) = tokio::join!(order, price(&peers, &sku));

    let order = match order {
        Ok(order) => order.into_inner(),
        Err(status) => {
            let http = match status.code() {
                tonic::Code::NotFound => StatusCode::NOT_FOUND,
                tonic::Code::FailedPrecondition => StatusCode::CONFLICT,
                _ => StatusCode::BAD_GATEWAY,
            };
            tracing::warn!(%sku, code = ?status.code(), "order failed");
            return error(http, format!("orders: {}", status.message()));
        }
    };
    let cents = match price {
        Ok(cents) => cents,
        Err(message) => {
            tracing::warn!(%sku, %message, "pricing failed");
            return error(StatusCode::BAD_GATEWAY, format!("pricing: {message}"));
        }
    };
    let body = json!({
        "order_id": order.order_id,
        "sku": sku,
        "quantity": quantity,
        "cents": cents,
        "remaining": order.remaining,
        "tenant": baton::baggage::get("tenant"),
        "user": baton::baggage::get("user"),
    });
    (StatusCode::OK, axum::Json(body))
}

/// The price of `sku` in cents, from `pricing`.
async fn price(peers: &Peers, sku: &str) -> Result<u64, String> {
    let mut url = peers.pricing.clone();
    // Checked in `serve`: the base URL takes path segments. Pushing escapes
    // the sku, so it cannot change the path.
    if let Ok(mut path) = url.path_segments_mut() {
        path.pop_if_empty().push("price").push(sku);
    }
    // Never closed, so acquiring only waits.
    let _slot = peers
        .pricing_slots
        .acquire()
        .await
        .map_err(|e| e.to_string())?;
    let response = peers
        .http
        .get(url)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let status = response.status();
    if !status.is_success() {
        return Err(format!("HTTP {status}"));
    }
    let body: Value = serde_json::from_str(&response.text().await.map_err(|e| e.to_string())?)
        .map_err(|e| e.to_string())?;
    body["cents"]
        .as_u64()
        .ok_or_else(|| "no cents in the reply".to_owned())
}
