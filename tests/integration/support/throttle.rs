//! A loopback TCP proxy that caps each connection's throughput: a scale model of S3, which
//! serves one connection at roughly 85-100 MB/s and more only over more connections.
//!
//! Every accepted connection gets its own connection to the upstream server; bytes pass
//! unchanged (so SigV4 signatures still verify) and each direction of each connection is
//! paced to `rate` bytes per second. It counts connections: accepted, open now, and the
//! most open at once, so a test can tell that reads really ran in parallel. Bounded: it
//! listens on 127.0.0.1 only and stops accepting when dropped or after 120 s.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Connection counts of a [`ThrottleProxy`].
#[derive(Default)]
struct Counts {
    accepted: AtomicUsize,
    open: AtomicUsize,
    peak: AtomicUsize,
}

/// A running throttling proxy; stops accepting when dropped.
pub struct ThrottleProxy {
    /// `http://127.0.0.1:PORT`, for `--endpoint-url`.
    pub endpoint: String,
    counts: Arc<Counts>,
    stop: Arc<AtomicBool>,
}

impl ThrottleProxy {
    /// Proxies to `upstream` (a loopback address), `rate` bytes per second per connection
    /// and direction.
    pub fn start(upstream: SocketAddr, rate: u64) -> ThrottleProxy {
        assert!(upstream.ip().is_loopback(), "loopback only");
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        listener.set_nonblocking(true).unwrap();
        let counts = Arc::new(Counts::default());
        let stop = Arc::new(AtomicBool::new(false));
        let (c, s) = (counts.clone(), stop.clone());
        std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(120);
            while !s.load(Ordering::SeqCst) && Instant::now() < deadline {
                let Ok((client, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(2));
                    continue;
                };
                let Ok(server) = TcpStream::connect(upstream) else {
                    continue;
                };
                let _ = client.set_nonblocking(false);
                let _ = (client.set_nodelay(true), server.set_nodelay(true));
                c.accepted.fetch_add(1, Ordering::SeqCst);
                let open = c.open.fetch_add(1, Ordering::SeqCst) + 1;
                c.peak.fetch_max(open, Ordering::SeqCst);
                let (Ok(c_read), Ok(s_write)) = (client.try_clone(), server.try_clone()) else {
                    continue;
                };
                std::thread::spawn(move || pace(c_read, s_write, rate));
                let c = c.clone();
                std::thread::spawn(move || {
                    pace(server, client, rate);
                    c.open.fetch_sub(1, Ordering::SeqCst);
                });
            }
        });
        ThrottleProxy {
            endpoint,
            counts,
            stop,
        }
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> usize {
        self.counts.accepted.load(Ordering::SeqCst)
    }

    /// The most connections that were open at once.
    pub fn peak_open(&self) -> usize {
        self.counts.peak.load(Ordering::SeqCst)
    }
}

impl Drop for ThrottleProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// Copies `from` to `to` at most `rate` bytes per second (measured from the first byte,
/// so an idle connection saves up no credit beyond one 16 KiB read), then closes both.
fn pace(mut from: TcpStream, mut to: TcpStream, rate: u64) {
    let mut buf = [0u8; 16 * 1024];
    let mut started: Option<Instant> = None;
    let mut sent = 0u64;
    while let Ok(n) = from.read(&mut buf) {
        if n == 0 {
            break;
        }
        let t0 = *started.get_or_insert_with(Instant::now);
        // Idle time earns nothing: restart the clock when the stream is behind schedule.
        let due = t0 + Duration::from_secs_f64(sent as f64 / rate as f64);
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        } else if now - due > Duration::from_millis(50) {
            started = Some(now);
            sent = 0;
        }
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
        sent += n as u64;
    }
    let _ = to.shutdown(Shutdown::Both);
    let _ = from.shutdown(Shutdown::Both);
}
