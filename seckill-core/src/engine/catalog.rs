//! What operators and buyers write outside a sale: products, activities and users, each
//! checked against the domain's rules ([`Product::validate`], [`Activity::validate`],
//! [`User::validate`]) before any backend sees it, and the admin's order-status transition. The
//! server, gRPC, the demo seed and an embedder all write through here, so none of them can
//! store what another would refuse.

use super::Engine;
use crate::domain::{
    Activity, ActivityId, CancelReason, Event, EventId, Money, Order, OrderId, OrderStatus,
    Product, ProductId, Quota, Role, SeatBlock, Tier, User, UserId,
};
use crate::repo::PageRequest;
use crate::{Entity, Error, Result, Timestamp};

/// A product to create (the body of `POST /api/v1/admin/products`).
#[derive(Debug, Clone, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NewProduct {
    /// Display name: 1 to 200 characters, no control characters.
    #[cfg_attr(
        feature = "openapi",
        schema(
            min_length = 1,
            max_length = 200,
            pattern = r"^[^\u0000-\u001F\u007F-\u009F]*[^\u0000-\u001F\u007F-\u009F \u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000][^\u0000-\u001F\u007F-\u009F]*$"
        )
    )]
    pub name: String,
    /// Free text: at most 2000 characters; no control characters but newlines and tabs.
    #[serde(default)]
    #[cfg_attr(
        feature = "openapi",
        schema(
            max_length = 2000,
            pattern = r"^[^\u0000-\u0008\u000B-\u001F\u007F-\u009F]*$"
        )
    )]
    pub description: String,
    /// The regular price, in minor units (not negative).
    #[cfg_attr(feature = "openapi", schema(value_type = i64, minimum = 0))]
    pub list_price: Money,
}

/// An activity to create (the body of `POST /api/v1/admin/seckill/activities`; warm it up
/// before it starts).
#[derive(Debug, Clone, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NewActivity {
    /// What is sold.
    pub product_id: ProductId,
    /// Display title: 1 to 200 characters, no control characters.
    #[cfg_attr(
        feature = "openapi",
        schema(
            min_length = 1,
            max_length = 200,
            pattern = r"^[^\u0000-\u001F\u007F-\u009F]*[^\u0000-\u001F\u007F-\u009F \u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000][^\u0000-\u001F\u007F-\u009F]*$"
        )
    )]
    pub title: String,
    /// Sale price of one unit, in minor units (not negative).
    #[cfg_attr(feature = "openapi", schema(value_type = i64, minimum = 0))]
    pub price: Money,
    /// Units for sale: 1 to 10,000,000.
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 10_000_000))]
    pub total_stock: u32,
    /// Most units one user may hold (at least 1).
    #[cfg_attr(feature = "openapi", schema(minimum = 1))]
    pub per_user_limit: u32,
    /// Sale opens (inclusive); before `ends_at`.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub starts_at: Timestamp,
    /// Sale closes (exclusive).
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub ends_at: Timestamp,
    /// Stock buckets (1 to 64, default 1; docs/adr/0020): split a hot sale's stock so a Redis
    /// Cluster spreads it over its masters. Fixed once created.
    #[serde(default = "one_bucket")]
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 64))]
    pub stock_buckets: u32,
    /// The event this activity is a session of (it must exist); absent for a plain sale.
    #[serde(default)]
    pub event_id: Option<EventId>,
    /// Price tiers (docs/adr/0021): with them `total_stock` is the session's capacity (at most
    /// their stock together), `price` is set to the cheapest tier's, and a buy names units
    /// per tier. Up to 32; fixed once created.
    #[serde(default)]
    pub tiers: Vec<Tier>,
    /// Caps over several tiers (a "student" quota); up to 32, fixed once created.
    #[serde(default)]
    pub quotas: Vec<Quota>,
    /// A seat map: blocks of seats of one row and one tier, best first (a seated tier's stock
    /// is its seat count); up to 100,000 seats, fixed once created.
    #[serde(default)]
    pub seats: Vec<SeatBlock>,
    /// Real-name tickets (实名制): each ticket of a buy names its holder, and one identity
    /// document holds at most one live ticket of the session. One stock bucket; fixed once
    /// created.
    #[serde(default)]
    pub real_name: bool,
}

