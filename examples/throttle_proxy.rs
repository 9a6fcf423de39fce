//! A TCP proxy on loopback that caps each proxied connection's throughput, a scale model of
//! S3, which serves each connection at roughly 85-100 MB/s and gives more only to more
//! connections (concurrent byte-range GETs, concurrent part uploads):
//!
//! ```text
//! cargo run --release --example throttle_proxy -- --upstream 127.0.0.1:41237 --rate 20MB
//! endpoint=http://127.0.0.1:40111
//! ```
//!
//! Each accepted connection gets its own connection to `--upstream`; bytes are copied both
//! ways through a 64 KiB buffer per direction, each direction paced by its own token bucket
//! (`--rate` bytes per second, at most `--burst` bytes of credit saved up while idle), so a
//! connection moves at most `--rate` each way however many there are. The bytes pass
//! unchanged: a SigV4 signature made for the proxy's address (the Host header) still
//! verifies at the upstream server. Only loopback addresses are accepted for `--listen` and
//! `--upstream`.
//!
//! With `--log FILE`, one line per closed connection:
//! `conn=N open=T close=T up=BYTES down=BYTES` (T: Unix seconds with microseconds; up is
//! client -> server). Serves until killed.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::Parser;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};

const BUF: usize = 64 << 10;

/// A loopback TCP proxy capping every connection at a fixed rate each way.
#[derive(Parser)]
struct Args {
    /// Address to forward to (the S3 server), e.g. 127.0.0.1:9000
    #[arg(long)]
    upstream: SocketAddr,
    /// Address to listen on; port 0 picks a free one
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Bytes per second per connection and direction (suffixes K, M, G are powers of 1000;
    /// KiB, MiB, GiB of 1024)
    #[arg(long, default_value = "20MB", value_parser = parse_bytes)]
    rate: u64,
    /// Credit a connection may save up while idle, in bytes
    #[arg(long, default_value = "64KiB", value_parser = parse_bytes)]
    burst: u64,
    /// Append one line per closed connection to this file
    #[arg(long)]
    log: Option<PathBuf>,
}

fn parse_bytes(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, suffix) = t.split_at(split);
    let n: u64 = num.parse().map_err(|_| format!("{s:?} is not a size"))?;
    let mult: u64 = match suffix.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" => 1_000,
        "m" | "mb" => 1_000_000,
        "g" | "gb" => 1_000_000_000,
        "kib" => 1 << 10,
        "mib" => 1 << 20,
        "gib" => 1 << 30,
        _ => return Err(format!("{s:?}: unknown suffix {suffix:?}")),
    };
    match n.checked_mul(mult) {
        Some(v) if v > 0 => Ok(v),
        _ => Err(format!("{s:?} must be a positive size")),
    }
}

/// A token bucket: `rate` bytes per second, at most `burst` bytes of saved-up credit. A
/// write may take more than the credit there is; the debt is then waited off before the
/// call returns, so the average never exceeds `rate`.
struct Bucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl Bucket {
    fn new(rate: u64, burst: u64) -> Self {
        Bucket {
            rate: rate as f64,
            burst: burst as f64,
            tokens: burst as f64,
            last: Instant::now(),
        }
    }

    async fn take(&mut self, n: usize) {
        let now = Instant::now();
        let earned = now.duration_since(self.last).as_secs_f64() * self.rate;
        self.tokens = (self.tokens + earned).min(self.burst);
        self.last = now;
        self.tokens -= n as f64;
        if self.tokens < 0.0 {
            tokio::time::sleep(Duration::from_secs_f64(-self.tokens / self.rate)).await;
        }
    }
}

/// Copies `from` to `to` at the bucket's pace until end of stream, then half-closes `to`.
async fn pump(
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    mut bucket: Bucket,
) -> std::io::Result<u64> {
    let mut buf = vec![0u8; BUF];
    let mut total = 0u64;
    loop {
        let n = from.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        bucket.take(n).await;
        to.write_all(&buf[..n]).await?;
        total += n as u64;
    }
    to.shutdown().await?;
    Ok(total)
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

type Log = Option<Arc<Mutex<std::fs::File>>>;

async fn serve(client: TcpStream, args: Arc<Args>, id: u64, log: Log) {
    let open = unix_now();
    let upstream = match TcpStream::connect(args.upstream).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!(
                "throttle_proxy: conn {id}: cannot reach {}: {e}",
                args.upstream
            );
            return;
        }
    };
    let _ = client.set_nodelay(true);
    let _ = upstream.set_nodelay(true);
    let (cr, cw) = client.into_split();
    let (ur, uw) = upstream.into_split();
    let up = tokio::spawn(pump(cr, uw, Bucket::new(args.rate, args.burst)));
    let down = tokio::spawn(pump(ur, cw, Bucket::new(args.rate, args.burst)));
    // A reset in either direction ends that direction only; the other ends on its own.
    let up = up.await.ok().and_then(Result::ok).unwrap_or(0);
    let down = down.await.ok().and_then(Result::ok).unwrap_or(0);
    if let Some(log) = log {
        let line = format!(
            "conn={id} open={open:.6} close={:.6} up={up} down={down}\n",
            unix_now()
        );
        if let Ok(mut f) = log.lock() {
            let _ = f.write_all(line.as_bytes());
        }
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    if !args.listen.ip().is_loopback() || !args.upstream.ip().is_loopback() {
        eprintln!("throttle_proxy: --listen and --upstream must be loopback addresses");
        return ExitCode::from(2);
    }
    let log: Log = match &args.log {
        None => None,
        Some(p) => match std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(p)
        {
            Ok(f) => Some(Arc::new(Mutex::new(f))),
            Err(e) => {
                eprintln!("throttle_proxy: cannot open {}: {e}", p.display());
                return ExitCode::from(1);
            }
        },
    };
    // One worker thread: copying at a capped rate needs little CPU, and the machine's
    // cores are for the client and the server being measured.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(async move {
        let listener = match TcpListener::bind(args.listen).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!("throttle_proxy: cannot listen on {}: {e}", args.listen);
                return ExitCode::from(1);
            }
        };
        let addr = match listener.local_addr() {
            Ok(a) => a,
            Err(e) => {
                eprintln!("throttle_proxy: {e}");
                return ExitCode::from(1);
            }
        };
        eprintln!(
            "throttle_proxy: {addr} -> {}, {} bytes/s per connection each way, burst {}",
            args.upstream, args.rate, args.burst
        );
        // The benchmark waits for this line: printed once the port accepts connections.
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "endpoint=http://{addr}");
        let _ = out.flush();
        drop(out);
        let args = Arc::new(args);
        let ids = AtomicU64::new(0);
        loop {
            match listener.accept().await {
                Ok((client, _)) => {
                    let id = ids.fetch_add(1, Ordering::Relaxed) + 1;
                    tokio::spawn(serve(client, args.clone(), id, log.clone()));
                }
                Err(e) => {
                    eprintln!("throttle_proxy: accept: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    })
}
