//! The domain: products, events, activities (an event's sessions), holds, ticket holders,
//! orders, payments and users.
//!
//! Money is integer minor units ([`Money`]), time is UTC ([`crate::Timestamp`]), and ids are
//! snowflake `i64`s in their own types ([`ids`]).

mod activity;
mod event;
mod hold;
pub mod holder;
pub mod ids;
mod money;
mod order;
mod payment;
mod product;
pub mod seat;
pub mod text;
pub mod tier;
mod user;

pub use activity::{Activity, ActivityStatus};
pub use event::Event;
pub use hold::{Hold, HoldEvent, HoldState};
pub use holder::{DocumentKey, Holder, HolderInput, IdType};
pub use ids::{ActivityId, EventId, HoldId, OrderId, PaymentId, ProductId, Snowflake, UserId};
pub use money::Money;
pub use order::{CancelReason, Order, OrderStatus};
pub use payment::{Payment, PaymentStatus};
pub use product::Product;
pub use seat::SeatBlock;
pub use tier::{Quota, Tier, TierLine};
pub use user::{Role, User};
