//! Hostile servers where TrackVia should be: a plain TCP server that records what it
//! receives, and a TLS proxy that trickles, redirects or answers with what a test asks for.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

pub struct PlainServer {
    pub port: u16,
    pub connections: Arc<AtomicUsize>,
    pub received: Arc<Mutex<Vec<u8>>>,
    pub task: tokio::task::JoinHandle<()>,
}

impl PlainServer {
    pub async fn start() -> PlainServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("binding");
        let port = listener.local_addr().unwrap().port();
        let connections = Arc::new(AtomicUsize::new(0));
        let received = Arc::new(Mutex::new(Vec::new()));
        let (c, r) = (connections.clone(), received.clone());
        let task = tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                c.fetch_add(1, Ordering::SeqCst);
                let r = r.clone();
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 64 * 1024];
                    if let Ok(Ok(n)) =
                        tokio::time::timeout(Duration::from_secs(2), stream.read(&mut buf)).await
                    {
                        r.lock().unwrap().extend_from_slice(&buf[..n]);
                    }
                    let _ = stream
                        .write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                        .await;
                    let _ = stream.shutdown().await;
                });
            }
        });
        PlainServer {
            port,
            connections,
            received,
            task,
        }
    }
}

impl Drop for PlainServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// How a [`Proxy`] slows the server's bytes down: the first `fast` bytes of a
/// connection (the TLS handshake, the response head and a little of the body)
/// at full speed, then `step` bytes every `every`.
#[derive(Clone, Copy)]
pub struct Trickle {
    pub fast: usize,
    pub step: usize,
    pub every: Duration,
}

/// A TCP proxy from `listen` to a port on 127.0.0.1, optionally trickling the
/// upstream's answer.
pub struct Proxy {
    pub port: u16,
    pub task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    pub async fn start(listen: &str, upstream: u16, trickle: Option<Trickle>) -> Proxy {
        let listener = TcpListener::bind(listen)
            .await
            .unwrap_or_else(|e| panic!("binding {listen}: {e}"));
        let port = listener.local_addr().unwrap().port();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let Ok(server) =
                        TcpStream::connect(SocketAddr::from(([127, 0, 0, 1], upstream))).await
                    else {
                        return;
                    };
                    let (mut client_read, mut client_write) = client.into_split();
                    let (mut server_read, mut server_write) = server.into_split();
                    let up = tokio::spawn(async move {
                        let _ = tokio::io::copy(&mut client_read, &mut server_write).await;
                        let _ = server_write.shutdown().await;
                    });
                    let mut buf = vec![0u8; 16 * 1024];
                    let mut fast = trickle.map(|t| t.fast).unwrap_or(usize::MAX);
                    'copy: loop {
                        let n = match server_read.read(&mut buf).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => n,
                        };
                        let now = n.min(fast);
                        fast -= now;
                        if client_write.write_all(&buf[..now]).await.is_err() {
                            break;
                        }
                        let mut rest = &buf[now..n];
                        while let (Some(t), false) = (trickle, rest.is_empty()) {
                            tokio::time::sleep(t.every).await;
                            let now = rest.len().min(t.step);
                            if client_write.write_all(&rest[..now]).await.is_err() {
                                break 'copy;
                            }
                            rest = &rest[now..];
                        }
                    }
                    up.abort();
                });
            }
        });
        Proxy { port, task }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// What a hostile server must lead to.
#[derive(Clone, Copy, Debug)]
pub enum Outcome {
    /// No definite answer: Verified=Unknown/TransientFailure, message containing this.
    Transient(&'static str),
    /// A refusal: Ready=False with this reason, message containing this.
    Refusal(&'static str, &'static str),
}
