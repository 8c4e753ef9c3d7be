//! The codec of the Redis backends: reading script replies, and the compact records the scripts
//! store (written and read here, both ways).

use chrono::DateTime;
use redis::Value;
pub use seckill_core::domain::holder::holders_text;
use seckill_core::domain::holder::parse_holders;
use seckill_core::domain::{ActivityId, Hold, HoldId, HoldState, OrderId, TierLine, UserId};
use seckill_core::{Error, Timestamp};

/// A protocol surprise: the script answered something it never answers.
pub fn unexpected(what: &str, v: &Value) -> Error {
    Error::backend("redis", format!("unexpected reply for {what}: {v:?}"))
}

/// An array reply's items.
pub fn items(v: Value, what: &str) -> Result<Vec<Value>, Error> {
    match v {
        Value::Array(a) => Ok(a),
        Value::Nil => Ok(Vec::new()),
        other => Err(unexpected(what, &other)),
    }
}

/// An integer (from an integer or a decimal string).
pub fn int(v: &Value, what: &str) -> Result<i64, Error> {
    match v {
        Value::Int(i) => Ok(*i),
        // Exact integers first (ids exceed f64's 2^53); a Lua float reply only as a fallback.
        Value::BulkString(b) => std::str::from_utf8(b)
            .ok()
            .and_then(|s| {
                s.parse::<i64>()
                    .ok()
                    .or_else(|| s.parse::<f64>().ok().map(|f| f as i64))
            })
            .ok_or_else(|| unexpected(what, v)),
        Value::SimpleString(s) => s.parse().map_err(|_| unexpected(what, v)),
        other => Err(unexpected(what, other)),
    }
}

/// A string.
pub fn string(v: &Value, what: &str) -> Result<String, Error> {
    match v {
        Value::BulkString(b) => String::from_utf8(b.clone()).map_err(|_| unexpected(what, v)),
        Value::SimpleString(s) => Ok(s.clone()),
        Value::Int(i) => Ok(i.to_string()),
        other => Err(unexpected(what, other)),
    }
}

fn millis(s: &str) -> Option<Timestamp> {
    DateTime::from_timestamp_millis(s.parse().ok()?)
}

/// Parses a hold record `S|user|qty|order|created_ms|expires_ms`, with `|t:q,t:q` after it for
/// a session's hold (its units per tier, docs/adr/0021), and `|holders` after that for a
/// real-name one ([`holders_text`]; the lines then may be empty).
pub fn hold_record(
    activity: ActivityId,
    id: HoldId,
    rec: &str,
) -> Result<(Hold, HoldState), Error> {
    let bad = || Error::backend("redis", format!("malformed hold record {rec:?}"));
    let f: Vec<&str> = rec.split('|').collect();
    if !(6..=8).contains(&f.len()) {
        return Err(bad());
    }
    let lines = match f.get(6) {
        None => Vec::new(),
        // No lines, only holders: a real-name plain sale's hold (`…||holders`).
        Some(&"") if f.len() == 8 => Vec::new(),
        Some(text) => parse_lines(text).ok_or_else(bad)?,
    };
    let holders = match f.get(7) {
        None => Vec::new(),
        Some(text) => parse_holders(text).ok_or_else(bad)?,
    };
    let state = match f[0] {
        "H" => HoldState::Held,
        "C" => HoldState::Confirmed,
        "R" => HoldState::Released,
        _ => return Err(bad()),
    };
    let hold = Hold {
        holders,
        id,
        order_id: OrderId(f[3].parse().map_err(|_| bad())?),
        activity_id: activity,
        user_id: UserId(f[1].parse().map_err(|_| bad())?),
        quantity: f[2].parse().map_err(|_| bad())?,
        created_at: millis(f[4]).ok_or_else(bad)?,
        expires_at: millis(f[5]).ok_or_else(bad)?,
        lines,
    };
    Ok((hold, state))
}

/// A hold's lines as records and the reserve script carry them: `t:q,t:q`, a seated line
/// `t:q:seat;seat` (seat ids have no `,:;|`).
pub fn lines_text(lines: &[TierLine]) -> String {
    let mut s = String::new();
    for (i, l) in lines.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        s.push_str(&format!("{}:{}", l.tier, l.quantity));
        if !l.seats.is_empty() {
            s.push(':');
            s.push_str(&l.seats.join(";"));
        }
    }
    s
}

/// Parses [`lines_text`]'s form (at least one line).
fn parse_lines(text: &str) -> Option<Vec<TierLine>> {
    text.split(',')
        .map(|l| {
            let mut f = l.splitn(3, ':');
            let (t, q) = (f.next()?, f.next()?);
            let mut line = TierLine::new(t.parse().ok()?, q.parse().ok()?);
            if let Some(seats) = f.next() {
                line.seats = seats.split(';').map(str::to_string).collect();
                if line.seats.iter().any(String::is_empty) {
                    return None;
                }
            }
            Some(line)
        })
        .collect()
}

