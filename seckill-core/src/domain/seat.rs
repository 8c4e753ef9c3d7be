//! Seat maps (docs/adr/0021): a session's seats, in blocks of one row and one tier, best first.

use super::Tier;
use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};

/// Seats `from..=to` of one row of a section, all of one price tier. A session's blocks are
/// listed best first: best-available allocation tries them in that order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SeatBlock {
    /// The section ("A", "看台3"): 1 to 16 characters, none of them a space, a control
    /// character or one of `-,:;|/`.
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 16))]
    pub section: String,
    /// The row in the section, under the same rules.
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 16))]
    pub row: String,
    /// The tier every seat of the block is sold in.
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 999))]
    pub tier: u32,
    /// The first seat number (at least 1).
    #[cfg_attr(feature = "openapi", schema(minimum = 1))]
    pub from: u32,
    /// The last seat number (at least `from`, at most `from + 999`).
    #[cfg_attr(feature = "openapi", schema(minimum = 1))]
    pub to: u32,
}

impl SeatBlock {
    /// The seat ids of the block in number order: `section-row-n`.
    pub fn seat_ids(&self) -> impl Iterator<Item = String> + '_ {
        (self.from..=self.to).map(move |n| seat_id(&self.section, &self.row, n))
    }

    /// Seats in the block.
    pub fn len(&self) -> u32 {
        self.to.saturating_sub(self.from) + 1
    }

    /// Never: a block has at least one seat.
    pub fn is_empty(&self) -> bool {
        false
    }
}

/// A seat's id: `section-row-n`.
pub fn seat_id(section: &str, row: &str, n: u32) -> String {
    format!("{section}-{row}-{n}")
}

/// Most seats in one session.
pub const SEATS_MAX: u32 = 100_000;
/// Most seats in one block.
pub const BLOCK_MAX: u32 = 1_000;
/// Most blocks in one seat map (the reserve script reads every block's free count at once).
pub const BLOCKS_MAX: usize = 2_000;

fn check_name(field: &str, v: &str) -> Result<()> {
    let n = v.chars().count();
    if n == 0
        || n > 16
        || v.chars()
            .any(|c| c.is_control() || c.is_whitespace() || "-,:;|/".contains(c))
    {
        return Err(Error::invalid(format!(
            "seats.{field}: 1 to 16 characters, without spaces, control characters or -,:;|/ \
             ({v:?} is not)"
        )));
    }
    Ok(())
}

/// The rules of a seat map against the session's tiers: at most [`BLOCKS_MAX`] blocks, each
/// naming a tier of the session, with 1 to [`BLOCK_MAX`] seats numbered from 1 up, and
/// overlapping no other block of its row; at most [`SEATS_MAX`] seats in all; and a tier with seats has exactly as much stock as
/// seats (a seat is a unit of its tier). No seats: an unseated session.
pub fn check_seats(tiers: &[Tier], seats: &[SeatBlock]) -> Result<()> {
    if seats.is_empty() {
        return Ok(());
    }
    if seats.len() > BLOCKS_MAX {
        return Err(Error::invalid(format!(
            "seats: at most {BLOCKS_MAX} blocks in a session"
        )));
    }
    let mut per_tier: HashMap<u32, u64> = HashMap::new();
    let mut rows: BTreeMap<(&str, &str), Vec<(u32, u32)>> = BTreeMap::new();
    let mut all = 0u64;
    for b in seats {
        check_name("section", &b.section)?;
        check_name("row", &b.row)?;
        if !tiers.iter().any(|t| t.id == b.tier) {
            return Err(Error::invalid(format!(
                "seats.tier: the session has no tier {}",
                b.tier
            )));
        }
        if b.from == 0 || b.to < b.from || b.to - b.from >= BLOCK_MAX {
            return Err(Error::invalid(format!(
                "seats: a block is seats from..=to, numbered from 1, at most {BLOCK_MAX} \
                 ({}-{} {}..={} is not)",
                b.section, b.row, b.from, b.to
            )));
        }
        let range = rows.entry((&b.section, &b.row)).or_default();
        if range.iter().any(|&(f, t)| b.from <= t && f <= b.to) {
            return Err(Error::invalid(format!(
                "seats: two blocks of row {}-{} share seats",
                b.section, b.row
            )));
        }
        range.push((b.from, b.to));
        *per_tier.entry(b.tier).or_default() += u64::from(b.len());
        all += u64::from(b.len());
    }
    if all > u64::from(SEATS_MAX) {
        return Err(Error::invalid(format!(
            "seats: at most {SEATS_MAX} in a session"
        )));
    }
    for (tier, n) in per_tier {
        let stock = tiers.iter().find(|t| t.id == tier).map_or(0, |t| t.stock);
        if u64::from(stock) != n {
            return Err(Error::invalid(format!(
                "seats: tier {tier} has {n} seats but a stock of {stock}; a seated tier's \
                 stock is its seat count"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Money;

    fn tier(id: u32, stock: u32) -> Tier {
        Tier {
            id,
            name: format!("t{id}"),
            price: Money(100),
            stock,
        }
    }

    fn block(section: &str, row: &str, tier: u32, from: u32, to: u32) -> SeatBlock {
        SeatBlock {
            section: section.into(),
            row: row.into(),
            tier,
            from,
            to,
        }
    }

    #[test]
    fn seat_maps_follow_their_rules() {
        let tiers = [tier(1, 20), tier(2, 5)];
        let map = [
            block("A", "1", 1, 1, 10),
            block("A", "2", 1, 1, 10),
            block("B", "1", 2, 1, 5),
        ];
        assert!(check_seats(&tiers, &map).is_ok());
        assert!(check_seats(&tiers, &[]).is_ok());
        assert_eq!(
            map[2].seat_ids().collect::<Vec<_>>(),
            ["B-1-1", "B-1-2", "B-1-3", "B-1-4", "B-1-5"]
        );
        let err = |m: &[SeatBlock]| check_seats(&tiers, m).unwrap_err().to_string();
        assert!(err(&map[..1]).contains("tier 1 has 10 seats"));
        assert!(check_seats(&tiers, &map[..2]).is_ok(), "tier 2 unseated");
        assert!(err(&[block("A", "1", 3, 1, 20)]).contains("no tier 3"));
        assert!(err(&[block("A-", "1", 1, 1, 20)]).contains("section"));
        assert!(err(&[block("A", "", 1, 1, 20)]).contains("row"));
        assert!(err(&[block("A", "1 2", 1, 1, 20)]).contains("row"));
        assert!(err(&[block("A", "1", 1, 0, 19)]).contains("numbered"));
        assert!(err(&[block("A", "1", 1, 5, 4)]).contains("numbered"));
        assert!(err(&[block("A", "1", 1, 1, 1001)]).contains("numbered"));
        assert!(err(&[
            block("A", "1", 1, 1, 10),
            block("A", "1", 1, 10, 19),
            block("B", "1", 2, 1, 5)
        ])
        .contains("share"));
    }
}
