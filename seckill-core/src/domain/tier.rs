//! Price tiers (票档) and quotas of a session (docs/adr/0021), and the lines of a buy.

use super::text::check_line;
use super::Money;
use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// A price tier of a session: a price and its own stock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Tier {
    /// Its number in the session (1 to 999, unique there); buys name it.
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 999))]
    pub id: u32,
    /// Display name ("580", "VIP"): 1 to 100 characters, no control characters.
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 100))]
    pub name: String,
    /// Price of one ticket, in minor units (not negative).
    #[cfg_attr(feature = "openapi", schema(value_type = i64, minimum = 0))]
    pub price: Money,
    /// Tickets of this tier for sale: 1 to 10,000,000.
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 10_000_000))]
    pub stock: u32,
}

/// A cap that units of several tiers count against together (a "student" quota, a block of
/// the venue), in addition to each tier's stock and the session's capacity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Quota {
    /// Its number in the session (1 to 999, unique there).
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 999))]
    pub id: u32,
    /// Display name: 1 to 100 characters, no control characters.
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 100))]
    pub name: String,
    /// Most units of its tiers sold together: 1 to 10,000,000.
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 10_000_000))]
    pub cap: u32,
    /// The tiers whose units count against it (at least one, each a tier of the session).
    pub tiers: Vec<u32>,
}

/// Units of one tier in a buy, a hold or an order.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct TierLine {
    /// The tier's number.
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 999))]
    pub tier: u32,
    /// Units of it (at least 1).
    #[cfg_attr(feature = "openapi", schema(minimum = 1))]
    pub quantity: u32,
    /// Its seats, for a seated tier (`section-row-n`): a buy names `quantity` of them, or
    /// none to get the best available; a hold's and an order's line lists the seats it has.
    /// Empty for an unseated tier.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[cfg_attr(feature = "openapi", schema(max_items = 1000))]
    pub seats: Vec<String>,
}

impl TierLine {
    /// `quantity` units of `tier`, no seats named.
    pub fn new(tier: u32, quantity: u32) -> Self {
        Self {
            tier,
            quantity,
            seats: Vec::new(),
        }
    }
}

/// Most tiers, and most quotas, in one session.
pub const TIERS_MAX: usize = 32;
/// Highest tier or quota number.
pub const TIER_ID_MAX: u32 = 999;
/// Most characters in a tier's or a quota's name.
pub const TIER_NAME_MAX: usize = 100;

/// The rules of a session's tiers and quotas against its capacity `total` and its stock
/// buckets: 1 to [`TIERS_MAX`] tiers of distinct numbers 1 to [`TIER_ID_MAX`], each a name, a
/// price that is not negative and 1 to `stock_max` units; a capacity of at most the tiers'
/// stock together; quotas of distinct numbers, each a cap of at least 1 over distinct tiers of
/// the session; and one stock bucket. No tiers: no quotas either (a plain sale).
pub fn check_tiers(
    tiers: &[Tier],
    quotas: &[Quota],
    total: u32,
    buckets: u32,
    stock_max: u32,
) -> Result<()> {
    if tiers.is_empty() {
        if !quotas.is_empty() {
            return Err(Error::invalid("quotas need tiers to count"));
        }
        return Ok(());
    }
    if tiers.len() > TIERS_MAX || quotas.len() > TIERS_MAX {
        return Err(Error::invalid(format!(
            "tiers, quotas: at most {TIERS_MAX} each"
        )));
    }
    let mut ids = BTreeSet::new();
    for t in tiers {
        if t.id == 0 || t.id > TIER_ID_MAX || !ids.insert(t.id) {
            return Err(Error::invalid(format!(
                "tiers: tier numbers are 1 to {TIER_ID_MAX}, each once ({} is not)",
                t.id
            )));
        }
        check_line("tiers.name", &t.name, 1, TIER_NAME_MAX)?;
        if t.price.0 < 0 {
            return Err(Error::invalid("tiers.price must not be negative"));
        }
        if t.stock == 0 || t.stock > stock_max {
            return Err(Error::invalid(format!("tiers.stock: 1 to {stock_max}")));
        }
    }
    let sum: u64 = tiers.iter().map(|t| u64::from(t.stock)).sum();
    if u64::from(total) > sum {
        return Err(Error::invalid(format!(
            "total_stock (the session's capacity, {total}) is above its tiers' stock together \
             ({sum})"
        )));
    }
    let mut qids = BTreeSet::new();
    for q in quotas {
        if q.id == 0 || q.id > TIER_ID_MAX || !qids.insert(q.id) {
            return Err(Error::invalid(format!(
                "quotas: quota numbers are 1 to {TIER_ID_MAX}, each once ({} is not)",
                q.id
            )));
        }
        check_line("quotas.name", &q.name, 1, TIER_NAME_MAX)?;
        if q.cap == 0 || q.cap > stock_max {
            return Err(Error::invalid(format!("quotas.cap: 1 to {stock_max}")));
        }
        let mut seen = BTreeSet::new();
        if q.tiers.is_empty() || q.tiers.iter().any(|t| !ids.contains(t) || !seen.insert(*t)) {
            return Err(Error::invalid(format!(
                "quotas.tiers of quota {}: one or more distinct tiers of the session",
                q.id
            )));
        }
    }
    if buckets != 1 {
        return Err(Error::invalid(
            "stock_buckets: a session with tiers has one stock bucket (docs/adr/0021)",
        ));
    }
    Ok(())
}

