//! The catalog of [`PgStore`]: `impl CatalogRepo` with the product, event and activity row
//! mappers.

use super::map_err;
use super::store::PgStore;
use async_trait::async_trait;
use seckill_core::domain::{Activity, ActivityId, Event, EventId, Money, Product, ProductId};
use seckill_core::repo::{CatalogRepo, Page, PageRequest};
use seckill_core::{Entity, Error, Result};
use tokio_postgres::types::Json;
use tokio_postgres::Row;

fn product(r: &Row) -> Result<Product> {
    Ok(Product {
        id: ProductId(r.get("id")),
        name: r.get("name"),
        description: r.get("description"),
        list_price: Money(r.get("list_price")),
        created_at: r.get("created_at"),
    })
}

fn event(r: &Row) -> Result<Event> {
    Ok(Event {
        id: EventId(r.get("id")),
        title: r.get("title"),
        venue: r.get("venue"),
        description: r.get("description"),
        created_at: r.get("created_at"),
    })
}

/// Whether the row has `column` (a schema older than the migration that added it does not).
fn has(r: &Row, column: &str) -> bool {
    r.columns().iter().any(|c| c.name() == column)
}

/// A JSONB list column, empty when the schema predates it; one that does not decode (written
/// by a newer release) is an error, never a panic.
pub(super) fn json_column<T: serde::de::DeserializeOwned>(r: &Row, column: &str) -> Result<Vec<T>> {
    if !has(r, column) {
        return Ok(Vec::new());
    }
    r.try_get::<_, Json<Vec<T>>>(column)
        .map(|j| j.0)
        .map_err(|e| Error::backend("postgres", format!("column {column}: {e}")))
}

fn activity(r: &Row) -> Result<Activity> {
    Ok(Activity {
        id: ActivityId(r.get("id")),
        product_id: ProductId(r.get("product_id")),
        title: r.get("title"),
        price: Money(r.get("price")),
        total_stock: r.get::<_, i32>("total_stock") as u32,
        sold: r.get::<_, i32>("sold") as u32,
        per_user_limit: r.get::<_, i32>("per_user_limit") as u32,
        starts_at: r.get("starts_at"),
        ends_at: r.get("ends_at"),
        cancelled: r.get("cancelled"),
        created_at: r.get("created_at"),
        // A schema before migration 7 has no column: one bucket, as every activity there.
        stock_buckets: if has(r, "stock_buckets") {
            r.get::<_, i32>("stock_buckets") as u32
        } else {
            1
        },
        // Before migration 8 there are no events.
        event_id: if has(r, "event_id") {
            r.get::<_, Option<i64>>("event_id").map(EventId)
        } else {
            None
        },
        // Before migration 9 there are no tiers.
        tiers: json_column(r, "tiers")?,
        quotas: json_column(r, "quotas")?,
        // Before migration 10 there are no seat maps.
        seats: json_column(r, "seats")?,
        // Before migration 11 no session is real-name.
        real_name: has(r, "real_name") && r.get::<_, bool>("real_name"),
    })
}

#[async_trait]
impl CatalogRepo for PgStore {
    async fn insert_product(&self, p: &Product) -> Result<()> {
        self.exec(
            "INSERT INTO products (id, name, description, list_price, created_at)
                 VALUES ($1, $2, $3, $4, $5)",
            &[
                &p.id.0,
                &p.name,
                &p.description,
                &p.list_price.0,
                &p.created_at,
            ],
        )
        .await?;
        Ok(())
    }

    async fn product(&self, id: ProductId) -> Result<Option<Product>> {
        self.one("SELECT * FROM products WHERE id = $1", &[&id.0], product)
            .await
    }

    async fn list_products(&self, p: PageRequest) -> Result<Page<Product>> {
        self.paged("products", "id DESC", p, product).await
    }

    async fn update_product(&self, p: &Product) -> Result<()> {
        let n = self
            .exec(
                "UPDATE products SET name = $2, description = $3, list_price = $4 WHERE id = $1",
                &[&p.id.0, &p.name, &p.description, &p.list_price.0],
            )
            .await?;
        if n == 0 {
            return Err(Error::not_found(Entity::Product, p.id));
        }
        Ok(())
    }

    async fn delete_product(&self, id: ProductId) -> Result<()> {
        let n = self
            .exec(
                "DELETE FROM products WHERE id = $1
                   AND NOT EXISTS (SELECT 1 FROM activities WHERE product_id = $1)",
                &[&id.0],
            )
            .await?;
        if n == 1 {
            return Ok(());
        }
        match self.product(id).await? {
            None => Err(Error::not_found(Entity::Product, id)),
            Some(_) => Err(Error::conflict(
                Entity::Product,
                id,
                "the product has sale activities",
            )),
        }
    }

    async fn product_activities(&self, id: ProductId) -> Result<Vec<Activity>> {
        self.many(
            "SELECT * FROM activities WHERE product_id = $1 ORDER BY starts_at DESC, id DESC",
            &[&id.0],
            activity,
        )
        .await
    }

