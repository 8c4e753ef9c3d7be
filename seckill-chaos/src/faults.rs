//! The faults, each applied to a live sale for a while and then healed, and the seeded random
//! schedule of the long form (so a failing run can be replayed from its seed).

use crate::cluster::{Backend, Cluster, Persistence, ROLES};
use crate::proxy::Fault as Link;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use std::time::Duration;

/// One fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Nothing (a baseline run).
    Nothing,
    /// SIGKILL server process `i` (in [`ROLES`] order), restart it after the hold.
    KillServer(usize),
    /// SIGSTOP server process `i` for the hold (longer than lock leases and delivery
    /// timeouts when the hold is), then SIGCONT.
    PauseServer(usize),
    /// SIGKILL Redis, restart it from its files after the hold.
    KillRedis,
    /// SIGSTOP Redis for the hold.
    PauseRedis,
    /// Kill Redis and restart it with no data at all.
    RedisEmpty,
    /// Pause the relay (reservations pile up in the outbox, acknowledged but not yet orders),
    /// restart Redis with no data, resume the relay: the acknowledged reservations are lost.
    RedisEmptyUnrelayed,
    /// Kill Redis and restart it from a snapshot taken a few seconds earlier (a rewind).
    RedisRewind,
    /// A failover to a replica that missed the last writes: the replica stops following for
    /// the hold, then the primary is SIGKILLed and the replica takes over.
    RedisFailover,
    /// SIGKILL PostgreSQL, restart it after the hold.
    KillPostgres,
    /// A fault on every process's link to a backend, for the hold.
    Link(Backend, Link),
}

impl Fault {
    /// A short name for tables and the command line.
    pub fn name(&self) -> String {
        match self {
            Fault::Nothing => "none".into(),
            Fault::KillServer(i) => format!("kill-{}{}", ROLES[*i], suffix(*i)),
            Fault::PauseServer(i) => format!("pause-{}{}", ROLES[*i], suffix(*i)),
            Fault::KillRedis => "kill-redis".into(),
            Fault::PauseRedis => "pause-redis".into(),
            Fault::RedisEmpty => "redis-empty".into(),
            Fault::RedisEmptyUnrelayed => "redis-empty-unrelayed".into(),
            Fault::RedisRewind => "redis-rewind".into(),
            Fault::RedisFailover => "redis-failover".into(),
            Fault::KillPostgres => "kill-postgres".into(),
            Fault::Link(b, l) => format!(
                "{}-{}",
                match b {
                    Backend::Redis => "redis",
                    Backend::Postgres => "postgres",
                    Backend::Broker => "broker",
                },
                match l {
                    Link::None => "ok".to_string(),
                    Link::Cut => "cut".into(),
                    Link::Refuse => "refuse".into(),
                    Link::Partition => "partition".into(),
                    Link::Latency(d) => format!("latency{}ms", d.as_millis()),
                    Link::Stall => "stall".into(),
                }
            ),
        }
    }

    /// Every fault the harness knows.
    pub fn all() -> Vec<Fault> {
        let mut v = vec![Fault::Nothing];
        v.extend((0..ROLES.len()).map(Fault::KillServer));
        v.extend((0..ROLES.len()).map(Fault::PauseServer));
        v.extend([
            Fault::KillRedis,
            Fault::PauseRedis,
            Fault::RedisEmpty,
            Fault::RedisEmptyUnrelayed,
            Fault::RedisRewind,
            Fault::RedisFailover,
            Fault::KillPostgres,
        ]);
        for b in [Backend::Redis, Backend::Postgres, Backend::Broker] {
            for l in [
                Link::Cut,
                Link::Refuse,
                Link::Partition,
                Link::Latency(Duration::from_millis(200)),
                Link::Stall,
            ] {
                v.push(Fault::Link(b, l));
            }
        }
        v
    }

    /// Parses a [`Fault::name`].
    pub fn parse(s: &str) -> Result<Fault, String> {
        Fault::all()
            .into_iter()
            .find(|f| f.name() == s)
            .ok_or_else(|| {
                let names: Vec<String> = Fault::all().iter().map(Fault::name).collect();
                format!("unknown fault {s:?}; known: {}", names.join(", "))
            })
    }

    /// Whether the documented loss window (docs/guarantees.md) allows acknowledged
    /// reservations to be lost under this fault: only when Redis loses data, and a failover
    /// only with `ack=memory`. Under every other fault a lost reservation is a violation.
    pub fn may_lose(&self, persistence: Persistence, stock_ack: &str) -> bool {
        match self {
            Fault::RedisEmpty | Fault::RedisEmptyUnrelayed | Fault::RedisRewind => true,
            Fault::RedisFailover => stock_ack == "memory",
            Fault::KillRedis => persistence == Persistence::None,
            _ => false,
        }
    }