/// The units of a buy's `lines` against a session's `tiers` and `seats`: each line a tier of
/// the session, each tier once, at least one unit each; seats only for a seated tier, and
/// then none (the best available) or `quantity` distinct seats of that tier; their sum. A plain
/// sale (no tiers) takes no lines.
pub fn check_lines(tiers: &[Tier], seats: &[super::SeatBlock], lines: &[TierLine]) -> Result<u32> {
    if tiers.is_empty() {
        if lines.is_empty() {
            return Ok(0);
        }
        return Err(Error::invalid(
            "lines: this activity has no price tiers; ask for a quantity",
        ));
    }
    if lines.is_empty() {
        return Err(Error::invalid(
            "lines: this session sells by tier; name one or more tiers and their quantities",
        ));
    }
    let mut seen = BTreeSet::new();
    let mut sum = 0u32;
    for l in lines {
        if !tiers.iter().any(|t| t.id == l.tier) {
            return Err(Error::invalid(format!(
                "lines: the session has no tier {}",
                l.tier
            )));
        }
        if !seen.insert(l.tier) {
            return Err(Error::invalid(format!(
                "lines: tier {} is named twice",
                l.tier
            )));
        }
        if l.quantity == 0 {
            return Err(Error::invalid("lines.quantity must be at least 1"));
        }
        if !l.seats.is_empty() {
            let blocks: Vec<&super::SeatBlock> =
                seats.iter().filter(|b| b.tier == l.tier).collect();
            if blocks.is_empty() {
                return Err(Error::invalid(format!(
                    "lines.seats: tier {} has no seat map",
                    l.tier
                )));
            }
            if l.seats.len() != l.quantity as usize {
                return Err(Error::invalid(
                    "lines.seats: name as many seats as the line's quantity, or none",
                ));
            }
            let mut named = BTreeSet::new();
            for s in &l.seats {
                if !named.insert(s.as_str()) || !blocks.iter().any(|b| holds_seat(b, s)) {
                    return Err(Error::invalid(format!(
                        "lines.seats: {s:?} is not a seat of tier {} (or is named twice)",
                        l.tier
                    )));
                }
            }
        }
        sum = sum
            .checked_add(l.quantity)
            .ok_or_else(|| Error::invalid("lines: too many units"))?;
    }
    Ok(sum)
}

/// Whether `seat` (`section-row-n`) is one of `b`'s seats.
pub fn holds_seat(b: &super::SeatBlock, seat: &str) -> bool {
    let mut parts = seat.rsplitn(2, '-');
    let (Some(n), Some(rest)) = (parts.next(), parts.next()) else {
        return false;
    };
    // Written as the map writes it: no sign, no leading zero.
    let Ok(n) =
        n.parse::<u32>().map_err(|_| ()).and_then(
            |v| {
                if v.to_string() == n {
                    Ok(v)
                } else {
                    Err(())
                }
            },
        )
    else {
        return false;
    };
    rest.split_once('-') == Some((b.section.as_str(), b.row.as_str()))
        && (b.from..=b.to).contains(&n)
}

