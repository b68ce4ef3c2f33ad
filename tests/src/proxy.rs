//! A TCP proxy for fault injection and byte counting between an agent and the server.
//!
//! It runs on its own thread and runtime so blocking tests can drive it. Faults:
//! - `cut_response_after(pattern, n)`: the next `n` connections whose client bytes contain
//!   `pattern` have their request delivered to the server, but the connection is cut as
//!   soon as the response starts: the server did the work, the client never hears of it
//!   (a lost ack). Needs plain HTTP to see the pattern.
//! - `set_offline(true)`: accept and immediately close every connection.
//! - `cut_at_byte(n)`: cut each connection after `n` bytes from client to server.
//! - `cut_at_offsets(offsets)`: cut whichever connection is carrying the client's byte
//!   number `offset` (counted over all connections since the last `reset_counters`),
//!   once per offset: random cuts anywhere in a long upload.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Client bytes remembered per connection to find a pattern split across reads.
const PATTERN_WINDOW_BYTES_MAX: usize = 64 * 1024;

#[derive(Default)]
struct Shared {
    up_bytes: AtomicU64,
    down_bytes: AtomicU64,
    connections: AtomicU64,
    offline: AtomicBool,
    cut_pattern: Mutex<Option<Vec<u8>>>,
    cuts_left: AtomicUsize,
    cuts_done: AtomicUsize,
    cut_at_byte: AtomicU64,
    cut_offsets: Mutex<VecDeque<u64>>,
    offset_cuts_done: AtomicUsize,
}

pub struct Proxy {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Proxy {
    pub fn start(upstream: SocketAddr) -> Proxy {
        let shared = Arc::new(Shared::default());
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let sh = shared.clone();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
                addr_tx.send(listener.local_addr().unwrap()).unwrap();
                let accept = async {
                    loop {
                        let Ok((client, _)) = listener.accept().await else {
                            continue;
                        };
                        sh.connections.fetch_add(1, Ordering::Relaxed);
                        if sh.offline.load(Ordering::Relaxed) {
                            drop(client);
                            continue;
                        }
                        tokio::spawn(relay(client, upstream, sh.clone()));
                    }
                };
                tokio::select! {
                    _ = accept => {},
                    _ = stop_rx => {},
                }
            });
        });
        Proxy {
            addr: addr_rx.recv().unwrap(),
            shared,
            stop: Some(stop_tx),
            thread: Some(thread),
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Bytes from client to server and back, so far.
    pub fn bytes(&self) -> (u64, u64) {
        (
            self.shared.up_bytes.load(Ordering::Relaxed),
            self.shared.down_bytes.load(Ordering::Relaxed),
        )
    }

    pub fn reset_counters(&self) {
        self.shared.up_bytes.store(0, Ordering::Relaxed);
        self.shared.down_bytes.store(0, Ordering::Relaxed);
    }

    pub fn connections(&self) -> u64 {
        self.shared.connections.load(Ordering::Relaxed)
    }

    pub fn set_offline(&self, offline: bool) {
        self.shared.offline.store(offline, Ordering::Relaxed);
    }

    pub fn cut_response_after(&self, pattern: &str, times: usize) {
        *self.shared.cut_pattern.lock().unwrap() = Some(pattern.as_bytes().to_vec());
        self.shared.cuts_left.store(times, Ordering::SeqCst);
    }

    /// How many responses were cut so far.
    pub fn cuts_done(&self) -> usize {
        self.shared.cuts_done.load(Ordering::SeqCst)
    }

    /// Cut the connection carrying each of these client byte offsets (ascending, counted
    /// from the last counter reset over all connections).
    pub fn cut_at_offsets(&self, mut offsets: Vec<u64>) {
        offsets.sort_unstable();
        *self.shared.cut_offsets.lock().unwrap() = offsets.into();
        self.shared.offset_cuts_done.store(0, Ordering::SeqCst);
    }

    /// How many `cut_at_offsets` cuts happened so far.
    pub fn offset_cuts_done(&self) -> usize {
        self.shared.offset_cuts_done.load(Ordering::SeqCst)
    }

    /// Cut every new connection after `n` client bytes (0: never).
    pub fn cut_at_byte(&self, n: u64) {
        self.shared.cut_at_byte.store(n, Ordering::Relaxed);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle)
}

async fn relay(client: TcpStream, upstream: SocketAddr, sh: Arc<Shared>) {
    let Ok(server) = TcpStream::connect(upstream).await else {
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (mut cr, mut cw) = client.into_split();
    let (mut sr, mut sw) = server.into_split();
    let cut = Arc::new(AtomicBool::new(false));
    let cut_limit = sh.cut_at_byte.load(Ordering::Relaxed);

    let up = {
        let sh = sh.clone();
        let cut = cut.clone();
        async move {
            let mut window: Vec<u8> = Vec::new();
            let mut sent: u64 = 0;
            let mut buf = vec![0u8; 16 * 1024];
            loop {
                let n = match cr.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                let mut chunk = &buf[..n];
                if cut_limit > 0 && sent + n as u64 > cut_limit {
                    chunk = &chunk[..(cut_limit - sent) as usize];
                }
                let mut offset_cut = false;
                {
                    let mut offsets = sh.cut_offsets.lock().unwrap();
                    let total = sh.up_bytes.load(Ordering::SeqCst);
                    if let Some(&at) = offsets.front() {
                        if total + chunk.len() as u64 >= at {
                            let keep = at.saturating_sub(total) as usize;
                            chunk = &chunk[..keep.min(chunk.len())];
                            offsets.pop_front();
                            offset_cut = true;
                        }
                    }
                }
                let pattern = sh.cut_pattern.lock().unwrap().clone();
                if let Some(p) = pattern {
                    window.extend_from_slice(chunk);
                    if window.len() > PATTERN_WINDOW_BYTES_MAX {
                        let excess = window.len() - PATTERN_WINDOW_BYTES_MAX;
                        window.drain(..excess);
                    }
                    if !cut.load(Ordering::SeqCst) && contains(&window, &p) {
                        let armed = sh
                            .cuts_left
                            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |c| c.checked_sub(1))
                            .is_ok();
                        if armed {
                            cut.store(true, Ordering::SeqCst);
                        }
                    }
                }
                if sw.write_all(chunk).await.is_err() {
                    break;
                }
                sent += chunk.len() as u64;
                sh.up_bytes.fetch_add(chunk.len() as u64, Ordering::SeqCst);
                if offset_cut {
                    sh.offset_cuts_done.fetch_add(1, Ordering::SeqCst);
                    break;
                }
                if cut_limit > 0 && sent >= cut_limit {
                    break;
                }
            }
            let _ = sw.shutdown().await;
        }
    };
    let down = {
        let sh = sh.clone();
        let cut = cut.clone();
        async move {
            let mut buf = vec![0u8; 16 * 1024];
            loop {
                let n = match sr.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                if cut.load(Ordering::SeqCst) {
                    sh.cuts_done.fetch_add(1, Ordering::SeqCst);
                    break;
                }
                if cw.write_all(&buf[..n]).await.is_err() {
                    break;
                }
                sh.down_bytes.fetch_add(n as u64, Ordering::Relaxed);
            }
            let _ = cw.shutdown().await;
        }
    };
    // Whichever side ends first ends the connection, as a real network cut would.
    tokio::select! {
        _ = up => {},
        _ = down => {},
    }
}