    /// Whether the fault needs a snapshot taken before it (the rewind).
    pub fn needs_snapshot(&self) -> bool {
        matches!(self, Fault::RedisRewind)
    }

    /// Applies the fault, holds it for `hold`, and heals it.
    pub async fn apply(&self, c: &mut Cluster, hold: Duration) -> Result<(), String> {
        match *self {
            Fault::Nothing => tokio::time::sleep(hold).await,
            Fault::KillServer(i) => {
                c.kill_server(i).await;
                tokio::time::sleep(hold).await;
                c.start_server(i).await?;
            }
            Fault::PauseServer(i) => {
                c.pause_server(i, true);
                tokio::time::sleep(hold).await;
                c.pause_server(i, false);
            }
            Fault::KillRedis => {
                c.kill_redis().await;
                tokio::time::sleep(hold).await;
                c.restart_redis().await?;
            }
            Fault::PauseRedis => {
                c.pause_redis(true);
                tokio::time::sleep(hold).await;
                c.pause_redis(false);
            }
            Fault::RedisEmpty => c.restart_redis_empty().await?,
            Fault::RedisEmptyUnrelayed => {
                let relay = ROLES.iter().position(|r| *r == "relay").unwrap_or(2);
                c.pause_server(relay, true);
                tokio::time::sleep(hold).await;
                let r = c.restart_redis_empty().await;
                c.pause_server(relay, false);
                r?;
            }
            Fault::RedisRewind => c.rewind_redis().await?,
            Fault::RedisFailover => c.fail_over(hold).await?,
            Fault::KillPostgres => {
                c.kill_postgres().await;
                tokio::time::sleep(hold).await;
                c.restart_postgres().await?;
            }
            Fault::Link(b, l) => {
                c.proxy_fault(b, l);
                tokio::time::sleep(hold).await;
                c.proxy_fault(b, Link::None);
            }
        }
        Ok(())
    }
}

fn suffix(i: usize) -> &'static str {
    match i {
        0 => "1",
        1 => "2",
        _ => "",
    }
}

/// The faults of the CI's short form: one of each class, a few minutes in all.
pub fn short_form() -> Vec<Fault> {
    vec![
        Fault::KillServer(3),                     // order worker
        Fault::KillRedis,                         // restart from its AOF
        Fault::RedisEmpty,                        // loses everything
        Fault::RedisEmptyUnrelayed,               // loses acknowledged reservations
        Fault::Link(Backend::Redis, Link::Stall), // a Redis that stops answering
        Fault::KillPostgres,
    ]
}

/// A seeded random order of faults for the long form: every fault once per round, shuffled.
pub fn schedule(seed: u64, runs: usize) -> Vec<Fault> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut out = Vec::new();
    while out.len() < runs {
        let mut round = Fault::all();
        round.retain(|f| *f != Fault::Nothing);
        round.shuffle(&mut rng);
        out.extend(round);
    }
    out.truncate(runs);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_ones_list_the_known() {
        for f in Fault::all() {
            assert_eq!(Fault::parse(&f.name()), Ok(f));
        }
        let e = Fault::parse("kill-everything").unwrap_err();
        assert!(e.contains("kill-redis") && e.contains("redis-stall"), "{e}");
    }

    #[test]
    fn only_faults_where_redis_loses_data_may_lose_acknowledged_buys() {
        let lossy: Vec<String> = Fault::all()
            .iter()
            .filter(|f| f.may_lose(Persistence::Aof, "memory"))
            .map(Fault::name)
            .collect();
        assert_eq!(
            lossy,
            [
                "redis-empty",
                "redis-empty-unrelayed",
                "redis-rewind",
                "redis-failover"
            ]
        );
        assert!(!Fault::RedisFailover.may_lose(Persistence::Aof, "replicas:1"));
        assert!(Fault::KillRedis.may_lose(Persistence::None, "memory"));
        assert!(!Fault::KillRedis.may_lose(Persistence::Aof, "memory"));
    }

    #[test]
    fn a_schedule_replays_from_its_seed() {
        assert_eq!(schedule(7, 40), schedule(7, 40));
        assert_ne!(schedule(7, 40), schedule(8, 40));
        let round = schedule(1, Fault::all().len() - 1);
        let mut names: Vec<String> = round.iter().map(Fault::name).collect();
        names.sort();
        names.dedup();
        assert_eq!(
            names.len(),
            Fault::all().len() - 1,
            "each fault once a round"
        );
    }
}
