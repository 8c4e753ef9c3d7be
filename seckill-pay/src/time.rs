//! China Standard Time (UTC+8): the zone both providers write their times in.

use chrono::FixedOffset;

/// UTC+8.
pub fn cst() -> FixedOffset {
    FixedOffset::east_opt(8 * 3600).expect("UTC+8 is a valid offset")
}
