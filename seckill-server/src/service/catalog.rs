//! Products, events and activities: as buyers see them (with live stock) and as admins change
//! them.

use crate::error::ApiError;
use crate::state::AppState;
use seckill_core::domain::{
    Activity, ActivityId, ActivityStatus, Event, EventId, Money, Product, ProductId, Quota,
    SeatBlock,
};
use seckill_core::engine::{NewActivity, NewEvent, NewProduct, ReconcileReport};
use seckill_core::repo::{Page, PageRequest};
use seckill_core::stock::StockSnapshot;
use seckill_core::{Entity, Error, Timestamp};
use serde::{Deserialize, Serialize};

/// An activity with its clock-derived status and live stock.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ActivityView {
    /// Its id.
    pub id: ActivityId,
    /// What is sold.
    pub product_id: ProductId,
    /// Display title.
    pub title: String,
    /// Sale price of one unit.
    pub price: Money,
    /// Units for sale.
    pub total_stock: u32,
    /// Most units one buyer may hold.
    pub per_user_limit: u32,
    /// Sale opens (inclusive).
    #[schema(value_type = String, format = DateTime)]
    pub starts_at: Timestamp,
    /// Sale closes (exclusive).
    #[schema(value_type = String, format = DateTime)]
    pub ends_at: Timestamp,
    /// Where it stands now.
    pub status: ActivityStatus,
    /// Units still available in the stock backend (`null` until warmed up).
    pub available: Option<i64>,
    /// Stock buckets its stock is split into (docs/adr/0020).
    pub stock_buckets: u32,
    /// The event it is a session of (`null` for a plain sale; docs/adr/0021).
    pub event_id: Option<EventId>,
    /// Its price tiers with their live availability (empty for a plain sale).
    pub tiers: Vec<TierView>,
    /// Its quotas over tiers.
    pub quotas: Vec<Quota>,
    /// Whether each ticket names its holder (a buy gives one holder per ticket; one identity
    /// document, one ticket of the session).
    pub real_name: bool,
}

/// A session's seat map and which seats are taken now.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SeatMapView {
    /// The session.
    pub activity_id: ActivityId,
    /// Its blocks of seats, best first (empty for an unseated session).
    pub blocks: Vec<SeatBlock>,
    /// Seats held or sold now, sorted (empty until warmed up).
    pub taken: Vec<String>,
}

/// A price tier as buyers see it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TierView {
    /// Its number (what a buy's `lines` name).
    pub id: u32,
    /// Display name.
    pub name: String,
    /// Price of one ticket.
    pub price: Money,
    /// Its tickets for sale.
    pub stock: u32,
    /// Tickets of it one can buy now: its own left, within the session's capacity and its
    /// quotas (`null` until warmed up).
    pub available: Option<i64>,
}

/// An event with its sessions, each with its status and live stock.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct EventView {
    /// The event.
    #[serde(flatten)]
    pub event: Event,
    /// Its sessions (activities), earliest first.
    pub sessions: Vec<ActivityView>,
}

/// The fields of an event an admin changes, absent ones kept (the body of `PUT
/// /api/v1/admin/events/{id}`; the result obeys [`Event::validate`]).
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EventChange {
    /// New title: 1 to 200 characters, no control characters.
    #[serde(default)]
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\u0000-\u001F\u007F-\u009F]*[^\u0000-\u001F\u007F-\u009F \u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000][^\u0000-\u001F\u007F-\u009F]*$"
    )]
    pub title: Option<String>,
    /// New venue: at most 200 characters, no control characters.
    #[serde(default)]
    #[schema(max_length = 200, pattern = r"^[^\u0000-\u001F\u007F-\u009F]*$")]
    pub venue: Option<String>,
    /// New description: at most 2000 characters.
    #[serde(default)]
    #[schema(
        max_length = 2000,
        pattern = r"^[^\u0000-\u0008\u000B-\u001F\u007F-\u009F]*$"
    )]
    pub description: Option<String>,
}

/// An activity's status.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct StatusView {
    id: ActivityId,
    status: ActivityStatus,
    available: Option<i64>,
    #[schema(value_type = String, format = DateTime)]
    starts_at: Timestamp,
    #[schema(value_type = String, format = DateTime)]
    ends_at: Timestamp,
    #[schema(value_type = String, format = DateTime)]
    server_time: Timestamp,
}