impl NewActivity {
    /// The activity it creates, as stored under `id` at `now` (nothing sold, not cancelled; with
    /// tiers, `price` is the cheapest one's, what a listing shows as "from"). Not yet checked:
    /// [`Activity::validate`] is the rule, for the engine and for a tool that checks a plan
    /// before it sends it.
    pub fn into_activity(self, id: ActivityId, now: Timestamp) -> Activity {
        Activity {
            id,
            product_id: self.product_id,
            title: self.title,
            price: self
                .tiers
                .iter()
                .map(|t| t.price)
                .min()
                .unwrap_or(self.price),
            total_stock: self.total_stock,
            sold: 0,
            per_user_limit: self.per_user_limit,
            starts_at: self.starts_at,
            ends_at: self.ends_at,
            cancelled: false,
            created_at: now,
            stock_buckets: self.stock_buckets,
            event_id: self.event_id,
            tiers: self.tiers,
            quotas: self.quotas,
            seats: self.seats,
            real_name: self.real_name,
        }
    }
}

/// An event to create (the body of `POST /api/v1/admin/events`); its sessions are activities
/// created with its `event_id`.
#[derive(Debug, Clone, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NewEvent {
    /// Display title: 1 to 200 characters, no control characters.
    #[cfg_attr(
        feature = "openapi",
        schema(
            min_length = 1,
            max_length = 200,
            pattern = r"^[^\u0000-\u001F\u007F-\u009F]*[^\u0000-\u001F\u007F-\u009F \u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000][^\u0000-\u001F\u007F-\u009F]*$"
        )
    )]
    pub title: String,
    /// Where it takes place: at most 200 characters, no control characters.
    #[serde(default)]
    #[cfg_attr(
        feature = "openapi",
        schema(max_length = 200, pattern = r"^[^\u0000-\u001F\u007F-\u009F]*$")
    )]
    pub venue: String,
    /// Free text: at most 2000 characters; no control characters but newlines and tabs.
    #[serde(default)]
    #[cfg_attr(
        feature = "openapi",
        schema(
            max_length = 2000,
            pattern = r"^[^\u0000-\u0008\u000B-\u001F\u007F-\u009F]*$"
        )
    )]
    pub description: String,
}

fn one_bucket() -> u32 {
    1
}

/// A user to create; the password is already hashed (check it first with
/// [`User::check_password`]).
#[derive(Debug, Clone)]
pub struct NewUser {
    /// Unique login name.
    pub username: String,
    /// Phone number, if given.
    pub phone: Option<String>,
    /// The password's hash (a PHC string).
    pub password_hash: String,
    /// Role.
    pub role: Role,
}

impl Engine {
    /// Every activity of the catalog, read a page at a time (a failed read ends the list there).
    pub async fn all_activities(&self) -> Vec<Activity> {
        let mut page = PageRequest {
            page: 1,
            page_size: 100,
        };
        let mut all = Vec::new();
        loop {
            match self.backends().catalog.list_activities(page).await {
                Ok(list) => {
                    let last = list.items.len() < page.page_size as usize;
                    all.extend(list.items);
                    if last {
                        return all;
                    }
                    page.page += 1;
                }
                Err(err) => {
                    tracing::warn!(error = %err, "reconciler cannot list activities");
                    return all;
                }
            }
        }
    }

    /// The activities of the catalog a dashboard shows: not cancelled, and on sale within
    /// `margin` of now (starting soon, live, or ended a moment ago).
    pub async fn live_activities(&self, margin: std::time::Duration) -> Vec<Activity> {
        let now = self.now();
        let margin = chrono::Duration::from_std(margin).unwrap_or(chrono::Duration::MAX);
        let mut all = self.all_activities().await;
        all.retain(|a| {
            !a.cancelled
                && a.starts_at <= now.checked_add_signed(margin).unwrap_or(now)
                && a.ends_at >= now.checked_sub_signed(margin).unwrap_or(now)
        });
        all
    }

    /// Creates a product: checked, then stored.
    pub async fn create_product(&self, new: NewProduct) -> Result<Product> {
        let p = Product {
            id: ProductId(self.next_id()),
            name: new.name,
            description: new.description,
            list_price: new.list_price,
            created_at: self.now(),
        };
        p.validate()?;
        self.backends().catalog.insert_product(&p).await?;
        Ok(p)
    }

