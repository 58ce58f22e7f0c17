//! `pricing`: a small axum HTTP service. The sku `broken` fails with a 500,
//! so the demo shows an HTTP error across a hop.

use axum::Router;
use axum::extract::Path;
use axum::http::StatusCode;
use axum::routing::get;
use serde_json::{Value, json};

use crate::{Listener, Providers};

/// The sku whose price lookup always fails.
pub const BROKEN_SKU: &str = "broken";

/// Serves `GET /price/{sku}` on `listener`, recording to `providers`, until
/// the process ends.
pub async fn serve(listener: impl Into<Listener>, providers: Providers) -> std::io::Result<()> {
    let app = Router::new()
        .route("/price/{sku}", get(price))
        .layer(providers.http_server());
    axum::serve(listener.into(), app).await
}

async fn price(Path(sku): Path<String>) -> Result<axum::Json<Value>, StatusCode> {
    if sku == BROKEN_SKU {
        tracing::error!(%sku, "price table unavailable");
        return Err(StatusCode::INTERNAL_SERVER_ERROR);
    }
    // Any stable number will do for a demo: derived from the sku's bytes.
    let cents = sku.bytes().map(u64::from).sum::<u64>() * 7 % 5_000 + 99;
    tracing::info!(%sku, cents, "priced");
    Ok(axum::Json(json!({ "sku": sku, "cents": cents })))
}