/// Stock figures of one activity.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ActivityStock {
    activity_id: ActivityId,
    title: String,
    status: ActivityStatus,
    total: u32,
    /// Units left to buy (from the stock backend once warmed up, else total − sold).
    available: i64,
    /// Units in holds whose order is not written yet.
    held: u32,
    sold: u32,
    warmed_up: bool,
}

/// A product's stock: the stock of its sale activities (seckill-rs keeps stock per activity).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ProductStock {
    product_id: ProductId,
    /// Units left over the activities that have not ended.
    available: i64,
    activities: Vec<ActivityStock>,
}

/// The fields of an activity an admin changes, absent ones kept (the body of `PUT
/// /api/v1/admin/seckill/activities/{id}`; the result obeys [`Activity::validate`]).
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ActivityChange {
    /// New title: 1 to 200 characters, no control characters.
    #[serde(default)]
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\u0000-\u001F\u007F-\u009F]*[^\u0000-\u001F\u007F-\u009F \u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000][^\u0000-\u001F\u007F-\u009F]*$"
    )]
    pub title: Option<String>,
    /// New price (not negative).
    #[serde(default)]
    #[schema(value_type = Option<i64>, minimum = 0)]
    pub price: Option<Money>,
    /// New total stock: 1 to 10,000,000, never below the units held or sold.
    #[serde(default)]
    #[schema(minimum = 1, maximum = 10_000_000)]
    pub total_stock: Option<u32>,
    /// New per-user limit (at least 1).
    #[serde(default)]
    #[schema(minimum = 1)]
    pub per_user_limit: Option<u32>,
    /// New opening.
    #[serde(default)]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub starts_at: Option<Timestamp>,
    /// New closing.
    #[serde(default)]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub ends_at: Option<Timestamp>,
    /// `true` calls the sale off.
    #[serde(default)]
    pub cancelled: Option<bool>,
}

/// The fields of a product an admin changes, absent ones kept (the body of `PUT
/// /api/v1/admin/products/{id}`; the result obeys [`Product::validate`]).
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProductChange {
    /// New name: 1 to 200 characters, no control characters.
    #[serde(default)]
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\u0000-\u001F\u007F-\u009F]*[^\u0000-\u001F\u007F-\u009F \u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000][^\u0000-\u001F\u007F-\u009F]*$"
    )]
    pub name: Option<String>,
    /// New description: at most 2000 characters.
    #[serde(default)]
    #[schema(
        max_length = 2000,
        pattern = r"^[^\u0000-\u0008\u000B-\u001F\u007F-\u009F]*$"
    )]
    pub description: Option<String>,
    /// New list price (not negative).
    #[serde(default)]
    #[schema(value_type = Option<i64>, minimum = 0)]
    pub list_price: Option<Money>,
}

/// An activity as buyers see it.
pub async fn view(s: &AppState, a: Activity) -> Result<ActivityView, ApiError> {
    let stock = &s.engine.backends().stock;
    let available = stock.snapshot(a.id).await?.map(|x| x.available.max(0));
    let tiers = if a.tiers.is_empty() {
        Vec::new()
    } else {
        let live = stock.tiers(a.id).await?;
        a.tiers
            .iter()
            .map(|t| TierView {
                id: t.id,
                name: t.name.clone(),
                price: t.price,
                stock: t.stock,
                available: available.and_then(|cap| {
                    let own = live.iter().find(|x| x.tier == t.id)?.available;
                    let quotas = a
                        .quotas
                        .iter()
                        .filter(|q| q.tiers.contains(&t.id))
                        .map(|q| {
                            i64::from(q.cap) - seckill_core::stock::quota_taken(q, &live) as i64
                        });
                    Some(quotas.fold(own.min(cap), i64::min).max(0))
                }),
            })
            .collect()
    };
    Ok(ActivityView {
        tiers,
        quotas: a.quotas.clone(),
        status: a.status_at(s.engine.now()),
        id: a.id,
        product_id: a.product_id,
        title: a.title,
        price: a.price,
        total_stock: a.total_stock,
        per_user_limit: a.per_user_limit,
        starts_at: a.starts_at,
        ends_at: a.ends_at,
        available,
        stock_buckets: a.stock_buckets,
        event_id: a.event_id,
        real_name: a.real_name,
    })
}

/// Reads an activity or answers 3001 (from the primary: for changes and what follows them).
pub async fn find_activity(s: &AppState, id: ActivityId) -> Result<Activity, ApiError> {
    found(
        s.engine.backends().catalog.activity(id).await?,
        Entity::Activity,
        id,
    )
}

