//! The gRPC API (tonic; the workspace's `proto/seckill.proto`, compiled by protox at build time): the
//! SeckillService, OrderService and UserService, on the same engine, rules and tokens as the
//! HTTP API. A refusal is a gRPC status with the HTTP API's error code in the `seckill-code`
//! metadata.

use crate::auth::{authenticate, verify_bearer, AuthUser, SignedUser};
use crate::error::{ApiError, Code};
use crate::service::{buy, catalog, orders, page_request, users};
use crate::state::AppState;
use seckill_core::domain::{ActivityId, Order as DomainOrder, OrderId, OrderStatus, Role, UserId};
use seckill_core::engine::OrderLookup;
use seckill_core::Timestamp;
use tonic::{Request, Response, Status};

/// The generated messages, services and clients.
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod pb {
    tonic::include_proto!("seckill.v1");
}

use pb::order_service_server::{OrderService, OrderServiceServer};
use pb::seckill_service_server::{SeckillService, SeckillServiceServer};
use pb::user_service_server::{UserService, UserServiceServer};

/// A refusal as a gRPC status: the code's gRPC code ([`Code::grpc`], the same table as the
/// HTTP statuses), the message, and the error code in the `seckill-code` metadata.
pub fn status(e: ApiError) -> Status {
    let mut s = Status::new(e.code.grpc(), e.message);
    s.metadata_mut()
        .insert("seckill-code", (e.code as u32).into());
    s
}

fn ms(t: Timestamp) -> i64 {
    t.timestamp_millis()
}

fn order(o: DomainOrder) -> pb::Order {
    pb::Order {
        id: o.id.0,
        hold_id: o.hold_id.0,
        user_id: o.user_id.0,
        activity_id: o.activity_id.0,
        quantity: o.quantity,
        amount: o.amount.0,
        status: o.status.to_string(),
        expires_at_ms: ms(o.expires_at),
        created_at_ms: ms(o.created_at),
        updated_at_ms: ms(o.updated_at),
        payment_id: o.payment_id.map(|p| p.0),
        cancel_reason: o.cancel_reason.map(|r| {
            serde_json::to_value(r)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default()
        }),
    }
}

/// The three services over one [`AppState`].
#[derive(Debug, Clone)]
pub struct Grpc {
    state: AppState,
}

impl Grpc {
    /// The services on `state`.
    pub fn new(state: AppState) -> Self {
        Self { state }
    }

    /// The tonic router with the three services.
    pub fn router(self) -> tonic::service::Routes {
        tonic::service::Routes::new(SeckillServiceServer::new(self.clone()))
            .add_service(OrderServiceServer::new(self.clone()))
            .add_service(UserServiceServer::new(self))
    }

    async fn caller<T>(&self, req: &Request<T>) -> Result<AuthUser, Status> {
        authenticate(&self.state, bearer(req)).await.map_err(status)
    }

    /// The caller of a buy: its token verified, its revocation checked by `place`.
    fn signed_caller<T>(&self, req: &Request<T>) -> Result<SignedUser, Status> {
        verify_bearer(&self.state, bearer(req))
            .map(SignedUser)
            .map_err(status)
    }

    /// The caller's order; someone else's, or one not written yet, is not found; one whose
    /// reservation was lost says so (code 4003).
    async fn my_order(&self, me: &AuthUser, id: i64) -> Result<DomainOrder, Status> {
        orders::mine(&self.state, me, OrderId(id))
            .await
            .map_err(status)
    }
}

fn bearer<T>(req: &Request<T>) -> Option<&str> {
    req.metadata()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
}

#[tonic::async_trait]
impl SeckillService for Grpc {
    async fn buy(&self, req: Request<pb::BuyRequest>) -> Result<Response<pb::BuyReply>, Status> {
        // The HTTP buy's gate: one limit on buys in flight, whichever door they come through.
        let o = &self.state.overload;
        let _pass = o.buy.try_enter().ok_or_else(|| status(o.refusal(&o.buy)))?;
        let me = self.signed_caller(&req)?;
        let ip = req
            .remote_addr()
            .map_or_else(|| "unknown".to_string(), |a| a.ip().to_string());
        let r = req.into_inner();
        let key = (!r.idempotency_key.is_empty()).then_some(r.idempotency_key);
        if let Some(k) = &key {
            crate::idempotent::check_key(k).map_err(status)?;
        }
        let b = buy::place(
            &self.state,
            &me,
            &ip,
            // Tiered and real-name sessions are bought over HTTP for now (docs/adr/0021).
            seckill_core::engine::BuyRequest {
                user_id: me.0.id,
                activity_id: ActivityId(r.activity_id),
                quantity: r.quantity.max(1),
                request_id: key,
                lines: Vec::new(),
                holders: Vec::new(),
            },
        )
        .await
        .map_err(status)?;
        Ok(Response::new(pb::BuyReply {
            hold_id: b.hold_id.0,
            order_id: b.order_id.0,
            quantity: b.quantity,
            expires_at_ms: ms(b.expires_at),
            replayed: b.replayed,
        }))
    }

