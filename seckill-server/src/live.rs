//! Live configuration: the settings that change without a restart, from the config file
//! (watched, and re-read on SIGHUP) and, across processes, from the shared settings store
//! (`backends.settings`) that the admin route and `seckill config` write.
//!
//! What runs is the **effective** configuration: the file's (as loaded at start, its
//! reloadable keys refreshed on each reload) with the shared **overrides** applied over it as a
//! JSON merge patch (RFC 7396: a `null` removes an override, so the file's value comes back).
//! Only the keys of [`RELOADABLE`] may change live; a change is checked whole before anything
//! of it applies, and an invalid one is refused whole (logged, counted in
//! `seckill_config_reloads_total{outcome="refused"}`), the old configuration staying. Each
//! process polls the store's version every [`POLL`], so a change set on one reaches every
//! process within a second, and a missed poll cannot leave one behind.

use crate::config::{Config, LimitsConfig};
use crate::error::{ApiError, Code};
use crate::state::AppState;
use parking_lot::RwLock;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use serde::Serialize;
use serde_json::{Map, Value};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// The keys that change without a restart (dotted paths of the config; everything under one
/// of them too).
pub const RELOADABLE: &[&str] = &[
    "limits.login_per_ip",
    "limits.login_per_user",
    "limits.buy_per_ip",
    "limits.send_code_per_phone",
    "limits.send_code_per_ip",
    "sale.buy_rate_per_sec",
    "sale.buy_burst",
    "sale.paused_activities",
    "http.buy_concurrency",
    "http.api_concurrency",
    "http.cors.allowed_origins",
    "log.level",
    "payment.disabled",
];

/// How often a process reads the shared settings' version.
pub const POLL: Duration = Duration::from_millis(250);

/// Sets the process's log filter (the subscriber's reload handle).
pub type LogReload = Box<dyn Fn(&str) -> Result<(), String> + Send + Sync>;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReloadLabels {
    source: &'static str,
    outcome: &'static str,
}

/// A process's live configuration.
pub struct Live {
    /// The file's configuration (as running: command-line overrides included).
    base: RwLock<Value>,
    /// The shared overrides and the store version they came from.
    overrides: RwLock<(u64, Value)>,
    /// What runs now.
    effective: RwLock<Arc<Config>>,
    file: Option<PathBuf>,
    file_seen: RwLock<Option<SystemTime>>,
    log: RwLock<Option<LogReload>>,
    reloads: Family<ReloadLabels, Counter>,
    version: Gauge,
    /// Held from reading the sources to applying their result: a file reload, a poll and an
    /// admin's write never interleave (each would apply a config built from stale parts).
    changing: parking_lot::Mutex<()>,
}

impl std::fmt::Debug for Live {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Live")
            .field("file", &self.file)
            .field("version", &self.overrides.read().0)
            .finish_non_exhaustive()
    }
}

/// The live values as `GET /api/v1/admin/config` shows them.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct LiveView {
    /// The shared settings' version this process runs.
    pub version: u64,
    /// Every reloadable key's value now, by its dotted path.
    #[schema(value_type = Object)]
    pub values: Map<String, Value>,
    /// The shared overrides (a JSON merge patch over the file's values).
    #[schema(value_type = Object)]
    pub overrides: Value,
    /// The keys that may change live.
    pub reloadable: Vec<&'static str>,
}