/// Reads a product or answers 6001 (from the primary: for changes and what follows them).
pub async fn find_product(s: &AppState, id: ProductId) -> Result<Product, ApiError> {
    found(
        s.engine.backends().catalog.product(id).await?,
        Entity::Product,
        id,
    )
}

/// Reads a product for display or answers 6001 (from a read replica when there are any).
pub async fn read_product(s: &AppState, id: ProductId) -> Result<Product, ApiError> {
    found(
        s.engine.backends().read().catalog.product(id).await?,
        Entity::Product,
        id,
    )
}

fn found<T>(row: Option<T>, entity: Entity, id: impl std::fmt::Display) -> Result<T, ApiError> {
    row.ok_or_else(|| Error::not_found(entity, id).into())
}

/// One activity as buyers see it (from a read replica when there are any).
pub async fn activity(s: &AppState, id: ActivityId) -> Result<ActivityView, ApiError> {
    let a = found(
        s.engine.backends().read().catalog.activity(id).await?,
        Entity::Activity,
        id,
    )?;
    view(s, a).await
}

/// A session's seat map with its taken seats (the map from a read replica when there are any,
/// the seats live from the stock backend).
pub async fn seat_map(s: &AppState, id: ActivityId) -> Result<SeatMapView, ApiError> {
    let a = found(
        s.engine.backends().read().catalog.activity(id).await?,
        Entity::Activity,
        id,
    )?;
    let mut taken = if a.seats.is_empty() {
        Vec::new()
    } else {
        s.engine.backends().stock.taken_seats(id).await?
    };
    taken.sort();
    Ok(SeatMapView {
        activity_id: id,
        blocks: a.seats,
        taken,
    })
}

/// One activity's status and the server's clock.
pub async fn activity_status(s: &AppState, id: ActivityId) -> Result<StatusView, ApiError> {
    let v = activity(s, id).await?;
    Ok(StatusView {
        id: v.id,
        status: v.status,
        available: v.available,
        starts_at: v.starts_at,
        ends_at: v.ends_at,
        server_time: s.engine.now(),
    })
}

/// A page of activities as buyers see them.
pub async fn list_activities(
    s: &AppState,
    page: PageRequest,
) -> Result<Page<ActivityView>, ApiError> {
    let page = s
        .engine
        .backends()
        .read()
        .catalog
        .list_activities(page)
        .await?;
    let mut items = Vec::with_capacity(page.items.len());
    for a in page.items {
        items.push(view(s, a).await?);
    }
    Ok(Page {
        items,
        total: page.total,
        page: page.page,
        page_size: page.page_size,
    })
}

/// A page of products.
pub async fn list_products(s: &AppState, page: PageRequest) -> Result<Page<Product>, ApiError> {
    Ok(s.engine
        .backends()
        .read()
        .catalog
        .list_products(page)
        .await?)
}

/// The stock figures of an activity, live from the stock backend when warmed up.
pub async fn activity_stock(s: &AppState, a: Activity) -> Result<ActivityStock, ApiError> {
    let snap = s.engine.backends().stock.snapshot(a.id).await?;
    let status = a.status_at(s.engine.now());
    Ok(match snap {
        Some(x) => ActivityStock {
            activity_id: a.id,
            title: a.title,
            status,
            total: x.total,
            available: x.available.max(0),
            held: x.held,
            sold: x.sold,
            warmed_up: true,
        },
        None => ActivityStock {
            activity_id: a.id,
            title: a.title,
            status,
            total: a.total_stock,
            available: i64::from(a.total_stock) - i64::from(a.sold),
            held: 0,
            sold: a.sold,
            warmed_up: false,
        },
    })
}

/// A product's live stock over its activities.
pub async fn product_stock(s: &AppState, id: ProductId) -> Result<ProductStock, ApiError> {
    read_product(s, id).await?;
    let mut activities = Vec::new();
    for a in s
        .engine
        .backends()
        .read()
        .catalog
        .product_activities(id)
        .await?
    {
        activities.push(activity_stock(s, a).await?);
    }
    let available = activities
        .iter()
        .filter(|a| !matches!(a.status, ActivityStatus::Ended | ActivityStatus::Cancelled))
        .map(|a| a.available)
        .sum();
    Ok(ProductStock {
        product_id: id,
        available,
        activities,
    })
}

/// Creates a product (the engine checks it).
pub async fn create_product(s: &AppState, new: NewProduct) -> Result<Product, ApiError> {
    Ok(s.engine.create_product(new).await?)
}

