//! The Redis front end over the in-memory store, for differential testing
//! against redis-server without a cluster: `cargo run -p
//! elastickv-api-redis --example memserver -- 127.0.0.1:6390`.

use std::sync::Arc;

use elastickv_api_redis::memstore::MemStore;
use elastickv_api_redis::{serve, ServerConfig};

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:6390".into());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    let (_stop, stop_rx) = tokio::sync::watch::channel(false);
    let _ = serve(
        Arc::new(MemStore::new()),
        listener,
        ServerConfig::default(),
        stop_rx,
    )
    .await;
    Ok(())
}
