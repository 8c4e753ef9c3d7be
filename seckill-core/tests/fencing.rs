//! Lock fencing that storage checks: a holder of an activity's lock stalls (a GC pause, a
//! SIGSTOP) past its lease; another holder takes the lock and writes; the first wakes and
//! writes what it had computed. Its writes carry its older fencing token, so the stock backend
//! and the catalog refuse them and the later holder's state stands. The negative control shows
//! the hazard is real: the same stale writes without their token land.

use seckill_core::conformance::engine::live_activity;
use seckill_core::domain::Activity;
use seckill_core::engine::{activity_lock_key, Backends, Engine, EngineConfig};
use seckill_core::memory::MockProvider;
use seckill_core::stock::StockSpec;
use seckill_core::{Entity, Error, ManualClock};
use std::sync::Arc;
use std::time::Duration;

fn spec(a: &Activity, total: u32, fence: u64) -> StockSpec {
    StockSpec {
        activity_id: a.id,
        total,
        sold: 0,
        per_user_limit: a.per_user_limit,
        starts_at: a.starts_at,
        ends_at: a.ends_at,
        user_counts: vec![],
        adopt: vec![],
        fence,
        buckets: 1,
        tiers: Vec::new(),
        quotas: Vec::new(),
        seats: Vec::new(),
    }
}

fn is_stale(r: &seckill_core::Result<()>) -> bool {
    matches!(
        r,
        Err(Error::Conflict {
            entity: Entity::ActivityLock,
            ..
        })
    )
}

#[tokio::test]
async fn a_stalled_lock_holder_cannot_overwrite_the_next_holders_writes() {
    let clock = ManualClock::new(chrono::Utc::now());
    let backends = Backends::in_memory(
        Arc::new(clock.clone()),
        Arc::new(MockProvider::new(b"fence".to_vec())),
    );
    let e = Engine::new(backends, EngineConfig::default());
    let b = e.backends().clone();
    let a = live_activity(b.catalog.as_ref(), e.now(), 10, 2).await;
    e.warm_up(a.id).await.unwrap();

    // The first holder takes the activity's lock (as a warm-up or an update does) … and stalls
    // past its lease.
    let stalled = b
        .lock
        .acquire(&activity_lock_key(a.id), Duration::from_secs(10))
        .await
        .unwrap()
        .expect("the lock is free");
    clock.advance(chrono::Duration::seconds(11));

    // Meanwhile an operator raises the total to 20, through the engine, under the lock.
    let raised = Activity {
        total_stock: 20,
        ..b.catalog.activity(a.id).await.unwrap().unwrap()
    };
    e.update_activity(&raised).await.unwrap();
    assert_eq!(b.stock.snapshot(a.id).await.unwrap().unwrap().total, 20);

    // The stalled holder wakes and writes what it had computed: total 5, a new title.
    let stale_load = b.stock.load(&spec(&a, 5, stalled.token)).await;
    assert!(is_stale(&stale_load), "stock: {stale_load:?}");
    let stale_record = Activity {
        title: "written by a holder whose lease lapsed".into(),
        total_stock: 5,
        ..raised.clone()
    };
    let stale_update = b
        .catalog
        .update_activity(&stale_record, stalled.token)
        .await;
    assert!(is_stale(&stale_update), "catalog: {stale_update:?}");
    // The later holder's state stands.
    assert_eq!(b.stock.snapshot(a.id).await.unwrap().unwrap().total, 20);
    assert_eq!(b.catalog.activity(a.id).await.unwrap().unwrap(), raised);

    // Negative control: without the token the very same stale writes land.
    b.stock.load(&spec(&a, 5, 0)).await.unwrap();
    assert_eq!(b.stock.snapshot(a.id).await.unwrap().unwrap().total, 5);
    b.catalog.update_activity(&stale_record, 0).await.unwrap();
    assert_eq!(
        b.catalog.activity(a.id).await.unwrap().unwrap().total_stock,
        5
    );
}

/// An update whose own re-load of the stock is refused as stale (a later holder of the lock
/// loaded meanwhile, from the record this update wrote) keeps its record: rolling it back
/// would leave the record behind the stock the later holder loaded from it.
#[tokio::test]
async fn an_update_whose_reload_is_stale_keeps_its_record() {
    let clock = ManualClock::new(chrono::Utc::now());
    let backends = Backends::in_memory(
        Arc::new(clock.clone()),
        Arc::new(MockProvider::new(b"fence".to_vec())),
    );
    let e = Engine::new(backends, EngineConfig::default());
    let b = e.backends().clone();
    let a = live_activity(b.catalog.as_ref(), e.now(), 10, 2).await;
    e.warm_up(a.id).await.unwrap();
    // The later holder's load, with a token above any this engine's lock will issue now.
    let later = u64::MAX / 4;
    b.stock.load(&spec(&a, 20, later)).await.unwrap();
    let changed = Activity {
        total_stock: 20,
        title: "raised".into(),
        ..b.catalog.activity(a.id).await.unwrap().unwrap()
    };
    let r = e.update_activity(&changed).await;
    assert!(is_stale(&r), "the re-load is stale: {r:?}");
    assert_eq!(b.catalog.activity(a.id).await.unwrap().unwrap(), changed);
}
