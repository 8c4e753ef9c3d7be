//! [`PgStore`]: every repository trait on one connection pool — the struct and the query helpers
//! the repositories share (`users`, `catalog`, `orders` and `payments` implement the traits).

use super::{map_err, map_pool_err};
use deadpool_postgres::{Object, Pool};
use seckill_core::repo::{Page, PageRequest};
use seckill_core::{Error, Result};
use tokio_postgres::types::ToSql;
use tokio_postgres::Row;

/// The PostgreSQL repositories.
#[derive(Clone)]
pub struct PgStore {
    pool: Pool,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore").finish_non_exhaustive()
    }
}

impl PgStore {
    /// Repositories on `pool` (migrated: see [`super::migrate`]).
    pub fn new(pool: Pool) -> Self {
        Self { pool }
    }

    pub(super) async fn client(&self) -> Result<Object> {
        self.pool.get().await.map_err(map_pool_err)
    }

    /// One statement; the number of rows it touched.
    pub(super) async fn exec(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<u64> {
        self.client()
            .await?
            .execute(sql, params)
            .await
            .map_err(map_err)
    }

    /// At most one row, mapped.
    pub(super) async fn one<T>(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
        f: impl Fn(&Row) -> Result<T>,
    ) -> Result<Option<T>> {
        let c = self.client().await?;
        c.query_opt(sql, params)
            .await
            .map_err(map_err)?
            .map(|r| f(&r))
            .transpose()
    }

    /// Every row, mapped.
    pub(super) async fn many<T>(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
        f: impl Fn(&Row) -> Result<T>,
    ) -> Result<Vec<T>> {
        let c = self.client().await?;
        c.query(sql, params)
            .await
            .map_err(map_err)?
            .iter()
            .map(f)
            .collect()
    }

    /// One page of a whole table in `order`, with the table's row count.
    pub(super) async fn paged<T>(
        &self,
        table: &str,
        order: &str,
        p: PageRequest,
        f: impl Fn(&Row) -> Result<T>,
    ) -> Result<Page<T>> {
        let c = self.client().await?;
        let rows = c
            .query(
                &format!("SELECT * FROM {table} ORDER BY {order} LIMIT $1 OFFSET $2"),
                &[&i64::from(p.page_size), &(p.offset() as i64)],
            )
            .await
            .map_err(map_err)?;
        let total: i64 = c
            .query_one(&format!("SELECT count(*) FROM {table}"), &[])
            .await
            .map_err(map_err)?
            .get(0);
        let items = rows.iter().map(f).collect::<Result<_>>()?;
        Ok(page(items, total, p))
    }
}

pub(super) fn bad(what: &str, v: &str) -> Error {
    Error::backend(
        "postgres",
        format!("unexpected {what} {v:?} in the database"),
    )
}

pub(super) fn page<T>(items: Vec<T>, total: i64, p: PageRequest) -> Page<T> {
    Page {
        items,
        total: total as u64,
        page: p.page,
        page_size: p.page_size,
    }
}
