//! The catalog of [`MemoryStore`]: `impl CatalogRepo` (products, events and sale activities).

use super::store::MemoryStore;
use crate::domain::{Activity, ActivityId, Event, EventId, Product, ProductId};
use crate::repo::{CatalogRepo, Page, PageRequest};
use crate::{Entity, Error, Result};
use async_trait::async_trait;

#[async_trait]
impl CatalogRepo for MemoryStore {
    async fn insert_product(&self, p: &Product) -> Result<()> {
        let mut t = self.t.lock();
        if t.products.contains_key(&p.id) {
            return Err(Error::conflict(Entity::Product, p.id, "the product exists"));
        }
        t.products.insert(p.id, p.clone());
        Ok(())
    }

    async fn product(&self, id: ProductId) -> Result<Option<Product>> {
        Ok(self.t.lock().products.get(&id).cloned())
    }

    async fn list_products(&self, page: PageRequest) -> Result<Page<Product>> {
        let t = self.t.lock();
        let all: Vec<Product> = t.products.values().rev().cloned().collect();
        Ok(page.slice(&all))
    }

    async fn update_product(&self, p: &Product) -> Result<()> {
        let mut t = self.t.lock();
        let Some(old) = t.products.get_mut(&p.id) else {
            return Err(Error::not_found(Entity::Product, p.id));
        };
        *old = Product {
            created_at: old.created_at,
            ..p.clone()
        };
        Ok(())
    }

    async fn delete_product(&self, id: ProductId) -> Result<()> {
        let mut t = self.t.lock();
        if !t.products.contains_key(&id) {
            return Err(Error::not_found(Entity::Product, id));
        }
        if t.activities.values().any(|a| a.product_id == id) {
            return Err(Error::conflict(
                Entity::Product,
                id,
                "the product has sale activities",
            ));
        }
        t.products.remove(&id);
        Ok(())
    }

    async fn product_activities(&self, id: ProductId) -> Result<Vec<Activity>> {
        let t = self.t.lock();
        let mut v: Vec<Activity> = t
            .activities
            .values()
            .filter(|a| a.product_id == id)
            .cloned()
            .collect();
        v.sort_by_key(|a| std::cmp::Reverse((a.starts_at, a.id)));
        Ok(v)
    }

    async fn insert_event(&self, e: &Event) -> Result<()> {
        let mut t = self.t.lock();
        if t.events.contains_key(&e.id) {
            return Err(Error::conflict(Entity::Event, e.id, "the event exists"));
        }
        t.events.insert(e.id, e.clone());
        Ok(())
    }

    async fn event(&self, id: EventId) -> Result<Option<Event>> {
        Ok(self.t.lock().events.get(&id).cloned())
    }

    async fn list_events(&self, page: PageRequest) -> Result<Page<Event>> {
        let t = self.t.lock();
        let all: Vec<Event> = t.events.values().rev().cloned().collect();
        Ok(page.slice(&all))
    }

    async fn update_event(&self, e: &Event) -> Result<()> {
        let mut t = self.t.lock();
        let Some(old) = t.events.get_mut(&e.id) else {
            return Err(Error::not_found(Entity::Event, e.id));
        };
        *old = Event {
            created_at: old.created_at,
            ..e.clone()
        };
        Ok(())
    }

    async fn event_activities(&self, id: EventId) -> Result<Vec<Activity>> {
        let t = self.t.lock();
        let mut v: Vec<Activity> = t
            .activities
            .values()
            .filter(|a| a.event_id == Some(id))
            .cloned()
            .collect();
        v.sort_by_key(|a| (a.starts_at, a.id));
        Ok(v)
    }

    async fn insert_activity(&self, a: &Activity) -> Result<()> {
        let mut t = self.t.lock();
        if !t.products.contains_key(&a.product_id) {
            return Err(Error::not_found(Entity::Product, a.product_id));
        }
        if let Some(e) = a.event_id.filter(|e| !t.events.contains_key(e)) {
            return Err(Error::not_found(Entity::Event, e));
        }
        if t.activities.contains_key(&a.id) {
            return Err(Error::conflict(
                Entity::Activity,
                a.id,
                "the activity exists",
            ));
        }
        t.activities.insert(a.id, a.clone());
        Ok(())
    }

    async fn activity(&self, id: ActivityId) -> Result<Option<Activity>> {
        Ok(self.t.lock().activities.get(&id).cloned())
    }

    async fn list_activities(&self, page: PageRequest) -> Result<Page<Activity>> {
        let t = self.t.lock();
        let mut all: Vec<Activity> = t.activities.values().cloned().collect();
        all.sort_by_key(|a| std::cmp::Reverse((a.starts_at, a.id)));
        Ok(page.slice(&all))
    }

    async fn update_activity(&self, a: &Activity, fence: u64) -> Result<()> {
        let mut t = self.t.lock();
        let newest = t.fences.get(&a.id).copied().unwrap_or(0);
        let Some(old) = t.activities.get_mut(&a.id) else {
            return Err(Error::not_found(Entity::Activity, a.id));
        };
        if fence > 0 && fence < newest {
            return Err(crate::lock::stale_fence(a.id, fence, newest));
        }
        if a.total_stock < old.sold {
            return Err(Error::conflict(
                Entity::Activity,
                a.id,
                format!(
                    "total_stock {} is below the {} units already sold",
                    a.total_stock, old.sold
                ),
            ));
        }
        let (sold, stock_buckets, event_id) = (old.sold, old.stock_buckets, old.event_id);
        *old = Activity {
            sold,
            stock_buckets,
            event_id,
            ..a.clone()
        };
        if fence > newest {
            t.fences.insert(a.id, fence);
        }
        Ok(())
    }
}
