//! Per-link TCP proxies: every node dials each peer through its own proxy,
//! so the harness can cut a single direction of a single link on the wire —
//! a real partition, not a node pretending.
//!
//! A cut link drops its open connections and black-holes new ones (accepts,
//! never forwards) until healed, as a dead network path would.

use anyhow::Result;
use std::sync::Arc;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// One direction of one link: connections from `from` to `to`.
pub struct LinkProxy {
    pub from: usize,
    pub to: usize,
    pub port: u16,
    cut: watch::Sender<bool>,
    _task: tokio::task::JoinHandle<()>,
}

impl LinkProxy {
    /// Start a proxy on a free loopback port forwarding to `target_port`.
    pub async fn start(from: usize, to: usize, target_port: u16) -> Result<LinkProxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let (cut, cut_rx) = watch::channel(false);
        let task = tokio::spawn(accept_loop(listener, target_port, cut_rx));
        Ok(LinkProxy {
            from,
            to,
            port,
            cut,
            _task: task,
        })
    }

    pub fn set_cut(&self, cut: bool) {
        let _ = self.cut.send(cut);
    }

    pub fn is_cut(&self) -> bool {
        *self.cut.borrow()
    }
}

async fn accept_loop(listener: TcpListener, target_port: u16, cut: watch::Receiver<bool>) {
    loop {
        let Ok((inbound, _)) = listener.accept().await else {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            continue;
        };
        let _ = inbound.set_nodelay(true);
        let cut = cut.clone();
        tokio::spawn(async move {
            let _ = serve(inbound, target_port, cut).await;
        });
    }
}

async fn serve(
    mut inbound: TcpStream,
    target_port: u16,
    mut cut: watch::Receiver<bool>,
) -> Result<()> {
    if *cut.borrow() {
        // Black hole: hold the connection open, forward nothing, until the
        // link heals; then drop it so the client reconnects.
        let _ = cut.wait_for(|c| !*c).await;
        return Ok(());
    }
    let mut outbound = TcpStream::connect(("127.0.0.1", target_port)).await?;
    outbound.set_nodelay(true)?;
    tokio::select! {
        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
        _ = async { let _ = cut.wait_for(|c| *c).await; } => {
            let _ = inbound.shutdown().await;
        }
    }
    Ok(())
}

/// The full mesh of link proxies for `n` nodes.
pub struct Mesh {
    pub links: Vec<Arc<LinkProxy>>,
}

impl Mesh {
    pub async fn start(grpc_ports: &[u16]) -> Result<Mesh> {
        let mut links = Vec::new();
        for from in 0..grpc_ports.len() {
            for (to, port) in grpc_ports.iter().enumerate() {
                if from != to {
                    links.push(Arc::new(LinkProxy::start(from, to, *port).await?));
                }
            }
        }
        Ok(Mesh { links })
    }

    /// Port node `from` dials to reach node `to`.
    pub fn port(&self, from: usize, to: usize) -> Option<u16> {
        self.links
            .iter()
            .find(|l| l.from == from && l.to == to)
            .map(|l| l.port)
    }

    /// Cut every link between different components of `groups` (nodes not
    /// listed form their own component), both directions.
    pub fn partition(&self, groups: &[Vec<usize>]) {
        let component = |n: usize| groups.iter().position(|g| g.contains(&n));
        for l in &self.links {
            let same = match (component(l.from), component(l.to)) {
                (Some(a), Some(b)) => a == b,
                _ => false,
            };
            l.set_cut(!same);
        }
    }

    /// Cut exactly the given directed links, heal the rest.
    pub fn cut_links(&self, cut: &[(usize, usize)]) {
        for l in &self.links {
            l.set_cut(cut.contains(&(l.from, l.to)));
        }
    }

    pub fn heal(&self) {
        for l in &self.links {
            l.set_cut(false);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    async fn echo_server() -> Result<u16> {
        let l = TcpListener::bind("127.0.0.1:0").await?;
        let port = l.local_addr()?.port();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                tokio::spawn(async move {
                    let (mut r, mut w) = s.split();
                    let _ = tokio::io::copy(&mut r, &mut w).await;
                });
            }
        });
        Ok(port)
    }

    async fn roundtrip(port: u16) -> Result<bool> {
        let mut s = TcpStream::connect(("127.0.0.1", port)).await?;
        s.write_all(b"ping").await?;
        let mut buf = [0u8; 4];
        match tokio::time::timeout(
            std::time::Duration::from_millis(300),
            s.read_exact(&mut buf),
        )
        .await
        {
            Ok(Ok(_)) => Ok(&buf == b"ping"),
            _ => Ok(false),
        }
    }

    #[tokio::test]
    async fn cut_links_stop_traffic_and_heal_restores_it() -> Result<()> {
        let target = echo_server().await?;
        let proxy = LinkProxy::start(0, 1, target).await?;
        assert!(roundtrip(proxy.port).await?);
        proxy.set_cut(true);
        assert!(!roundtrip(proxy.port).await?, "a cut link must not forward");
        proxy.set_cut(false);
        assert!(roundtrip(proxy.port).await?);
        Ok(())
    }

    #[tokio::test]
    async fn partition_cuts_across_components_only() -> Result<()> {
        let t0 = echo_server().await?;
        let t1 = echo_server().await?;
        let t2 = echo_server().await?;
        let mesh = Mesh::start(&[t0, t1, t2]).await?;
        mesh.partition(&[vec![0, 1], vec![2]]);
        let p = |a, b| mesh.port(a, b).expect("link");
        assert!(roundtrip(p(0, 1)).await?);
        assert!(!roundtrip(p(0, 2)).await?);
        assert!(!roundtrip(p(2, 1)).await?);
        mesh.heal();
        assert!(roundtrip(p(2, 1)).await?);
        Ok(())
    }
}