    async fn insert_event(&self, e: &Event) -> Result<()> {
        self.exec(
            "INSERT INTO events (id, title, venue, description, created_at)
                 VALUES ($1, $2, $3, $4, $5)",
            &[&e.id.0, &e.title, &e.venue, &e.description, &e.created_at],
        )
        .await?;
        Ok(())
    }

    async fn event(&self, id: EventId) -> Result<Option<Event>> {
        self.one("SELECT * FROM events WHERE id = $1", &[&id.0], event)
            .await
    }

    async fn list_events(&self, p: PageRequest) -> Result<Page<Event>> {
        self.paged("events", "id DESC", p, event).await
    }

    async fn update_event(&self, e: &Event) -> Result<()> {
        let n = self
            .exec(
                "UPDATE events SET title = $2, venue = $3, description = $4 WHERE id = $1",
                &[&e.id.0, &e.title, &e.venue, &e.description],
            )
            .await?;
        if n == 0 {
            return Err(Error::not_found(Entity::Event, e.id));
        }
        Ok(())
    }

    async fn event_activities(&self, id: EventId) -> Result<Vec<Activity>> {
        self.many(
            "SELECT * FROM activities WHERE event_id = $1 ORDER BY starts_at, id",
            &[&id.0],
            activity,
        )
        .await
    }

    async fn insert_activity(&self, a: &Activity) -> Result<()> {
        let event = a.event_id.map(|e| e.0);
        let r = self
            .exec(
                "INSERT INTO activities (id, product_id, title, price, total_stock, sold,
                     per_user_limit, starts_at, ends_at, cancelled, created_at, stock_buckets,
                     event_id, tiers, quotas, seats, real_name)
                 VALUES ($1, $2, $3, $4, $5, 0, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15,
                     $16)",
                &[
                    &a.id.0,
                    &a.product_id.0,
                    &a.title,
                    &a.price.0,
                    &(a.total_stock as i32),
                    &(a.per_user_limit as i32),
                    &a.starts_at,
                    &a.ends_at,
                    &a.cancelled,
                    &a.created_at,
                    &(a.stock_buckets as i32),
                    &event,
                    &Json(&a.tiers),
                    &Json(&a.quotas),
                    &Json(&a.seats),
                    &a.real_name,
                ],
            )
            .await;
        match r {
            Ok(_) => Ok(()),
            // A foreign key: the product's or the event's.
            Err(Error::NotFound { .. }) => match a.event_id {
                // The product is named first, as the memory store does.
                Some(e) if self.product(a.product_id).await?.is_some() => {
                    Err(Error::not_found(Entity::Event, e))
                }
                _ => Err(Error::not_found(Entity::Product, a.product_id)),
            },
            Err(other) => Err(other),
        }
    }

    async fn activity(&self, id: ActivityId) -> Result<Option<Activity>> {
        self.one("SELECT * FROM activities WHERE id = $1", &[&id.0], activity)
            .await
    }

    async fn list_activities(&self, p: PageRequest) -> Result<Page<Activity>> {
        self.paged("activities", "starts_at DESC, id DESC", p, activity)
            .await
    }

    async fn update_activity(&self, a: &Activity, fence: u64) -> Result<()> {
        let fence_sql = i64::try_from(fence).map_err(|_| Error::invalid("fence above 2^63"))?;
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(map_err)?;
        let n = tx
            .execute(
                "UPDATE activities SET product_id = $2, title = $3, price = $4, total_stock = $5,
                     per_user_limit = $6, starts_at = $7, ends_at = $8, cancelled = $9,
                     fence = GREATEST(fence, $10::BIGINT)
                 WHERE id = $1 AND sold <= $5 AND ($10::BIGINT = 0 OR fence <= $10::BIGINT)",
                &[
                    &a.id.0,
                    &a.product_id.0,
                    &a.title,
                    &a.price.0,
                    &(a.total_stock as i32),
                    &(a.per_user_limit as i32),
                    &a.starts_at,
                    &a.ends_at,
                    &a.cancelled,
                    &fence_sql,
                ],
            )
            .await
            .map_err(map_err)?;
        if n == 0 {
            return match tx
                .query_opt(
                    "SELECT sold, fence FROM activities WHERE id = $1",
                    &[&a.id.0],
                )
                .await
                .map_err(map_err)?
            {
                None => Err(Error::not_found(Entity::Activity, a.id)),
                Some(r) if fence_sql > 0 && r.get::<_, i64>(1) > fence_sql => Err(
                    seckill_core::lock::stale_fence(a.id, fence, r.get::<_, i64>(1) as u64),
                ),
                Some(r) => Err(Error::conflict(
                    Entity::Activity,
                    a.id,
                    format!(
                        "total_stock {} is below the {} units already sold",
                        a.total_stock,
                        r.get::<_, i32>(0)
                    ),
                )),
            };
        }
        tx.execute(
            "UPDATE activity_user_units SET per_user_limit = $2 WHERE activity_id = $1",
            &[&a.id.0, &(a.per_user_limit as i32)],
        )
        .await
        .map_err(|e| match map_err(e) {
            Error::Conflict { .. } => Error::conflict(
                Entity::Activity,
                a.id,
                "per_user_limit is below the units a buyer already has in orders",
            ),
            other => other,
        })?;
        tx.commit().await.map_err(map_err)
    }
}
