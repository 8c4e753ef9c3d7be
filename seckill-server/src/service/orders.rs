//! Orders: the buyer's own (list, look up, cancel) and the admin's (list, status change).

use crate::auth::AuthUser;
use crate::error::{ApiError, Code};
use crate::state::AppState;
use seckill_core::domain::{Order, OrderId, OrderStatus};
use seckill_core::engine::OrderLookup;
use seckill_core::repo::{OrderFilter, Page, PageRequest};

/// One page of the orders `filter` selects, newest first (the buyer's list and the admin's;
/// from a read replica when there are any).
pub async fn page_of(
    s: &AppState,
    filter: &OrderFilter,
    page: PageRequest,
) -> Result<Page<Order>, ApiError> {
    Ok(s.engine
        .backends()
        .read()
        .orders
        .list_orders(filter, page)
        .await?)
}

/// The caller's orders, newest first, optionally of one status.
pub async fn list_mine(
    s: &AppState,
    me: &AuthUser,
    status: Option<OrderStatus>,
    page: PageRequest,
) -> Result<Page<Order>, ApiError> {
    let filter = OrderFilter {
        user_id: Some(me.id),
        status,
        ..OrderFilter::default()
    };
    page_of(s, &filter, page).await
}

/// What became of the caller's buy `id`: its order once written, `Pending` while it is on its
/// way, `Lost` once its reservation is known lost (the gRPC result call answers all three).
pub async fn lookup(s: &AppState, me: &AuthUser, id: OrderId) -> Result<OrderLookup, ApiError> {
    Ok(s.engine.order_lookup(me.id, id).await?)
}

/// The caller's order: the order; 404 (4001) while it is not written yet (or is someone
/// else's); 410 (4003) once its reservation is known lost.
pub async fn mine(s: &AppState, me: &AuthUser, id: OrderId) -> Result<Order, ApiError> {
    match lookup(s, me, id).await? {
        OrderLookup::Written(o) => Ok(o),
        OrderLookup::Pending => Err(ApiError::new(
            Code::OrderNotFound,
            format!("no order {id} (a new order appears within moments of the buy; retry shortly)"),
        )),
        OrderLookup::Lost { deadline } => Err(ApiError::new(
            Code::OrderLost,
            format!(
                "order {id} was never written: its reservation was lost before {deadline}; \
                 the buy failed and nothing is charged"
            ),
        )),
    }
}

/// Cancels one of the caller's unpaid orders (its units go back on sale).
pub async fn cancel_mine(s: &AppState, me: &AuthUser, id: OrderId) -> Result<Order, ApiError> {
    Ok(s.engine.cancel_by_user(me.id, id).await?)
}

/// The admin's status change (the engine says which transitions an operator may take).
pub async fn set_status(s: &AppState, id: OrderId, to: OrderStatus) -> Result<Order, ApiError> {
    Ok(s.engine.set_order_status(id, to).await?)
}