/// Changes a product's fields.
pub async fn update_product(
    s: &AppState,
    id: ProductId,
    change: ProductChange,
) -> Result<Product, ApiError> {
    let old = find_product(s, id).await?;
    let p = Product {
        name: change.name.unwrap_or(old.name),
        description: change.description.unwrap_or(old.description),
        list_price: change.list_price.unwrap_or(old.list_price),
        ..old
    };
    s.engine.update_product(&p).await?;
    Ok(p)
}

/// Deletes a product without activities.
pub async fn delete_product(s: &AppState, id: ProductId) -> Result<(), ApiError> {
    Ok(s.engine.delete_product(id).await?)
}

/// A page of events, newest first (from a read replica when there are any).
pub async fn list_events(s: &AppState, page: PageRequest) -> Result<Page<Event>, ApiError> {
    Ok(s.engine.backends().read().catalog.list_events(page).await?)
}

/// One event with its sessions and their live stock (from a read replica when there are any).
pub async fn event(s: &AppState, id: EventId) -> Result<EventView, ApiError> {
    let catalog = &s.engine.backends().read().catalog;
    let event = found(catalog.event(id).await?, Entity::Event, id)?;
    let mut sessions = Vec::new();
    for a in catalog.event_activities(id).await? {
        sessions.push(view(s, a).await?);
    }
    Ok(EventView { event, sessions })
}

/// Creates an event (the engine checks it).
pub async fn create_event(s: &AppState, new: NewEvent) -> Result<Event, ApiError> {
    Ok(s.engine.create_event(new).await?)
}

/// Changes an event's fields.
pub async fn update_event(
    s: &AppState,
    id: EventId,
    change: EventChange,
) -> Result<Event, ApiError> {
    let old = found(
        s.engine.backends().catalog.event(id).await?,
        Entity::Event,
        id,
    )?;
    let e = Event {
        title: change.title.unwrap_or(old.title),
        venue: change.venue.unwrap_or(old.venue),
        description: change.description.unwrap_or(old.description),
        ..old
    };
    s.engine.update_event(&e).await?;
    Ok(e)
}

/// Creates an activity (the engine checks it).
pub async fn create_activity(s: &AppState, new: NewActivity) -> Result<Activity, ApiError> {
    Ok(s.engine.create_activity(new).await?)
}

/// Changes an activity's fields, through the engine (under the activity's lock; a warmed-up
/// activity's stock follows at once).
pub async fn update_activity(
    s: &AppState,
    id: ActivityId,
    change: ActivityChange,
) -> Result<Activity, ApiError> {
    let old = find_activity(s, id).await?;
    let a = Activity {
        title: change.title.unwrap_or_else(|| old.title.clone()),
        price: change.price.unwrap_or(old.price),
        total_stock: change.total_stock.unwrap_or(old.total_stock),
        per_user_limit: change.per_user_limit.unwrap_or(old.per_user_limit),
        starts_at: change.starts_at.unwrap_or(old.starts_at),
        ends_at: change.ends_at.unwrap_or(old.ends_at),
        cancelled: change.cancelled.unwrap_or(old.cancelled),
        ..old
    };
    s.engine.update_activity(&a).await?;
    find_activity(s, id).await
}

/// Sets the total stock of one of a product's activities (stock lives per activity); never
/// below what is held or sold.
pub async fn set_product_stock(
    s: &AppState,
    product: ProductId,
    activity: ActivityId,
    total_stock: u32,
) -> Result<ActivityStock, ApiError> {
    find_product(s, product).await?;
    let a = find_activity(s, activity).await?;
    if a.product_id != product {
        return Err(
            Error::not_found(Entity::Activity, format!("{activity} of product {product}")).into(),
        );
    }
    let change = ActivityChange {
        total_stock: Some(total_stock),
        ..ActivityChange::default()
    };
    let a = update_activity(s, activity, change).await?;
    activity_stock(s, a).await
}

/// Loads an activity's stock (idempotent; never re-sells).
pub async fn warm_up(s: &AppState, id: ActivityId) -> Result<StockSnapshot, ApiError> {
    Ok(s.engine.warm_up(id).await?)
}

/// Checks (and with `repair`, fixes) an activity's books.
pub async fn reconcile(
    s: &AppState,
    id: ActivityId,
    repair: bool,
) -> Result<ReconcileReport, ApiError> {
    Ok(s.engine.reconcile(id, repair).await?)
}
