//! `inventory`: a tonic service over a fixed catalog. It reads the baggage the
//! gateway set two hops earlier and logs with correlation ids.

use std::pin::Pin;

use futures_util::Stream;
use opentelemetry::KeyValue;
use opentelemetry::trace::TraceContextExt;
use tonic::{Request, Response, Status};

use crate::shop::inventory_server::{Inventory, InventoryServer};
use crate::shop::{ReserveReply, ReserveRequest, StockLevel, WatchStockRequest};
use crate::{Listener, Providers};

/// Units in stock per sku. The catalog never changes, so every run of the
/// demo gives the same answers.
const CATALOG: [(&str, u32); 4] = [("widget", 120), ("gadget", 40), ("gizmo", 7), ("broken", 3)];

/// Most stock levels one `WatchStock` call streams.
const MAX_UPDATES: u32 = 5;

/// Serves `Inventory` on `listener`, recording to `providers`, until the
/// process ends.
pub async fn serve(
    listener: impl Into<Listener>,
    providers: Providers,
) -> Result<(), tonic::transport::Error> {
    crate::grpc_server()
        .layer(providers.grpc_server())
        .add_service(InventoryServer::new(Service))
        .serve_with_incoming(listener.into().incoming())
        .await
}

struct Service;

fn stock(sku: &str) -> Result<u32, Status> {
    CATALOG
        .iter()
        .find(|(name, _)| *name == sku)
        .map(|(_, units)| *units)
        .ok_or_else(|| Status::not_found(format!("unknown sku {sku:?}")))
}

/// The `tenant` baggage entry, also copied onto the current span so the trace
/// tree shows what arrived here.
fn tenant() -> String {
    let tenant = baton::baggage::get("tenant").unwrap_or_else(|| "-".to_owned());
    baton::current()
        .span()
        .set_attribute(KeyValue::new("baggage.tenant", tenant.clone()));
    tenant
}

type StockStream = Pin<Box<dyn Stream<Item = Result<StockLevel, Status>> + Send>>;

#[tonic::async_trait]
impl Inventory for Service {
    async fn reserve(
        &self,
        request: Request<ReserveRequest>,
    ) -> Result<Response<ReserveReply>, Status> {
        let ReserveRequest { sku, quantity } = request.into_inner();
        let tenant = tenant();
        let available = stock(&sku).inspect_err(|status| {
            tracing::warn!(%sku, %tenant, reason = status.message(), "reserve refused");
        })?;
        let Some(remaining) = available.checked_sub(quantity) else {
            tracing::warn!(%sku, %tenant, quantity, available, "not enough stock");
            return Err(Status::failed_precondition(format!(
                "only {available} {sku} left"
            )));
        };
        tracing::info!(%sku, %tenant, quantity, remaining, "reserved");
        Ok(Response::new(ReserveReply { remaining }))
    }

    type WatchStockStream = StockStream;

    async fn watch_stock(
        &self,
        request: Request<WatchStockRequest>,
    ) -> Result<Response<StockStream>, Status> {
        let WatchStockRequest { sku, updates } = request.into_inner();
        let available = stock(&sku)?;
        tracing::info!(%sku, tenant = %tenant(), updates, "watching stock");
        // A real service would stream changes as they happen; a few falling
        // levels are enough to show a streaming call measured whole.
        let levels: Vec<_> = (0..updates.min(MAX_UPDATES))
            .map(|i| {
                Ok(StockLevel {
                    sku: sku.clone(),
                    available: available.saturating_sub(i),
                })
            })
            .collect();
        Ok(Response::new(Box::pin(futures_util::stream::iter(levels))))
    }
}
