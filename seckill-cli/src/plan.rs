//! `seckill events create --file`: an event, its product and its sessions (tiers, quotas, seat
//! maps, real names) from one JSON or TOML file, each session the admin API's own body
//! ([`NewActivity`]), checked whole by the domain's rules ([`Event::validate`],
//! [`NewActivity::into_activity`] and `Activity::validate`) before anything is created, then
//! created through the admin API in order: product, event, sessions, warm-ups.
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

use seckill_core::domain::{ActivityId, Event, EventId};
use seckill_core::engine::NewActivity;
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
    /// Its sessions, at least one: each the admin API's activity body
    /// ([`NewActivity`]) without `product_id` and `event_id` (the plan's), `price` and
    /// `total_stock` defaulting to the cheapest tier's and the tiers' stock together, and
    /// `warm_up` (default true).
    pub sessions: Vec<serde_json::Map<String, Value>>,
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

/// A session of the plan: the admin API's body for it under `product` and `event`, and
/// whether to warm it up.
pub fn session(s: &serde_json::Map<String, Value>, product: &str, event: &str) -> (Value, bool) {
    let mut body = s.clone();
    let warm_up = body
        .remove("warm_up")
        .and_then(|v| v.as_bool())
        .unwrap_or(true);
    let tiers = body
        .get("tiers")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let of = |k: &'static str| tiers.iter().filter_map(move |t| t[k].as_i64());
    if !body.contains_key("price") {
        body.insert("price".into(), json!(of("price").min().unwrap_or(0)));
    }
    if !body.contains_key("total_stock") {
        body.insert("total_stock".into(), json!(of("stock").sum::<i64>()));
    }
    body.insert("product_id".into(), json!(product));
    body.insert("event_id".into(), json!(event));
    (Value::Object(body), warm_up)
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
        let title = s.get("title").and_then(Value::as_str).unwrap_or("?");
        let at = |e: String| format!("session {} ({title:?}): {e}", i + 1);
        if s.contains_key("product_id") || s.contains_key("event_id") {
            return Err(at("product_id and event_id are the plan's".into()));
        }
        if s.get("warm_up").is_some_and(|v| !v.is_boolean()) {
            return Err(at("warm_up: true or false".into()));
        }
        // Placeholder ids: the rules are the same for any.
        let (body, _) = session(s, "1", "1");
        let new: NewActivity = serde_json::from_value(body).map_err(|e| at(e.to_string()))?;
        new.into_activity(ActivityId(1), chrono::Utc::now())
            .validate()
            .map_err(|e| at(e.to_string()))?;
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
        let (b, warm_up) = session(&p.sessions[0], "7", "8");
        assert_eq!(
            (b["price"].clone(), b["total_stock"].clone()),
            (json!(38000), json!(300)),
            "the cheapest tier's price, the tiers' stock"
        );
        assert_eq!(b["real_name"], json!(true));
        assert_eq!(
            (b["product_id"].clone(), b["event_id"].clone()),
            (json!("7"), json!("8"))
        );
        assert!(warm_up);
    }

    #[test]
    fn a_bad_plan_is_refused_before_anything_is_created() {
        let mut p = parse("concert.toml", TOML).unwrap();
        p.sessions[0]["seats"][0]["to"] = json!(19); // 19 seats for a VIP stock of 20
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
        // A session's fields are the admin API's, unknown ones refused.
        let mut p = parse("concert.toml", TOML).unwrap();
        p.sessions[0].insert("bogus".into(), json!(1));
        assert!(check(&p).unwrap_err().contains("bogus"));
    }
}