/// The price of `lines` at the session's tier prices, `None` if it overflows or a line names
/// a tier the session lacks.
pub fn lines_amount(tiers: &[Tier], lines: &[TierLine]) -> Option<Money> {
    lines.iter().try_fold(Money(0), |sum, l| {
        let tier = tiers.iter().find(|t| t.id == l.tier)?;
        Some(Money(
            sum.0.checked_add(tier.price.checked_mul(l.quantity)?.0)?,
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tier(id: u32, price: i64, stock: u32) -> Tier {
        Tier {
            id,
            name: format!("{price}"),
            price: Money(price),
            stock,
        }
    }

    #[test]
    fn tiers_and_quotas_follow_their_rules() {
        let tiers = vec![
            tier(1, 38_000, 100),
            tier(2, 58_000, 50),
            tier(3, 88_000, 10),
        ];
        let student = Quota {
            id: 1,
            name: "student".into(),
            cap: 20,
            tiers: vec![1, 2],
        };
        let ok = |t: &[Tier], q: &[Quota], total: u32, k: u32| check_tiers(t, q, total, k, 1000);
        assert!(ok(&tiers, std::slice::from_ref(&student), 160, 1).is_ok());
        assert!(
            ok(&tiers, &[], 120, 1).is_ok(),
            "capacity below the tiers' sum"
        );
        assert!(ok(&[], &[], 5, 3).is_ok(), "a plain sale");
        let err = |r: Result<()>| r.unwrap_err().to_string();
        assert!(err(ok(&tiers, &[], 161, 1)).contains("capacity"));
        assert!(err(ok(&tiers, &[], 160, 2)).contains("stock_buckets"));
        assert!(err(ok(&[], std::slice::from_ref(&student), 5, 1)).contains("quotas"));
        assert!(err(ok(&[tier(1, 1, 1), tier(1, 2, 1)], &[], 2, 1)).contains("each once"));
        assert!(err(ok(&[tier(0, 1, 1)], &[], 1, 1)).contains("tier numbers"));
        assert!(err(ok(&[tier(1000, 1, 1)], &[], 1, 1)).contains("tier numbers"));
        assert!(err(ok(&[tier(1, -1, 1)], &[], 1, 1)).contains("price"));
        assert!(err(ok(&[tier(1, 1, 0)], &[], 1, 1)).contains("stock"));
        assert!(err(ok(&[tier(1, 1, 1001)], &[], 1, 1)).contains("stock"));
        let mut blank = tier(1, 1, 1);
        blank.name = " ".into();
        assert!(err(ok(&[blank], &[], 1, 1)).contains("name"));
        for bad_tiers in [vec![], vec![4], vec![1, 1]] {
            let q = Quota {
                tiers: bad_tiers.clone(),
                ..student.clone()
            };
            assert!(
                err(ok(&tiers, &[q], 160, 1)).contains("quotas.tiers"),
                "{bad_tiers:?}"
            );
        }
        let zero = Quota {
            cap: 0,
            ..student.clone()
        };
        assert!(err(ok(&tiers, &[zero], 160, 1)).contains("cap"));
        assert!(err(ok(&tiers, &[student.clone(), student], 160, 1)).contains("each once"));
    }

    #[test]
    fn lines_name_tiers_of_the_session_once() {
        let tiers = vec![tier(1, 38_000, 100), tier(2, 58_000, 50)];
        let l = TierLine::new;
        assert_eq!(check_lines(&tiers, &[], &[l(1, 2), l(2, 1)]).unwrap(), 3);
        assert_eq!(
            lines_amount(&tiers, &[l(1, 2), l(2, 1)]),
            Some(Money(2 * 38_000 + 58_000))
        );
        assert_eq!(lines_amount(&tiers, &[l(3, 1)]), None);
        assert_eq!(check_lines(&[], &[], &[]).unwrap(), 0);
        for bad in [vec![], vec![l(3, 1)], vec![l(1, 1), l(1, 1)], vec![l(1, 0)]] {
            assert!(check_lines(&tiers, &[], &bad).is_err(), "{bad:?}");
        }
        assert!(check_lines(&[], &[], &[l(1, 1)]).is_err());
        let map = [crate::domain::SeatBlock {
            section: "A".into(),
            row: "1".into(),
            tier: 2,
            from: 1,
            to: 50,
        }];
        let seated = |seats: &[&str]| TierLine {
            seats: seats.iter().map(|s| s.to_string()).collect(),
            ..l(2, seats.len() as u32)
        };
        assert_eq!(
            check_lines(&tiers, &map, &[seated(&["A-1-1", "A-1-50"])]).unwrap(),
            2
        );
        assert_eq!(
            check_lines(&tiers, &map, &[l(2, 2)]).unwrap(),
            2,
            "best available"
        );
        for bad in [
            &["A-1-51"][..],
            &["A-2-1"],
            &["A-1-1", "A-1-1"],
            &["B-1-1"],
            &["A-1-x"],
        ] {
            assert!(
                check_lines(&tiers, &map, &[seated(bad)]).is_err(),
                "{bad:?}"
            );
        }
        let short = TierLine {
            quantity: 2,
            ..seated(&["A-1-1"])
        };
        assert!(check_lines(&tiers, &map, &[short]).is_err());
        let unseated = TierLine {
            seats: vec!["A-1-1".into()],
            ..l(1, 1)
        };
        assert!(check_lines(&tiers, &map, &[unseated]).is_err());
    }
}
