//! A TCP proxy on loopback that breaks connections the way networks do: it resets a
//! connection once the server has processed the request and starts to answer, or part-way
//! through the answer. It understands just enough of HTTP/1.1 and HTTP/2 to find where the
//! answer starts (an HTTP/2 server speaks first, with its settings, before any answer).
//! Each arming breaks one connection; the rest pass through.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// How a connection is broken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Break {
    /// Pass everything through.
    Never = 0,
    /// Reset both sides when the answer starts: the request was delivered and processed,
    /// the client sees a reset and no answer.
    BeforeResponse = 1,
    /// Forward the start of the answer (the HTTP/1.1 status line, or the HTTP/2 headers),
    /// then reset.
    MidResponse = 2,
}

/// A running proxy.
pub struct Proxy {
    addr: SocketAddr,
    armed: Arc<AtomicU8>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    /// Listens on a free loopback port, forwarding to `upstream`.
    pub async fn start(upstream: SocketAddr) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let armed = Arc::new(AtomicU8::new(Break::Never as u8));
        let flag = Arc::clone(&armed);
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let flag = Arc::clone(&flag);
                tokio::spawn(async move {
                    if let Ok(server) = TcpStream::connect(upstream).await {
                        let _ = pipe(client, server, flag).await;
                    }
                });
            }
        });
        Ok(Proxy { addr, armed, task })
    }

    /// The address clients connect to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Breaks the next answer that starts on any connection, as `mode` says.
    pub fn arm(&self, mode: Break) {
        self.armed.store(mode as u8, Ordering::SeqCst);
    }

    /// True while an arming has not been used yet.
    pub fn armed(&self) -> bool {
        self.armed.load(Ordering::SeqCst) != Break::Never as u8
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Closes with a TCP reset rather than a FIN.
fn reset(stream: TcpStream) {
    let _ = socket2::SockRef::from(&stream).set_linger(Some(std::time::Duration::ZERO));
    drop(stream);
}

/// Where, in bytes received from the server, the next answer starts: HTTP/1.1's status
/// line, or an HTTP/2 HEADERS frame on a request stream. `None`: not in these bytes yet.
fn answer_starts(pending: &[u8]) -> Option<usize> {
    if pending.starts_with(b"HTTP/") {
        return Some(0);
    }
    let mut at = 0;
    while pending.len() >= at + 9 {
        let frame = &pending[at..];
        let len =
            (usize::from(frame[0]) << 16) | (usize::from(frame[1]) << 8) | usize::from(frame[2]);
        let stream = u32::from_be_bytes([frame[5], frame[6], frame[7], frame[8]]) & 0x7fff_ffff;
        if frame[3] == 1 && stream != 0 {
            return Some(at);
        }
        at += 9 + len;
    }
    None
}

/// Where the head of the answer starting at `at` ends: after the HTTP/1.1 status line, or
/// after the whole HTTP/2 HEADERS frame.
fn answer_head_end(pending: &[u8], at: usize) -> usize {
    if pending.starts_with(b"HTTP/") {
        return pending
            .windows(2)
            .position(|w| w == b"\r\n")
            .map_or(pending.len(), |p| p + 2);
    }
    (at + 9 + frame_len(&pending[at..])).min(pending.len())
}

/// The payload length of the HTTP/2 frame whose 9-byte header starts `frame`.
fn frame_len(frame: &[u8]) -> usize {
    (usize::from(frame[0]) << 16) | (usize::from(frame[1]) << 8) | usize::from(frame[2])
}

async fn pipe(
    mut client: TcpStream,
    mut server: TcpStream,
    armed: Arc<AtomicU8>,
) -> std::io::Result<()> {
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (mut up, mut down) = (vec![0u8; 16 * 1024], vec![0u8; 16 * 1024]);
    // Server bytes not yet forwarded because they may hold the start of an answer.
    let mut pending: Vec<u8> = Vec::new();
    loop {
        tokio::select! {
            n = client.read(&mut up) => {
                let n = n?;
                if n == 0 {
                    return Ok(());
                }
                server.write_all(&up[..n]).await?;
            }
            n = server.read(&mut down) => {
                let n = n?;
                if n == 0 {
                    client.write_all(&pending).await?;
                    return Ok(());
                }
                pending.extend_from_slice(&down[..n]);
                let mode = armed.load(Ordering::SeqCst);
                if mode == Break::Never as u8 {
                    client.write_all(&pending).await?;
                    pending.clear();
                    continue;
                }
                match answer_starts(&pending) {
                    Some(at) => {
                        if armed.swap(Break::Never as u8, Ordering::SeqCst) == Break::Never as u8 {
                            // Another connection used the arming first.
                            client.write_all(&pending).await?;
                            pending.clear();
                            continue;
                        }
                        let keep = if mode == Break::MidResponse as u8 {
                            answer_head_end(&pending, at)
                        } else {
                            at
                        };
                        client.write_all(&pending[..keep]).await?;
                        client.flush().await?;
                        reset(client);
                        reset(server);
                        return Ok(());
                    }
                    None => {
                        // Whole frames before any answer (settings, pings) pass on.
                        let mut at = 0;
                        while pending.len() >= at + 9 {
                            let len = frame_len(&pending[at..]);
                            if pending.len() < at + 9 + len {
                                break;
                            }
                            at += 9 + len;
                        }
                        client.write_all(&pending[..at]).await?;
                        pending.drain(..at);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::answer_starts;

    #[test]
    fn finds_where_answers_start() {
        assert_eq!(answer_starts(b"HTTP/1.1 200 OK\r\n"), Some(0));
        // SETTINGS on stream 0, then HEADERS on stream 1.
        let mut h2 = vec![0, 0, 0, 4, 0, 0, 0, 0, 0];
        h2.extend([0, 0, 2, 1, 4, 0, 0, 0, 1, 0x88, 0x89]);
        assert_eq!(answer_starts(&h2), Some(9));
        assert_eq!(answer_starts(&h2[..9]), None);
    }
}
