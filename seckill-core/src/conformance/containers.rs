//! Test services in Docker (feature `testcontainers`), for contributors who have a Docker engine
//! and no services running. Each service starts once per test process and is kept running for
//! all its tests; containers carry the label `seckill-test=1` and outlive the process, so remove
//! them with `docker rm -f $(docker ps -q --filter label=seckill-test=1)`.

use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::OnceLock;
use testcontainers::core::{IntoContainerPort, WaitFor};
use testcontainers::runners::AsyncRunner;
use testcontainers::{GenericImage, ImageExt};

/// A service this helper can start, by the variable that names its URL.
struct Spec {
    image: &'static str,
    tag: &'static str,
    port: u16,
    ready: &'static str,
    url: fn(&str, u16) -> String,
}

fn spec(var: &str) -> Option<Spec> {
    match var {
        "SECKILL_TEST_REDIS_URL" => Some(Spec {
            image: "redis",
            tag: "7",
            port: 6379,
            ready: "Ready to accept connections",
            url: |host, port| format!("redis://{host}:{port}/0"),
        }),
        _ => None,
    }
}

fn docker_reachable() -> bool {
    std::env::var_os("DOCKER_HOST").is_some()
        || std::path::Path::new("/var/run/docker.sock").exists()
}

/// The URL of a container running the service `var` names, started on first use; `None` when
/// there is no Docker engine or no container recipe for `var`.
pub(super) fn url_for(var: &str) -> Option<String> {
    static STARTED: OnceLock<Mutex<HashMap<String, String>>> = OnceLock::new();
    let spec = spec(var)?;
    if !docker_reachable() {
        return None;
    }
    let started = STARTED.get_or_init(Default::default);
    if let Some(url) = started.lock().get(var) {
        return Some(url.clone());
    }
    // A thread of its own, so this works from sync tests and from inside a runtime alike.
    let url = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .ok()?;
        rt.block_on(async {
            let container = GenericImage::new(spec.image, spec.tag)
                .with_exposed_port(spec.port.tcp())
                .with_wait_for(WaitFor::message_on_stdout(spec.ready))
                .with_startup_timeout(std::time::Duration::from_secs(120))
                .with_label("seckill-test", "1")
                .start()
                .await
                .map_err(|e| eprintln!("testcontainers: cannot start {}: {e}", spec.image))
                .ok()?;
            let host = container.get_host().await.ok()?.to_string();
            let port = container.get_host_port_ipv4(spec.port).await.ok()?;
            // Kept for the whole test process.
            Box::leak(Box::new(container));
            Some((spec.url)(&host, port))
        })
    })
    .join()
    .ok()??;
    started.lock().insert(var.to_string(), url.clone());
    Some(url)
}
