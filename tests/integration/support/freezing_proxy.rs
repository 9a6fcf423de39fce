//! A loopback TCP proxy that freezes a client, as a GC pause, `SIGSTOP` or a held request
//! would: once a request matching the trigger goes by, no further request bytes (that one
//! included) reach the server until [`FreezingProxy::release`]. Replies still flow, so
//! the client's requests simply hang. Bounded: it stops accepting after 120 s.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// Whether traffic is frozen, and a way to wait for it to thaw.
struct Gate {
    frozen: Mutex<bool>,
    thawed: Condvar,
    /// The trigger freezes once; later matching requests pass.
    fired: std::sync::atomic::AtomicBool,
}

impl Gate {
    fn wait_open(&self) {
        let mut frozen = self.frozen.lock().unwrap_or_else(|p| p.into_inner());
        while *frozen {
            frozen = self.thawed.wait(frozen).unwrap_or_else(|p| p.into_inner());
        }
    }

    fn set(&self, value: bool) {
        *self.frozen.lock().unwrap_or_else(|p| p.into_inner()) = value;
        self.thawed.notify_all();
    }

    fn is_frozen(&self) -> bool {
        *self.frozen.lock().unwrap_or_else(|p| p.into_inner())
    }
}

pub struct FreezingProxy {
    pub endpoint: String,
    gate: Arc<Gate>,
}

impl FreezingProxy {
    /// A proxy to `upstream` that freezes once a request line contains `method` and
    /// `path_part` (e.g. `"PUT "`, `"schema.json"`).
    pub fn start(upstream: SocketAddr, method: &'static str, path_part: &'static str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        listener.set_nonblocking(true).unwrap();
        let gate = Arc::new(Gate {
            frozen: Mutex::new(false),
            thawed: Condvar::new(),
            fired: std::sync::atomic::AtomicBool::new(false),
        });
        let accept_gate = gate.clone();
        std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(120);
            while Instant::now() < deadline {
                let Ok((client, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(5));
                    continue;
                };
                client.set_nonblocking(false).unwrap();
                let Ok(server) = TcpStream::connect(upstream) else {
                    continue;
                };
                let (mut c_read, mut s_write) =
                    (client.try_clone().unwrap(), server.try_clone().unwrap());
                let (mut s_read, mut c_write) = (server, client);
                let gate = accept_gate.clone();
                std::thread::spawn(move || {
                    let mut buf = [0u8; 16 * 1024];
                    while let Ok(n) = c_read.read(&mut buf) {
                        if n == 0 {
                            break;
                        }
                        if starts_request(&buf[..n], method, path_part)
                            && !gate.fired.swap(true, std::sync::atomic::Ordering::SeqCst)
                        {
                            gate.set(true);
                        }
                        gate.wait_open();
                        if s_write.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                    let _ = s_write.shutdown(std::net::Shutdown::Write);
                });
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut s_read, &mut c_write);
                    let _ = c_write.shutdown(std::net::Shutdown::Both);
                });
            }
        });
        FreezingProxy {
            endpoint: format!("http://{addr}"),
            gate,
        }
    }

    /// Waits (at most `patience`) until the trigger went by.
    pub fn wait_frozen(&self, patience: Duration) -> bool {
        let until = Instant::now() + patience;
        while Instant::now() < until {
            if self.gate.is_frozen() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        false
    }

    /// Lets every held request through, and every later one.
    pub fn release(&self) {
        self.gate.set(false);
    }
}

/// The bytes start a request whose request line holds `method` and `part`.
fn starts_request(bytes: &[u8], method: &str, part: &str) -> bool {
    let line = bytes.split(|&b| b == b'\r').next().unwrap_or_default();
    line.starts_with(method.as_bytes()) && line.windows(part.len()).any(|w| w == part.as_bytes())
}
