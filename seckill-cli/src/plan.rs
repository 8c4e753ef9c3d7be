//! `seckill events create --file`: an event, its product and its sessions (tiers, quotas, seat
//! maps, real names) from one JSON or TOML file, checked whole by the domain's own rules
//! (`seckill_core`'s [`Event::validate`] and [`Activity::validate`]) before anything is
//! created, then created through the admin API in order: product, event, sessions, warm-ups.
//!
//! ```toml
//! title = "Jay Chou 2027"
//! venue = "Shanghai Stadium"
//! [product]                      # or: product_id = "…" (an existing product)
//! name = "Jay Chou 2027 ticket"
//! list_price = 38000
//! [[sessions]]
//! title = "Saturday night"
//! starts_at = "2027-06-05T19:30:00+08:00"
//! ends_at = "2027-06-05T23:00:00+08:00"
//! total_stock = 300
//! per_user_limit = 4
//! real_name = true
//! tiers = [{ id = 1, name = "380", price = 38000, stock = 280 },
//!          { id = 2, name = "VIP", price = 128000, stock = 20 }]
//! seats = [{ section = "VIP", row = "1", tier = 2, from = 1, to = 20 }]
//! ```

use seckill_core::domain::{
    Activity, ActivityId, Event, EventId, Money, ProductId, Quota, SeatBlock, Tier,
};
use serde::Deserialize;
use serde_json::{json, Value};

/// The whole file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventPlan {
    /// The event's title.
    pub title: String,
    /// Its venue.
    #[serde(default)]
    pub venue: String,
    /// Its description.
    #[serde(default)]
    pub description: String,
    /// An existing product the sessions sell, or
    #[serde(default)]
    pub product_id: Option<String>,
    /// a product to create first.
    #[serde(default)]
    pub product: Option<NewProduct>,
    /// Its sessions, at least one.
    pub sessions: Vec<SessionPlan>,
}

/// A product to create.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewProduct {
    /// Name.
    pub name: String,
    /// List price, minor units.
    pub list_price: i64,
    /// Description.
    #[serde(default)]
    pub description: String,
}

/// One session.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionPlan {
    /// Title.
    pub title: String,
    /// Sale opens (RFC 3339).
    pub starts_at: chrono::DateTime<chrono::FixedOffset>,
    /// Sale closes (RFC 3339).
    pub ends_at: chrono::DateTime<chrono::FixedOffset>,
    /// Capacity (with tiers: at most their stock together; default: their stock together).
    #[serde(default)]
    pub total_stock: Option<u32>,
    /// Most tickets per buyer.
    #[serde(default = "one")]
    pub per_user_limit: u32,
    /// Price of a plain session (with tiers: the cheapest tier's, the default).
    #[serde(default)]
    pub price: Option<i64>,
    /// Price tiers.
    #[serde(default)]
    pub tiers: Vec<Tier>,
    /// Quotas over tiers.
    #[serde(default)]
    pub quotas: Vec<Quota>,
    /// Seat map.
    #[serde(default)]
    pub seats: Vec<SeatBlock>,
    /// Real-name tickets.
    #[serde(default)]
    pub real_name: bool,
    /// Warm its stock up once created (default true).
    #[serde(default = "yes")]
    pub warm_up: bool,
}

fn one() -> u32 {
    1
}

fn yes() -> bool {
    true
}

impl SessionPlan {
    /// The admin API's body for it (`product`, `event` the ids it is created under).
    pub fn body(&self, product: &str, event: &str) -> Value {
        let price = self
            .price
            .or_else(|| self.tiers.iter().map(|t| t.price.0).min())
            .unwrap_or(0);
        let total = self
            .total_stock
            .unwrap_or_else(|| self.tiers.iter().map(|t| t.stock).sum());
        json!({
            "product_id": product, "event_id": event, "title": self.title, "price": price,
            "total_stock": total, "per_user_limit": self.per_user_limit,
            "starts_at": self.starts_at, "ends_at": self.ends_at,
            "tiers": self.tiers, "quotas": self.quotas, "seats": self.seats,
            "real_name": self.real_name,
        })
    }