    /// Saves a changed product: checked, then stored (its creation time stays).
    pub async fn update_product(&self, p: &Product) -> Result<()> {
        p.validate()?;
        self.backends().catalog.update_product(p).await
    }

    /// Deletes a product that has no sale activities (`Conflict` if it has some).
    pub async fn delete_product(&self, id: ProductId) -> Result<()> {
        self.backends().catalog.delete_product(id).await
    }

    /// Creates an event: checked, then stored. Its sessions are activities created with its id.
    pub async fn create_event(&self, new: NewEvent) -> Result<Event> {
        let e = Event {
            id: EventId(self.next_id()),
            title: new.title,
            venue: new.venue,
            description: new.description,
            created_at: self.now(),
        };
        e.validate()?;
        self.backends().catalog.insert_event(&e).await?;
        Ok(e)
    }

    /// Saves a changed event: checked, then stored (its creation time stays).
    pub async fn update_event(&self, e: &Event) -> Result<()> {
        e.validate()?;
        self.backends().catalog.update_event(e).await
    }

    /// Creates an activity of an existing product: checked, then stored (`NotFound` names the
    /// product, or the event, when it does not exist). Warm it up before it starts.
    pub async fn create_activity(&self, new: NewActivity) -> Result<Activity> {
        let a = new.into_activity(ActivityId(self.next_id()), self.now());
        a.validate()?;
        let stock = &self.backends().stock;
        if (!a.tiers.is_empty() && !stock.sells_tiers())
            || (!a.seats.is_empty() && !stock.sells_seats())
            || (a.real_name && !stock.sells_holders())
        {
            return Err(Error::conflict(
                Entity::Activity,
                "to create",
                "this stock backend does not keep price tiers, seat maps or real-name holders \
                 yet (docs/adr/0021)",
            ));
        }
        if a.real_name && self.config().document_key.is_none() {
            return Err(crate::domain::holder::no_key());
        }
        let most = self.backends().stock.max_buckets();
        if a.stock_buckets > most {
            // A valid request this deployment cannot serve: a conflict with its configuration.
            return Err(Error::conflict(
                Entity::Activity,
                "to create",
                format!(
                    "this stock backend keeps at most {most} stock buckets, not {}",
                    a.stock_buckets
                ),
            ));
        }
        self.backends().catalog.insert_activity(&a).await?;
        Ok(a)
    }

    /// Creates a user: checked, then stored (`Conflict` on [`Entity::Username`] when the name
    /// is taken).
    pub async fn create_user(&self, new: NewUser) -> Result<User> {
        let u = User {
            id: UserId(self.next_id()),
            username: new.username,
            phone: new.phone,
            password_hash: new.password_hash,
            role: new.role,
            token_version: 0,
            created_at: self.now(),
        };
        u.validate()?;
        self.backends().users.insert_user(&u).await?;
        Ok(u)
    }

    /// Saves a changed user: checked, then stored.
    pub async fn update_user(&self, u: &User) -> Result<()> {
        u.validate()?;
        self.backends().users.update_user(u).await
    }

    /// Moves an order along a transition an operator may take: `pending_payment → cancelled`
    /// (its units go back to stock) and `paid → refunded` (its payment is refunded). An order
    /// becomes paid only through its payment. Asking for the status it has answers the order.
    pub async fn set_order_status(&self, id: OrderId, to: OrderStatus) -> Result<Order> {
        let orders = &self.backends().orders;
        let Some(order) = orders.order(id).await? else {
            return Err(Error::not_found(Entity::Order, id));
        };
        if order.status == to {
            return Ok(order);
        }
        let conflict = |why: String| Error::conflict(Entity::Order, id, why);
        if !order.status.can_become(to) {
            return Err(conflict(format!(
                "an order cannot go from {} to {to}",
                order.status
            )));
        }
        match to {
            OrderStatus::Cancelled => self.cancel(id, CancelReason::Admin).await,
            OrderStatus::Refunded => {
                let Some(payment) = order.payment_id else {
                    return Err(conflict("the order has no payment to refund".into()));
                };
                self.refund_payment(payment).await?;
                orders
                    .order(id)
                    .await?
                    .ok_or_else(|| Error::not_found(Entity::Order, id))
            }
            other => Err(conflict(format!(
                "an order becomes {other} only through its payment, never by hand"
            ))),
        }
    }
}
