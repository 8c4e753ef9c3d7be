//! Amounts as Alipay writes them: yuan with up to two decimals (`"12.80"`), converted to and
//! from [`Money`] (fen) without floating point.

use seckill_core::domain::Money;
use seckill_core::{Error, Result};

/// `1280` fen → `"12.80"`.
pub fn format(m: Money) -> String {
    let sign = if m.0 < 0 { "-" } else { "" };
    let fen = m.0.unsigned_abs();
    format!("{sign}{}.{:02}", fen / 100, fen % 100)
}

/// `"12.8"` or `"12.80"` → `1280` fen; anything else (more decimals, signs, exponents) is an
/// [`Error::InvalidArgument`].
pub fn parse(s: &str) -> Result<Money> {
    let bad = || Error::invalid(format!("amount {s:?} is not yuan with up to two decimals"));
    let (whole, frac) = s.split_once('.').unwrap_or((s, ""));
    if whole.is_empty()
        || frac.len() > 2
        || !whole.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(bad());
    }
    let whole: i64 = whole.parse().map_err(|_| bad())?;
    let frac: i64 = format!("{frac:0<2}").parse().map_err(|_| bad())?;
    whole
        .checked_mul(100)
        .and_then(|w| w.checked_add(frac))
        .map(Money)
        .ok_or_else(bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_what_is_not_yuan() {
        for fen in [0, 1, 10, 99, 100, 1280, 128_000, 9_999_999_999] {
            assert_eq!(parse(&format(Money(fen))).unwrap(), Money(fen));
        }
        assert_eq!(format(Money(1280)), "12.80");
        assert_eq!(format(Money(5)), "0.05");
        assert_eq!(parse("12.8").unwrap(), Money(1280));
        assert_eq!(parse("12").unwrap(), Money(1200));
        for bad in [
            "",
            ".5",
            "12.345",
            "-1.00",
            "+1",
            "1e3",
            "12,80",
            " 1",
            "99999999999999999999",
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }
}