    /// The session as the domain would store it (placeholder ids), for its rules.
    fn activity(&self) -> Activity {
        let body = self.body("1", "1");
        let now = chrono::Utc::now();
        Activity {
            id: ActivityId(1),
            product_id: ProductId(1),
            title: self.title.clone(),
            price: Money(body["price"].as_i64().unwrap_or(0)),
            total_stock: body["total_stock"].as_u64().unwrap_or(0) as u32,
            sold: 0,
            per_user_limit: self.per_user_limit,
            starts_at: self.starts_at.into(),
            ends_at: self.ends_at.into(),
            cancelled: false,
            created_at: now,
            stock_buckets: 1,
            event_id: Some(EventId(1)),
            tiers: self.tiers.clone(),
            quotas: self.quotas.clone(),
            seats: self.seats.clone(),
            real_name: self.real_name,
        }
    }
}

/// Reads a plan: TOML when the path ends in `.toml`, JSON otherwise.
pub fn parse(path: &str, text: &str) -> Result<EventPlan, String> {
    if path.ends_with(".toml") {
        toml::from_str(text).map_err(|e| format!("{path}: {e}"))
    } else {
        serde_json::from_str(text).map_err(|e| format!("{path}: {e}"))
    }
}

/// Every rule of the plan, before anything is created: the event's and each session's (by
/// number, from 1), and a product named once.
pub fn check(p: &EventPlan) -> Result<(), String> {
    Event {
        id: EventId(1),
        title: p.title.clone(),
        venue: p.venue.clone(),
        description: p.description.clone(),
        created_at: chrono::Utc::now(),
    }
    .validate()
    .map_err(|e| format!("the event: {e}"))?;
    match (&p.product_id, &p.product) {
        (Some(_), None) | (None, Some(_)) => {}
        _ => return Err("name the product: product_id (existing) or [product] (new), one".into()),
    }
    if p.sessions.is_empty() {
        return Err("sessions: at least one".into());
    }
    for (i, s) in p.sessions.iter().enumerate() {
        s.activity()
            .validate()
            .map_err(|e| format!("session {} ({:?}): {e}", i + 1, s.title))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOML: &str = r#"
title = "Jay Chou 2027"
venue = "Shanghai Stadium"
[product]
name = "Jay Chou 2027 ticket"
list_price = 38000
[[sessions]]
title = "Saturday night"
starts_at = "2027-06-05T19:30:00+08:00"
ends_at = "2027-06-05T23:00:00+08:00"
per_user_limit = 4
real_name = true
tiers = [{ id = 1, name = "380", price = 38000, stock = 280 },
         { id = 2, name = "VIP", price = 128000, stock = 20 }]
seats = [{ section = "VIP", row = "1", tier = 2, from = 1, to = 20 }]
"#;

    #[test]
    fn a_toml_plan_reads_and_checks() {
        let p = parse("concert.toml", TOML).unwrap();
        check(&p).unwrap();
        let b = p.sessions[0].body("7", "8");
        assert_eq!(
            (b["price"].clone(), b["total_stock"].clone()),
            (json!(38000), json!(300)),
            "the cheapest tier's price, the tiers' stock"
        );
        assert_eq!(b["real_name"], json!(true));
        assert!(p.sessions[0].warm_up);
    }

    #[test]
    fn a_bad_plan_is_refused_before_anything_is_created() {
        let mut p = parse("concert.toml", TOML).unwrap();
        p.sessions[0].seats[0].to = 19; // 19 seats for a VIP stock of 20
        let e = check(&p).unwrap_err();
        assert!(
            e.starts_with("session 1 (\"Saturday night\")") && e.contains("seats: tier 2"),
            "{e}"
        );
        let mut p = parse("concert.toml", TOML).unwrap();
        p.product_id = Some("1".into());
        assert!(check(&p).unwrap_err().contains("one"));
        assert!(parse("x.toml", "title = 1").is_err());
        assert!(parse("x.json", r#"{"title": "t", "sessions": [], "bogus": 1}"#).is_err());
    }
}
