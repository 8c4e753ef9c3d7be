//! Conformance cases of [`SettingsStore`].

use crate::settings::SettingsStore;
use crate::{Entity, Error};
use std::sync::Arc;

/// The backend under test (each case gets a store of its own).
pub type Backend = Arc<dyn SettingsStore>;

/// Empty at first; each write moves the version up and is read back.
pub async fn writes_move_the_version(b: &Backend) {
    let v0 = b.get().await.unwrap();
    assert_eq!(v0.version, 0);
    assert_eq!(v0.doc, None);
    assert_eq!(b.version().await.unwrap(), 0);
    let v1 = b.put(0, r#"{"a":1}"#).await.unwrap();
    assert!(v1 > 0);
    let got = b.get().await.unwrap();
    assert_eq!((got.version, got.doc.as_deref()), (v1, Some(r#"{"a":1}"#)));
    let v2 = b.put(v1, r#"{"a":2}"#).await.unwrap();
    assert!(v2 > v1);
    assert_eq!(b.version().await.unwrap(), v2);
    assert_eq!(b.get().await.unwrap().doc.as_deref(), Some(r#"{"a":2}"#));
}

/// A write from an old version is a conflict and changes nothing.
pub async fn a_stale_write_conflicts(b: &Backend) {
    let v1 = b.put(0, "one").await.unwrap();
    let e = b.put(0, "two").await.unwrap_err();
    assert!(
        matches!(
            e,
            Error::Conflict {
                entity: Entity::Settings,
                ..
            }
        ),
        "{e}"
    );
    let got = b.get().await.unwrap();
    assert_eq!((got.version, got.doc.as_deref()), (v1, Some("one")));
}

/// Of writers racing from one version, exactly one wins.
pub async fn one_of_racing_writers_wins(b: &Backend) {
    let v = b.put(0, "start").await.unwrap();
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let b = b.clone();
            tokio::spawn(async move { b.put(v, &format!("w{i}")).await })
        })
        .collect();
    let mut won = Vec::new();
    for (i, t) in tasks.into_iter().enumerate() {
        if t.await.unwrap().is_ok() {
            won.push(i);
        }
    }
    assert_eq!(won.len(), 1, "{won:?}");
    let got = b.get().await.unwrap();
    assert_eq!(got.doc, Some(format!("w{}", won[0])));
}

/// Stamps out every case of this suite as a test for a backend (`$make` gives a fresh store).
#[macro_export]
macro_rules! settings_store_conformance {
    ($make:path) => {
        $crate::__conformance_tests!(settings, $make;
            writes_move_the_version,
            a_stale_write_conflicts,
            one_of_racing_writers_wins,
        );
    };
}
