//! Real monitoring services for the observability tests: Debian's
//! `prometheus-pushgateway`, `prometheus-node-exporter` and `prometheus` (and `promtool`),
//! each started on 127.0.0.1 on a free port and stopped when dropped. A test whose binary
//! is not installed says so on stderr and returns (`.ci/run` installs them with apt).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// `program` on PATH or in the Debian packages' folders.
pub fn find(program: &str) -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    dirs.extend(["/usr/bin", "/usr/sbin", "/usr/local/bin"].map(PathBuf::from));
    dirs.into_iter()
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}

/// `program`, or `None` after printing why the calling test is skipped.
pub fn require(program: &str, package: &str) -> Option<PathBuf> {
    let found = find(program);
    if found.is_none() {
        skipped(&format!(
            "`{program}` is not installed (Debian package {package}; .ci/run installs it \
             with apt-get): this test needs the real service"
        ));
    }
    found
}

/// Says why a test did nothing, on the real stderr: the test harness captures what
/// `eprintln!` prints and would hide it for a test that passes.
pub fn skipped(reason: &str) {
    let _ = writeln!(std::io::stderr(), "SKIPPED: {reason}");
}

/// A free port on 127.0.0.1 (bound, then released for the service to take).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A service process on 127.0.0.1:`port`, killed when dropped.
pub struct Service {
    pub name: String,
    pub port: u16,
    child: Child,
    log: PathBuf,
}

impl Service {
    /// Starts `bin` with `args` (which must make it listen on `port`) and waits until
    /// `ready_path` answers 200, at most 30 s.
    pub fn start(bin: &Path, args: &[String], port: u16, ready_path: &str, log_dir: &Path) -> Self {
        let name = bin.file_name().unwrap().to_string_lossy().into_owned();
        let log = log_dir.join(format!("{name}.log"));
        let out = std::fs::File::create(&log).unwrap();
        let child = Command::new(bin)
            .args(args)
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
        let mut service = Service {
            name,
            port,
            child,
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok((200, _)) = get(port, ready_path) {
                return service;
            }
            if let Ok(Some(status)) = service.child.try_wait() {
                panic!(
                    "{} exited ({status}) before it was ready:\n{}",
                    service.name,
                    service.log_text()
                );
            }
            assert!(
                Instant::now() < deadline,
                "{} did not answer {ready_path} within 30 s:\n{}",
                service.name,
                service.log_text()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// GET `path`: the status and body; panics unless 200.
    pub fn get(&self, path: &str) -> String {
        match get(self.port, path) {
            Ok((200, body)) => body,
            other => panic!(
                "GET {path} from {}: {other:?}\n{}",
                self.name,
                self.log_text()
            ),
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A plain HTTP/1.0 GET on 127.0.0.1 (independent of the product's client).
pub fn get(port: u16, path: &str) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        stream,
        "GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\nAccept: */*\r\n\r\n"
    )?;
    let mut reply = Vec::new();
    stream.read_to_end(&mut reply)?;
    let reply = String::from_utf8_lossy(&reply).into_owned();
    let (head, body) = reply.split_once("\r\n\r\n").unwrap_or((&reply, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    Ok((status, body.to_string()))
}

/// Percent-encodes a query value.
pub fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The samples of `metric` in a text exposition, as (labels text, value).
pub fn samples(exposition: &str, metric: &str) -> Vec<(String, f64)> {
    exposition
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (name_labels, value) = l.rsplit_once(' ')?;
            let (name, labels) = match name_labels.split_once('{') {
                Some((n, rest)) => (n, rest.trim_end_matches('}')),
                None => (name_labels, ""),
            };
            (name == metric).then(|| (labels.to_string(), value.parse().unwrap()))
        })
        .collect()
}

/// The one value of `metric` whose labels contain every `label="value"` in `with`.
pub fn value(exposition: &str, metric: &str, with: &[&str]) -> f64 {
    let found: Vec<f64> = samples(exposition, metric)
        .into_iter()
        .filter(|(labels, _)| with.iter().all(|w| labels.contains(w)))
        .map(|(_, v)| v)
        .collect();
    assert_eq!(
        found.len(),
        1,
        "want one {metric} {with:?} in:\n{exposition}"
    );
    found[0]
}
