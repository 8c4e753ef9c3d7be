//! The demo seed: a product, a live activity with stock warmed up, and an admin account, so a
//! fresh `cargo run -p seckill-server` can sell something at once. `--no-demo` turns it off.

use crate::error::ApiError;
use crate::service::users::create_user;
use crate::state::AppState;
use chrono::Duration;
use seckill_core::domain::{ActivityId, Money, ProductId, Role};
use seckill_core::engine::{NewActivity, NewProduct};

/// The demo admin's username.
pub const DEMO_ADMIN: &str = "admin";
/// The demo admin's password (only when no `admin.password` is configured).
pub const DEMO_ADMIN_PASSWORD: &str = "admin123";

/// What the demo created.
#[derive(Debug, Clone)]
pub struct Demo {
    /// The demo product.
    pub product: ProductId,
    /// The live demo activity.
    pub activity: ActivityId,
}

/// Seeds the demo data (if the catalog is empty).
pub async fn seed(
    state: &AppState,
    admin_password: Option<&str>,
) -> Result<Option<Demo>, ApiError> {
    let e = &state.engine;
    let b = e.backends();
    if b.users.user_by_name(DEMO_ADMIN).await?.is_none() {
        let password = admin_password.unwrap_or(DEMO_ADMIN_PASSWORD).to_string();
        create_user(state, DEMO_ADMIN.into(), password, None, Role::Admin).await?;
    }
    let existing = b
        .catalog
        .list_activities(seckill_core::repo::PageRequest::DEFAULT)
        .await?;
    if existing.total > 0 {
        return Ok(None);
    }
    let now = e.now();
    let product = e
        .create_product(NewProduct {
            name: "Jay Chou Carnival World Tour — Beijing, VIP stand".into(),
            description: "Demo ticket tier seeded by seckill-server".into(),
            list_price: Money(188_000),
        })
        .await?;
    let activity = e
        .create_activity(NewActivity {
            real_name: false,
            product_id: product.id,
            title: "Demo flash sale: 100 VIP tickets".into(),
            price: Money(128_000),
            total_stock: 100,
            per_user_limit: 2,
            starts_at: now - Duration::minutes(1),
            ends_at: now + Duration::days(7),
            stock_buckets: 1,
            event_id: None,
            tiers: Vec::new(),
            quotas: Vec::new(),
            seats: Vec::new(),
        })
        .await?;
    e.warm_up(activity.id).await?;
    Ok(Some(Demo {
        product: product.id,
        activity: activity.id,
    }))
}