    async fn get_activity(
        &self,
        req: Request<pb::GetActivityRequest>,
    ) -> Result<Response<pb::Activity>, Status> {
        let id = ActivityId(req.into_inner().id);
        let v = catalog::activity(&self.state, id).await.map_err(status)?;
        Ok(Response::new(pb::Activity {
            id: v.id.0,
            product_id: v.product_id.0,
            title: v.title,
            price: v.price.0,
            total_stock: v.total_stock,
            per_user_limit: v.per_user_limit,
            starts_at_ms: ms(v.starts_at),
            ends_at_ms: ms(v.ends_at),
            status: serde_json::to_value(v.status)
                .ok()
                .and_then(|s| s.as_str().map(str::to_string))
                .unwrap_or_default(),
            available: v.available,
        }))
    }

    async fn get_result(
        &self,
        req: Request<pb::GetResultRequest>,
    ) -> Result<Response<pb::BuyResult>, Status> {
        let me = self.caller(&req).await?;
        let id = req.into_inner().order_id;
        let found = orders::lookup(&self.state, &me, OrderId(id))
            .await
            .map_err(status)?;
        let (state, found) = match found {
            OrderLookup::Written(o) => (o.status.to_string(), Some(o)),
            OrderLookup::Pending => ("processing".to_string(), None),
            OrderLookup::Lost { .. } => ("lost".to_string(), None),
        };
        Ok(Response::new(pb::BuyResult {
            order_id: id,
            status: state,
            order: found.map(order),
        }))
    }
}

#[tonic::async_trait]
impl OrderService for Grpc {
    async fn get_order(
        &self,
        req: Request<pb::GetOrderRequest>,
    ) -> Result<Response<pb::Order>, Status> {
        let me = self.caller(&req).await?;
        let id = req.into_inner().id;
        Ok(Response::new(order(self.my_order(&me, id).await?)))
    }

    async fn list_orders(
        &self,
        req: Request<pb::ListOrdersRequest>,
    ) -> Result<Response<pb::ListOrdersReply>, Status> {
        let me = self.caller(&req).await?;
        let r = req.into_inner();
        let status_filter = if r.status.is_empty() {
            None
        } else {
            Some(r.status.parse::<OrderStatus>().map_err(|_| {
                status(ApiError::new(
                    Code::InvalidParameter,
                    format!("unknown order status {:?}", r.status),
                ))
            })?)
        };
        // Protobuf's zero means "not set": the defaults, as the HTTP route's absent parameters.
        let page = page_request(
            (r.page != 0).then_some(r.page),
            (r.page_size != 0).then_some(r.page_size),
        )
        .map_err(status)?;
        let p = orders::list_mine(&self.state, &me, status_filter, page)
            .await
            .map_err(status)?;
        Ok(Response::new(pb::ListOrdersReply {
            items: p.items.into_iter().map(order).collect(),
            total: p.total,
            page: p.page,
            page_size: p.page_size,
        }))
    }

    async fn cancel_order(
        &self,
        req: Request<pb::CancelOrderRequest>,
    ) -> Result<Response<pb::Order>, Status> {
        let me = self.caller(&req).await?;
        let id = OrderId(req.into_inner().id);
        let o = orders::cancel_mine(&self.state, &me, id)
            .await
            .map_err(status)?;
        Ok(Response::new(order(o)))
    }
}

#[tonic::async_trait]
impl UserService for Grpc {
    async fn validate_token(
        &self,
        req: Request<pb::ValidateTokenRequest>,
    ) -> Result<Response<pb::TokenInfo>, Status> {
        let token = req.into_inner().token;
        let u = authenticate(&self.state, Some(&format!("Bearer {token}")))
            .await
            .map_err(status)?;
        Ok(Response::new(pb::TokenInfo {
            user_id: u.id.0,
            role: role(u.role),
            expires_at: u.expires_at,
            token_id: u.token_id,
        }))
    }

    async fn get_user(
        &self,
        req: Request<pb::GetUserRequest>,
    ) -> Result<Response<pb::User>, Status> {
        let me = self.caller(&req).await?;
        let id = UserId(req.into_inner().id);
        let u = users::user(&self.state, &me, id).await.map_err(status)?;
        Ok(Response::new(pb::User {
            id: u.id.0,
            username: u.username,
            phone: u.phone,
            role: role(u.role),
            created_at_ms: ms(u.created_at),
        }))
    }
}

fn role(r: Role) -> String {
    match r {
        Role::Admin => "admin",
        Role::User => "user",
    }
    .to_string()
}