/// RFC 7396: `patch` merged into `target` (`null` removes a key).
pub fn merge(target: &mut Value, patch: &Value) {
    match patch {
        Value::Object(p) => {
            if !target.is_object() {
                *target = Value::Object(Map::new());
            }
            let t = target.as_object_mut().expect("an object");
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else {
                    merge(t.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        v => *target = v.clone(),
    }
}

fn reloadable(path: &str) -> bool {
    RELOADABLE
        .iter()
        .any(|r| path == *r || path.starts_with(&format!("{r}.")))
}

/// Every leaf of `patch` that is not reloadable (an object under a reloadable key is a leaf).
fn fixed_keys(patch: &Value, at: &str, out: &mut Vec<String>) {
    match patch {
        Value::Object(m) if !reloadable(at) || at.is_empty() => {
            if m.is_empty() && !at.is_empty() {
                out.push(at.to_string());
            }
            for (k, v) in m {
                let path = if at.is_empty() {
                    k.clone()
                } else {
                    format!("{at}.{k}")
                };
                fixed_keys(v, &path, out);
            }
        }
        _ if reloadable(at) => {}
        _ => out.push(at.to_string()),
    }
}

/// The value at a dotted path.
fn at<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(v, |v, k| v.get(k))
}

fn set_at(v: &mut Value, path: &str, value: Value) {
    let mut cur = v;
    let parts: Vec<&str> = path.split('.').collect();
    for k in &parts[..parts.len() - 1] {
        if !cur.get(*k).is_some_and(Value::is_object) {
            cur[*k] = Value::Object(Map::new());
        }
        cur = &mut cur[*k];
    }
    cur[parts[parts.len() - 1]] = value;
}

/// What is wrong with the live part of `c`, if anything (the rest was checked at start).
pub fn check(c: &Config) -> Result<(), String> {
    crate::overload::check(&c.http)?;
    tracing_subscriber::EnvFilter::try_new(&c.log.level)
        .map_err(|e| format!("log.level {:?}: {e}", c.log.level))?;
    let configured: Vec<&str> = c.payment.provider.split(',').map(str::trim).collect();
    for p in &c.payment.disabled {
        if !configured.contains(&p.as_str()) {
            return Err(format!(
                "payment.disabled: {p:?} is not a configured provider ({})",
                configured.join(", ")
            ));
        }
    }
    for (name, r) in [
        ("login_per_ip", &c.limits.login_per_ip),
        ("login_per_user", &c.limits.login_per_user),
        ("buy_per_ip", &c.limits.buy_per_ip),
        ("send_code_per_phone", &c.limits.send_code_per_phone),
        ("send_code_per_ip", &c.limits.send_code_per_ip),
    ] {
        if r.rate > 0 && r.per_secs == 0 {
            return Err(format!("limits.{name}.per_secs must be above 0"));
        }
    }
    Ok(())
}

impl Live {
    /// The live configuration of a process started with `config`, reading `file` on reloads.
    pub fn new(config: &Config, file: Option<PathBuf>) -> Self {
        let file_seen = file.as_ref().and_then(modified);
        Self {
            base: RwLock::new(serde_json::to_value(config).expect("a config serializes")),
            overrides: RwLock::new((0, Value::Object(Map::new()))),
            effective: RwLock::new(Arc::new(config.clone())),
            file,
            file_seen: RwLock::new(file_seen),
            log: RwLock::new(None),
            reloads: Family::default(),
            version: Gauge::default(),
            changing: parking_lot::Mutex::new(()),
        }
    }

    /// Plugs in the log filter's reload handle (the binary does, after building).
    pub fn set_log_reload(&self, reload: LogReload) {
        *self.log.write() = Some(reload);
    }

    /// The configuration running now.
    pub fn config(&self) -> Arc<Config> {
        self.effective.read().clone()
    }

    /// The rate limits running now.
    pub fn limits(&self) -> LimitsConfig {
        self.effective.read().limits.clone()
    }

    /// Whether new payments through `provider` are switched off.
    pub fn provider_disabled(&self, provider: &str) -> bool {
        self.effective
            .read()
            .payment
            .disabled
            .iter()
            .any(|p| p == provider)
    }

    /// Registers `seckill_config_reloads_total` and `seckill_config_version`.
    pub fn register(&self, r: &mut prometheus_client::registry::Registry) {
        for source in ["file", "shared"] {
            for outcome in ["applied", "refused"] {
                let _ = self
                    .reloads
                    .get_or_create(&ReloadLabels { source, outcome });
            }
        }
        r.register(
            "seckill_config_reloads",
            "Live configuration changes by source (file, shared) and outcome (applied, refused: invalid, the old configuration stays).",
            self.reloads.clone(),
        );
        r.register(
            "seckill_config_version",
            "The version of the shared live settings this process runs.",
            self.version.clone(),
        );
    }

    fn count(&self, source: &'static str, outcome: &'static str) {
        self.reloads
            .get_or_create(&ReloadLabels { source, outcome })
            .inc();
    }

    /// The effective configuration of `base` with `overrides`, checked.
    fn combine(base: &Value, overrides: &Value) -> Result<Config, String> {
        let mut v = base.clone();
        merge(&mut v, overrides);
        let c: Config = serde_json::from_value(v).map_err(|e| e.to_string())?;
        check(&c)?;
        Ok(c)
    }

    /// The view of what runs now.
    pub fn view(&self) -> LiveView {
        let eff = serde_json::to_value(&*self.config()).unwrap_or(Value::Null);
        let values = RELOADABLE
            .iter()
            .map(|k| (k.to_string(), at(&eff, k).cloned().unwrap_or(Value::Null)))
            .collect();
        let (version, overrides) = self.overrides.read().clone();
        LiveView {
            version,
            values,
            overrides,
            reloadable: RELOADABLE.to_vec(),
        }
    }
}

fn modified(f: &PathBuf) -> Option<SystemTime> {
    std::fs::metadata(f).and_then(|m| m.modified()).ok()
}

impl AppState {
    /// Puts `c`'s live values in force: rate limits, buy quota and concurrency limits, CORS
    /// origins, the log filter, the kill switch and the payment switches.
    fn apply(&self, c: Config) {
        let live = &self.live;
        let s = &c.sale;
        self.engine.controls().set_buy_quota(
            (s.buy_rate_per_sec > 0)
                .then(|| seckill_core::Quota::per_second(s.buy_rate_per_sec, s.buy_burst.max(1))),
        );
        self.engine
            .controls()
            .set_paused(s.paused_activities.iter().copied());
        self.overload.buy.set_limit(c.http.buy_concurrency);
        self.overload.api.set_limit(c.http.api_concurrency);
        if let Err(e) = self.overload.set_origins(&c.http.cors.allowed_origins) {
            tracing::error!(error = %e, "CORS origins not changed");
        }
        let level_changed = live.effective.read().log.level != c.log.level;
        if level_changed {
            if let Some(set) = live.log.read().as_ref() {
                if let Err(e) = set(&c.log.level) {
                    tracing::error!(error = %e, "log level not changed");
                }
            }
        }
        *live.effective.write() = Arc::new(c);
    }

    /// Applies `overrides` (from the store's `version`) over the file's values, or refuses
    /// them whole.
    fn adopt(&self, source: &'static str, version: u64, overrides: Value) -> Result<(), String> {
        let live = &self.live;
        let _one_change_at_a_time = live.changing.lock();
        if version < live.overrides.read().0 {
            // An older version than one already taken (a slow poll behind an admin's write).
            return Ok(());
        }
        let base = live.base.read().clone();
        match Live::combine(&base, &overrides) {
            Ok(c) => {
                *live.overrides.write() = (version, overrides);
                live.version.set(version as i64);
                self.apply(c);
                live.count(source, "applied");
                tracing::info!(source, version, "live configuration applied");
                Ok(())
            }
            Err(e) => {
                // Remember the version: the refusal is logged once, not at every poll.
                live.overrides.write().0 = version;
                live.count(source, "refused");
                tracing::error!(source, version, error = %e,
                    "live configuration refused; the old one stays");
                Err(e)
            }
        }
    }

    /// Reads the shared settings when their version moved, and applies them.
    pub async fn poll_shared(&self) -> seckill_core::Result<()> {
        let store = &self.engine.backends().settings;
        let seen = self.live.overrides.read().0;
        if store.version().await? == seen {
            return Ok(());
        }
        let got = store.get().await?;
        let overrides = match got.doc.as_deref().map(serde_json::from_str::<Value>) {
            None => Value::Object(Map::new()),
            Some(Ok(v)) if v.is_object() => v,
            Some(_) => {
                self.live.overrides.write().0 = got.version;
                self.live.count("shared", "refused");
                tracing::error!(
                    version = got.version,
                    "the shared settings are not a JSON object; ignored"
                );
                return Ok(());
            }
        };
        let _ = self.adopt("shared", got.version, overrides);
        Ok(())
    }

    /// Re-reads the config file (if the process has one): its reloadable values replace the
    /// running ones (under the shared overrides); a file that does not load, or whose values
    /// are invalid, is refused whole. Keys that need a restart are reported, not applied.
    pub fn reload_file(&self, why: &str) -> Result<(), String> {
        let live = &self.live;
        let Some(path) = &live.file else {
            return Ok(());
        };
        let _one_change_at_a_time = live.changing.lock();
        *live.file_seen.write() = modified(path);
        let loaded = match Config::load(Some(path)) {
            Ok(c) => c,
            Err(e) => {
                live.count("file", "refused");
                tracing::error!(why, error = %e, "config file refused; the old configuration stays");
                return Err(e.to_string());
            }
        };
        let new = serde_json::to_value(&loaded).map_err(|e| e.to_string())?;
        let mut base = live.base.read().clone();
        let mut fixed = Vec::new();
        diff_fixed(&base, &new, "", &mut fixed);
        for k in RELOADABLE {
            if let Some(v) = at(&new, k) {
                set_at(&mut base, k, v.clone());
            }
        }
        let overrides = live.overrides.read().1.clone();
        match Live::combine(&base, &overrides) {
            Ok(c) => {
                *live.base.write() = base;
                self.apply(c);
                live.count("file", "applied");
                if !fixed.is_empty() {
                    tracing::warn!(why, keys = ?fixed, "config file reloaded; these keys need a restart and still run their old values");
                } else {
                    tracing::info!(why, "config file reloaded");
                }
                Ok(())
            }
            Err(e) => {
                live.count("file", "refused");
                tracing::error!(why, error = %e, "config file refused; the old configuration stays");
                Err(e)
            }
        }
    }

    /// Whether the config file changed since it was last read.
    fn file_changed(&self) -> bool {
        let live = &self.live;
        live.file
            .as_ref()
            .is_some_and(|f| modified(f) != *live.file_seen.read())
    }

    /// Writes `patch` (a JSON merge patch of reloadable keys) into the shared settings, checked
    /// whole against this process's file values, and applies it here at once; every other
    /// process applies it at its next poll. A key that needs a restart, or a value that does
    /// not check, is refused (2002) and nothing changes.
    pub async fn set_live(&self, patch: Value) -> Result<LiveView, ApiError> {
        if !patch.is_object() {
            return Err(ApiError::new(
                Code::MalformedBody,
                "the body is a JSON object of reloadable keys (a merge patch)",
            ));
        }
        let mut fixed = Vec::new();
        fixed_keys(&patch, "", &mut fixed);
        if !fixed.is_empty() {
            return Err(ApiError::new(
                Code::InvalidField,
                format!(
                    "not reloadable: {}; reloadable: {}",
                    fixed.join(", "),
                    RELOADABLE.join(", ")
                ),
            ));
        }
        let store = &self.engine.backends().settings;
        for _ in 0..5 {
            let cur = store.get().await?;
            let mut next = cur
                .doc
                .as_deref()
                .and_then(|d| serde_json::from_str::<Value>(d).ok())
                .filter(Value::is_object)
                .unwrap_or_else(|| Value::Object(Map::new()));
            merge(&mut next, &patch);
            prune(&mut next);
            let base = self.live.base.read().clone();
            Live::combine(&base, &next).map_err(|e| ApiError::new(Code::InvalidField, e))?;
            match store.put(cur.version, &next.to_string()).await {
                Ok(v) => {
                    let _ = self.adopt("shared", v, next);
                    return Ok(self.live.view());
                }
                Err(seckill_core::Error::Conflict { .. }) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(ApiError::new(
            Code::Conflict,
            "the shared settings kept changing under this write; retry",
        ))
    }
}

/// Drops empty objects a `null` left behind.
fn prune(v: &mut Value) {
    if let Value::Object(m) = v {
        for x in m.values_mut() {
            prune(x);
        }
        m.retain(|_, x| !matches!(x, Value::Object(o) if o.is_empty()));
    }
}

/// The non-reloadable keys whose values differ between `old` and `new`.
fn diff_fixed(old: &Value, new: &Value, at_path: &str, out: &mut Vec<String>) {
    if reloadable(at_path) {
        return;
    }
    match (old, new) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in b {
                let path = if at_path.is_empty() {
                    k.clone()
                } else {
                    format!("{at_path}.{k}")
                };
                diff_fixed(a.get(k).unwrap_or(&Value::Null), v, &path, out);
            }
        }
        (a, b) if a != b => out.push(at_path.to_string()),
        _ => {}
    }
}

/// Keeps the live configuration current until `stop`: the shared settings every [`POLL`], the
/// config file when it changed (checked every second) or on SIGHUP.
pub async fn watch(state: AppState, mut stop: tokio::sync::watch::Receiver<bool>) {
    #[cfg(unix)]
    let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
    let mut tick = tokio::time::interval(POLL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut n: u64 = 0;
    loop {
        #[cfg(unix)]
        let hangup = async {
            match hup.as_mut() {
                Some(h) => {
                    h.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        #[cfg(not(unix))]
        let hangup = std::future::pending::<()>();
        tokio::select! {
            _ = tick.tick() => {
                n += 1;
                if let Err(e) = state.poll_shared().await {
                    if n % 40 == 1 {
                        tracing::warn!(error = %e, "cannot read the shared settings; retrying");
                    }
                }
                if n % 4 == 0 && state.file_changed() {
                    let _ = state.reload_file("file changed");
                }
            }
            _ = hangup => {
                let _ = state.reload_file("SIGHUP");
            }
            _ = stop.changed() => break,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_patch_sets_and_removes() {
        let mut v = json!({"a": {"b": 1, "c": 2}, "d": 3});
        merge(&mut v, &json!({"a": {"b": null, "e": [1]}, "d": 4}));
        assert_eq!(v, json!({"a": {"c": 2, "e": [1]}, "d": 4}));
    }

    #[test]
    fn only_reloadable_keys_pass() {
        let mut out = Vec::new();
        fixed_keys(
            &json!({"limits": {"login_per_ip": {"rate": 5}}, "http": {"cors": {"allowed_origins": []}},
                "sale": {"paused_activities": ["1"]}, "log": {"level": "debug"}}),
            "",
            &mut out,
        );
        assert!(out.is_empty(), "{out:?}");
        fixed_keys(
            &json!({"listen": "0.0.0.0:1", "http": {"max_body_bytes": 1}, "limits": {}}),
            "",
            &mut out,
        );
        assert_eq!(out, vec!["http.max_body_bytes", "limits", "listen"]);
    }

    #[test]
    fn a_change_is_checked_whole() {
        let base = serde_json::to_value(Config::default()).unwrap();
        let ok = json!({"http": {"buy_concurrency": 7}, "sale": {"paused_activities": ["42"]}});
        let c = Live::combine(&base, &ok).unwrap();
        assert_eq!(c.http.buy_concurrency, 7);
        assert_eq!(c.sale.paused_activities.len(), 1);
        for bad in [
            json!({"http": {"cors": {"allowed_origins": ["no-scheme"]}}}),
            json!({"log": {"level": "[[["}}),
            json!({"payment": {"disabled": ["paypal"]}}),
            json!({"http": {"buy_concurrency": "many"}}),
        ] {
            assert!(Live::combine(&base, &bad).is_err(), "{bad}");
        }
    }
}