/// A hold record as [`hold_record`] reads it: `S|user|qty|order_id|created_ms|expires_ms`
/// (the reserve script writes `H` records itself; warm-up writes adopted `C` ones with this).
pub fn hold_record_text(hold: &Hold, state: HoldState) -> String {
    let s = match state {
        HoldState::Held => 'H',
        HoldState::Confirmed => 'C',
        HoldState::Released => 'R',
    };
    let mut rec = format!(
        "{s}|{}|{}|{}|{}|{}",
        hold.user_id.0,
        hold.quantity,
        hold.order_id.0,
        hold.created_at.timestamp_millis(),
        hold.expires_at.timestamp_millis()
    );
    if !hold.lines.is_empty() || !hold.holders.is_empty() {
        rec.push('|');
        rec.push_str(&lines_text(&hold.lines));
    }
    if !hold.holders.is_empty() {
        rec.push('|');
        rec.push_str(&holders_text(&hold.holders));
    }
    rec
}

/// Parses an outbox payload `hold_id|record`.
pub fn outbox_payload(activity: ActivityId, payload: &str) -> Result<Hold, Error> {
    let (id, rec) = payload
        .split_once('|')
        .ok_or_else(|| Error::backend("redis", format!("malformed outbox entry {payload:?}")))?;
    let id = HoldId(
        id.parse()
            .map_err(|_| Error::backend("redis", format!("malformed outbox entry {payload:?}")))?,
    );
    hold_record(activity, id, rec).map(|(h, _)| h)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sessions_records_carry_their_lines() {
        let (h, s) = hold_record(
            ActivityId(1),
            HoldId(2),
            "H|7|3|99|1893456000000|1893456900000|2:2,3:1",
        )
        .unwrap();
        assert_eq!(s, HoldState::Held);
        assert_eq!(h.lines, [TierLine::new(2, 2), TierLine::new(3, 1)]);
        let text = hold_record_text(&h, HoldState::Confirmed);
        assert_eq!(text, "C|7|3|99|1893456000000|1893456900000|2:2,3:1");
        let (seated, _) = hold_record(
            ActivityId(1),
            HoldId(2),
            "H|7|3|99|1893456000000|1893456900000|1:2:A-1-2;A-1-3,2:1",
        )
        .unwrap();
        assert_eq!(seated.lines[0].seats, ["A-1-2", "A-1-3"]);
        assert_eq!(
            hold_record_text(&seated, HoldState::Held),
            "H|7|3|99|1893456000000|1893456900000|1:2:A-1-2;A-1-3,2:1"
        );
        for bad in [
            "H|7|3|99|1|2|",
            "H|7|3|99|1|2|x",
            "H|7|3|99|1|2|1:",
            "H|7|3|99|1|2|1:2|x",
        ] {
            assert!(hold_record(ActivityId(1), HoldId(2), bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn written_records_read_back() {
        let (h, _) = hold_record(
            ActivityId(1),
            HoldId(2),
            "C|7|3|99|1893456000000|1893456900000",
        )
        .unwrap();
        for state in [HoldState::Held, HoldState::Confirmed, HoldState::Released] {
            let text = hold_record_text(&h, state);
            assert_eq!(
                hold_record(ActivityId(1), HoldId(2), &text).unwrap(),
                (h.clone(), state)
            );
        }
    }

    #[test]
    fn records_round_trip() {
        let (h, s) = hold_record(
            ActivityId(1),
            HoldId(2),
            "C|7|3|99|1893456000000|1893456900000",
        )
        .unwrap();
        assert_eq!(s, HoldState::Confirmed);
        assert_eq!(
            (h.user_id, h.quantity, h.order_id),
            (UserId(7), 3, OrderId(99))
        );
        assert_eq!(h.expires_at - h.created_at, chrono::Duration::minutes(15));
        assert!(hold_record(ActivityId(1), HoldId(2), "X|7|3").is_err());
        let h = outbox_payload(ActivityId(1), "5|H|7|1|9|1893456000000|1893456900000").unwrap();
        assert_eq!(h.id, HoldId(5));
        assert_eq!(int(&Value::BulkString(b"42".to_vec()), "t").unwrap(), 42);
        let big = 685_772_521_681_333_727_i64;
        let v = Value::BulkString(big.to_string().into_bytes());
        assert_eq!(int(&v, "t").unwrap(), big);
    }

    #[test]
    fn real_name_records_carry_their_holders_with_or_without_lines() {
        use seckill_core::domain::{Holder, IdType};
        let holder = |n: &str| Holder {
            name: n.into(),
            id_type: IdType::Passport,
            id_masked: "E1****67".into(),
            id_hash: format!("{n}00ff"),
        };
        let (mut h, _) = hold_record(
            ActivityId(1),
            HoldId(2),
            "H|7|2|99|1893456000000|1893456900000",
        )
        .unwrap();
        h.holders = vec![holder("张三"), holder("Li Si")];
        let plain = hold_record_text(&h, HoldState::Held);
        assert!(plain.ends_with("||pp:E1****67:张三00ff:张三;pp:E1****67:Li Si00ff:Li Si"));
        assert_eq!(hold_record(ActivityId(1), HoldId(2), &plain).unwrap().0, h);
        h.lines = vec![TierLine::new(3, 2)];
        let tiered = hold_record_text(&h, HoldState::Confirmed);
        assert_eq!(
            hold_record(ActivityId(1), HoldId(2), &tiered).unwrap(),
            (h, HoldState::Confirmed)
        );
        assert!(hold_record(ActivityId(1), HoldId(2), &format!("{plain}|x")).is_err());
        assert!(hold_record(ActivityId(1), HoldId(2), &format!("{plain};zz")).is_err());
    }
}
