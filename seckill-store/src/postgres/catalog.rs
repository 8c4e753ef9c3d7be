//! The catalog of [`PgStore`]: `impl CatalogRepo` with the product and activity row mappers.

use super::map_err;
use super::store::PgStore;
use async_trait::async_trait;
use seckill_core::domain::{Activity, ActivityId, Money, Product, ProductId};
use seckill_core::repo::{CatalogRepo, Page, PageRequest};
use seckill_core::{Entity, Error, Result};
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
        stock_buckets: if r.columns().iter().any(|c| c.name() == "stock_buckets") {
            r.get::<_, i32>("stock_buckets") as u32
        } else {
            1
        },
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

    async fn insert_activity(&self, a: &Activity) -> Result<()> {
        self.exec(
            "INSERT INTO activities (id, product_id, title, price, total_stock, sold,
                     per_user_limit, starts_at, ends_at, cancelled, created_at, stock_buckets)
                 VALUES ($1, $2, $3, $4, $5, 0, $6, $7, $8, $9, $10, $11)",
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
            ],
        )
        .await
        .map_err(|e| match e {
            Error::NotFound { .. } => Error::not_found(Entity::Product, a.product_id),
            other => other,
        })?;
        Ok(())
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
