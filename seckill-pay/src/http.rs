//! The HTTP client both providers call their gateways with: TLS by rustls, bounded timeouts,
//! and transport failures mapped to [`Error::Unavailable`] so callers retry them.

use seckill_core::{Error, Result};
use std::time::Duration;

/// A response as read: status, headers with lower-case names, body.
#[derive(Debug)]
pub(crate) struct Reply {
    pub status: u16,
    #[cfg_attr(not(feature = "wechat"), allow(dead_code))]
    pub headers: Vec<(String, String)>,
    pub body: String,
}

#[cfg_attr(not(feature = "wechat"), allow(dead_code))]
impl Reply {
    /// The first header named `name` (lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// One client per provider: connections are pooled and reused.
#[derive(Debug, Clone)]
pub(crate) struct Client {
    inner: reqwest::Client,
    backend: &'static str,
}

impl Client {
    pub fn new(backend: &'static str) -> Result<Self> {
        let inner = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(15))
            .build()
            .map_err(|e| Error::backend(backend, e))?;
        Ok(Self { inner, backend })
    }

    /// Sends `request` and reads the whole answer.
    pub async fn send(&self, request: reqwest::RequestBuilder) -> Result<Reply> {
        let unavailable = |e: reqwest::Error| Error::Unavailable {
            backend: self.backend,
            message: e.to_string(),
        };
        let response = request.send().await.map_err(unavailable)?;
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .filter_map(|(k, v)| Some((k.as_str().to_string(), v.to_str().ok()?.to_string())))
            .collect();
        let body = response.text().await.map_err(unavailable)?;
        Ok(Reply {
            status,
            headers,
            body,
        })
    }

    #[cfg_attr(not(feature = "wechat"), allow(dead_code))]
    pub fn get(&self, url: &str) -> reqwest::RequestBuilder {
        self.inner.get(url)
    }

    pub fn post(&self, url: &str) -> reqwest::RequestBuilder {
        self.inner.post(url)
    }
}
