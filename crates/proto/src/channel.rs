//! gRPC channels to Elastickv nodes that back off when a node is down.
//!
//! tonic 0.12 reconnects a channel whose peer was connected once in a tight
//! loop when the peer refuses connections, pinning a core per channel until
//! the peer returns. Every Elastickv client (node-to-node transport, CLI,
//! harness, benchmark) dials through [`lazy_channel`], whose connector waits
//! out a short, growing pause after a failed connect, so a dead peer costs
//! one attempt per pause instead of a spinning core.

use hyper_util::client::legacy::connect::HttpConnector;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tonic::transport::{Channel, Endpoint, Uri};
use tower_service::Service;

const FIRST_PAUSE: Duration = Duration::from_millis(20);
const MAX_PAUSE: Duration = Duration::from_millis(500);

/// Attempts never start closer together than this, whatever happened to the
/// last one: a connection that opens and dies at once (for instance a
/// loopback self-connect to a dead node's port) must not spin either.
const MIN_INTERVAL: Duration = Duration::from_millis(10);

#[derive(Debug, Default)]
struct FailureState {
    /// When the next attempt may start.
    not_before: Option<Instant>,
    /// Pause after the last failure (grows while failures repeat).
    pause: Duration,
}

/// A TCP connector that pauses between failed connection attempts.
#[derive(Clone)]
pub struct BackoffConnector {
    inner: HttpConnector,
    state: Arc<Mutex<FailureState>>,
}

impl BackoffConnector {
    pub fn new(connect_timeout: Duration) -> Self {
        let mut inner = HttpConnector::new();
        inner.set_nodelay(true);
        inner.enforce_http(false);
        inner.set_connect_timeout(Some(connect_timeout));
        BackoffConnector {
            inner,
            state: Arc::default(),
        }
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl Service<Uri> for BackoffConnector {
    type Response = <HttpConnector as Service<Uri>>::Response;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let mut inner = self.inner.clone();
        let state = self.state.clone();
        Box::pin(async move {
            let wait_until = state.lock().ok().and_then(|s| s.not_before);
            if let Some(t) = wait_until {
                tokio::time::sleep_until(t.into()).await;
            }
            match inner.call(uri).await {
                Ok(stream) => {
                    if let Ok(mut s) = state.lock() {
                        *s = FailureState {
                            not_before: Some(Instant::now() + MIN_INTERVAL),
                            pause: Duration::ZERO,
                        };
                    }
                    Ok(stream)
                }
                Err(e) => {
                    if let Ok(mut s) = state.lock() {
                        s.pause = if s.pause.is_zero() {
                            FIRST_PAUSE
                        } else {
                            (s.pause * 2).min(MAX_PAUSE)
                        };
                        s.not_before = Some(Instant::now() + s.pause);
                    }
                    Err(e.into())
                }
            }
        })
    }
}

/// HTTP/2 flow-control window of one stream, both directions (see
/// `lazy_channel`; servers use the same).
pub const STREAM_WINDOW_BYTES: u32 = 8 << 20;
/// HTTP/2 flow-control window of a whole connection.
pub const CONNECTION_WINDOW_BYTES: u32 = 32 << 20;

/// Errors building a channel.
#[derive(Debug, thiserror::Error)]
#[error("bad address {0:?}")]
pub struct BadAddress(pub String);

/// A lazily connecting channel to `addr` (`host:port`, with or without
/// `http://`), with TCP_NODELAY, a connect timeout, connect backoff and an
/// optional per-request timeout.
pub fn lazy_channel(
    addr: &str,
    connect_timeout: Duration,
    request_timeout: Option<Duration>,
) -> Result<Channel, BadAddress> {
    let uri = if addr.starts_with("http://") || addr.starts_with("https://") {
        addr.to_string()
    } else {
        format!("http://{addr}")
    };
    let endpoint = Endpoint::from_shared(uri)
        .map_err(|_| BadAddress(addr.to_string()))?
        .http2_keep_alive_interval(Duration::from_secs(5))
        .keep_alive_timeout(Duration::from_secs(5))
        // HTTP/2's default 64 KiB windows would make a long-lived stream
        // (the Raft pipe) wait a round trip per 64 KiB of a large batch.
        .initial_stream_window_size(STREAM_WINDOW_BYTES)
        .initial_connection_window_size(CONNECTION_WINDOW_BYTES);
    let endpoint = match request_timeout {
        Some(t) => endpoint.timeout(t),
        None => endpoint,
    };
    Ok(endpoint.connect_with_connector_lazy(BackoffConnector::new(connect_timeout)))
}
