//! Identifiers: snowflake `i64`s, each wrapped in its own type so an order id cannot be passed
//! where an activity id is expected.
//!
//! In JSON every id is a **string** of decimal digits (`"7233046254878720"`): snowflakes exceed
//! the 2^53 integers that JavaScript numbers hold exactly. Parsing also accepts a JSON number.

use parking_lot::Mutex;
use serde::{de, Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub i64);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}", self.0)
            }
        }

        impl FromStr for $name {
            type Err = std::num::ParseIntError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                s.parse().map($name)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                d.deserialize_any(IdVisitor).map($name)
            }
        }

        /// A string of digits (a 64-bit id does not fit a JSON number's exact range).
        #[cfg(feature = "openapi")]
        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                id_schema()
            }
        }

        #[cfg(feature = "openapi")]
        impl utoipa::ToSchema for $name {
            fn name() -> std::borrow::Cow<'static, str> {
                std::borrow::Cow::Borrowed(stringify!($name))
            }
        }
    };
}

/// The OpenAPI schema of every id: a positive 64-bit integer written as a string of digits.
#[cfg(feature = "openapi")]
fn id_schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .pattern(Some("^[0-9]{1,18}$"))
        .examples([serde_json::json!("7399817209982042112")])
        .description(Some("A snowflake id, as a string of digits"))
        .into()
}

struct IdVisitor;

impl de::Visitor<'_> for IdVisitor {
    type Value = i64;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an id as a string of digits or an integer")
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<i64, E> {
        Ok(v)
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<i64, E> {
        i64::try_from(v).map_err(|_| E::custom("id out of range"))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<i64, E> {
        v.parse()
            .map_err(|_| E::custom(format!("invalid id {v:?}")))
    }
}

id_type!(
    /// A user.
    UserId
);
id_type!(
    /// A product (a show's ticket tier, or goods).
    ProductId
);
id_type!(
    /// A flash-sale activity (a session of an event, docs/adr/0021).
    ActivityId
);
id_type!(
    /// An event: a show whose sessions are activities.
    EventId
);
id_type!(
    /// A stock hold made by the atomic reserve step.
    HoldId
);
id_type!(
    /// An order, assigned at reserve time.
    OrderId
);
id_type!(
    /// A payment attempt.
    PaymentId
);

/// Milliseconds since this epoch (2024-01-01T00:00:00Z) make up a snowflake's top bits.
pub const SNOWFLAKE_EPOCH_MS: i64 = 1_704_067_200_000;
const WORKER_BITS: u32 = 10;
const SEQUENCE_BITS: u32 = 12;
/// The largest worker id a [`Snowflake`] accepts (1023).
pub const MAX_WORKER_ID: u16 = (1 << WORKER_BITS) - 1;
const MAX_SEQUENCE: i64 = (1 << SEQUENCE_BITS) - 1;

/// A snowflake id generator: 41 bits of milliseconds since [`SNOWFLAKE_EPOCH_MS`], 10 bits of
/// worker id, 12 bits of sequence. Ids from one generator strictly increase; two generators with
/// different worker ids never produce the same id. If the wall clock steps back, the generator
/// keeps counting from the last time it used, so it never repeats an id.
#[derive(Debug)]
pub struct Snowflake {
    worker: i64,
    state: Mutex<(i64, i64)>, // (last millisecond, sequence)
}

impl Snowflake {
    /// A generator for `worker` (0..=1023).
    ///
    /// # Panics
    /// If `worker` exceeds [`MAX_WORKER_ID`]; configuration validates it first.
    pub fn new(worker: u16) -> Self {
        assert!(
            worker <= MAX_WORKER_ID,
            "snowflake worker id {worker} > 1023"
        );
        Self {
            worker: i64::from(worker),
            state: Mutex::new((0, 0)),
        }
    }

    /// The next id.
    pub fn next_id(&self) -> i64 {
        let now = chrono::Utc::now().timestamp_millis() - SNOWFLAKE_EPOCH_MS;
        let mut st = self.state.lock();
        let (last, seq) = *st;
        let (ms, seq) = if now > last {
            (now, 0)
        } else if seq < MAX_SEQUENCE {
            (last, seq + 1)
        } else {
            // Sequence exhausted in this millisecond (or the clock went back): borrow the next
            // millisecond rather than repeat an id.
            (last + 1, 0)
        };
        *st = (ms, seq);
        (ms << (WORKER_BITS + SEQUENCE_BITS)) | (self.worker << SEQUENCE_BITS) | seq
    }

    /// When `id` was generated (to the millisecond, by its generator's wall clock).
    pub fn time_of(id: i64) -> Option<chrono::DateTime<chrono::Utc>> {
        chrono::DateTime::from_timestamp_millis(
            (id >> (WORKER_BITS + SEQUENCE_BITS)) + SNOWFLAKE_EPOCH_MS,
        )
    }

    /// The worker id encoded in `id`.
    pub fn worker_of(id: i64) -> u16 {
        ((id >> SEQUENCE_BITS) & i64::from(MAX_WORKER_ID)) as u16
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn ids_strictly_increase_and_carry_the_worker() {
        let g = Snowflake::new(7);
        let mut last = 0;
        for _ in 0..20_000 {
            let id = g.next_id();
            assert!(id > last);
            assert_eq!(Snowflake::worker_of(id), 7);
            let age = chrono::Utc::now() - Snowflake::time_of(id).unwrap();
            assert!((0..1000).contains(&age.num_milliseconds()), "{age}");
            last = id;
        }
    }

    #[test]
    fn two_workers_never_collide() {
        let a = Snowflake::new(1);
        let b = Snowflake::new(2);
        let mut seen = HashSet::new();
        for _ in 0..5_000 {
            assert!(seen.insert(a.next_id()));
            assert!(seen.insert(b.next_id()));
        }
    }

    #[test]
    fn ids_are_strings_in_json_and_parse_from_both() {
        let id = OrderId(7_233_046_254_878_720);
        assert_eq!(serde_json::to_string(&id).unwrap(), "\"7233046254878720\"");
        let a: OrderId = serde_json::from_str("\"42\"").unwrap();
        let b: OrderId = serde_json::from_str("42").unwrap();
        assert_eq!(a, b);
        assert!(serde_json::from_str::<OrderId>("\"4x\"").is_err());
    }
}
