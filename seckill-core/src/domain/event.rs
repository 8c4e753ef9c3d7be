//! Events: a show (a concert, a match) whose sessions are activities (docs/adr/0021).

use super::text::{check_free_text, check_line};
use super::EventId;
use crate::{Result, Timestamp};
use serde::{Deserialize, Serialize};

/// A show with one or more sessions. Each session is an [`Activity`](super::Activity) whose
/// `event_id` names the event; the event itself takes no part in a sale's decisions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Event {
    /// Snowflake id.
    pub id: EventId,
    /// Display title.
    pub title: String,
    /// Where it takes place.
    pub venue: String,
    /// Free text.
    pub description: String,
    /// When it was created.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub created_at: Timestamp,
}

impl Event {
    /// Most characters in a title or a venue.
    pub const TITLE_MAX: usize = 200;
    /// Most characters in a description.
    pub const DESCRIPTION_MAX: usize = 2000;

    /// The rules every stored event obeys (the engine checks them on every write): a title of
    /// 1 to [`Event::TITLE_MAX`] characters, a venue of at most as many, a description of at
    /// most [`Event::DESCRIPTION_MAX`], no control characters (but newlines and tabs in the
    /// description).
    pub fn validate(&self) -> Result<()> {
        check_line("title", &self.title, 1, Self::TITLE_MAX)?;
        check_line("venue", &self.venue, 0, Self::TITLE_MAX)?;
        check_free_text("description", &self.description, Self::DESCRIPTION_MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules() {
        let ok = Event {
            id: EventId(1),
            title: "周杰伦 2027 巡回演唱会".into(),
            venue: "上海体育场".into(),
            description: String::new(),
            created_at: chrono::Utc::now(),
        };
        assert!(ok.validate().is_ok());
        let bad = |f: fn(&mut Event)| {
            let mut e = ok.clone();
            f(&mut e);
            e.validate().unwrap_err().to_string()
        };
        assert!(bad(|e| e.title = " ".into()).contains("title"));
        assert!(bad(|e| e.venue = "a\u{7}".into()).contains("venue"));
        assert!(bad(|e| e.venue = "v".repeat(201)).contains("venue"));
        assert!(bad(|e| e.description = "\0".into()).contains("description"));
    }
}
