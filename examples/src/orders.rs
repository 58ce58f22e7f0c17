//! `orders`: a tonic service that reserves stock at `inventory` (unary), reads
//! a few stock levels (server streaming), and audits each order in a
//! background task that keeps the request's context.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use baton::grpc::client::GrpcClientService;
use tonic::transport::Channel;
use tonic::{Request, Response, Status};

use crate::shop::inventory_client::InventoryClient;
use crate::shop::orders_server::{Orders, OrdersServer};
use crate::shop::{PlaceOrderReply, PlaceOrderRequest, ReserveRequest, WatchStockRequest};
use crate::{Listener, Providers};

/// Stock levels read from `WatchStock` per order.
const STOCK_UPDATES: u32 = 3;

/// How long the audit task waits, standing in for a slow audit store; the
/// order is answered without waiting for it.
const AUDIT_DELAY: Duration = Duration::from_millis(20);

/// Serves `Orders` on `listener`, calling `inventory` at its address and
/// recording to `providers`, until the process ends.
pub async fn serve(
    listener: impl Into<Listener>,
    inventory: reqwest::Url,
    providers: Providers,
) -> Result<(), tonic::transport::Error> {
    let channel = crate::grpc_client(&inventory, &providers);
    let service = Service {
        inventory: InventoryClient::new(channel),
        next_order: AtomicU64::new(1),
    };
    crate::grpc_server()
        .layer(providers.grpc_server())
        .add_service(OrdersServer::new(service))
        .serve_with_incoming(listener.into().incoming())
        .await
}

struct Service {
    inventory: InventoryClient<GrpcClientService<Channel>>,
    next_order: AtomicU64,
}

#[tonic::async_trait]
impl Orders for Service {
    async fn place_order(
        &self,
        request: Request<PlaceOrderRequest>,
    ) -> Result<Response<PlaceOrderReply>, Status> {
        let PlaceOrderRequest { sku, quantity } = request.into_inner();
        // Clients are cheap clones sharing one connection; calls need `&mut`.
        let mut inventory = self.inventory.clone();
        let reserved = inventory
            .reserve(ReserveRequest {
                sku: sku.clone(),
                quantity,
            })
            .await
            .inspect_err(
                |status| tracing::warn!(%sku, code = ?status.code(), "reservation failed"),
            )?
            .into_inner();

        let mut levels = inventory
            .watch_stock(WatchStockRequest {
                sku: sku.clone(),
                updates: STOCK_UPDATES,
            })
            .await?
            .into_inner();
        let mut lowest = None;
        while let Some(level) = levels.message().await? {
            lowest = Some(level.available);
        }

        let order_id = format!("ord-{:04}", self.next_order.fetch_add(1, Ordering::Relaxed));
        tracing::info!(%order_id, %sku, quantity, watched_low = ?lowest, "order placed");
        // Not awaited: the reply goes out now, and the audit line still
        // carries this request's trace id and baggage.
        let audited = order_id.clone();
        baton::spawn(async move {
            tokio::time::sleep(AUDIT_DELAY).await;
            tracing::info!(order_id = %audited, "audit: order recorded (background task)");
        });
        Ok(Response::new(PlaceOrderReply {
            order_id,
            remaining: reserved.remaining,
        }))
    }
}
