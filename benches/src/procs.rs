//! Servers under test: start, wait, measure (CPU seconds and peak RSS from `/proc`), and a tiny
//! HTTP/1.1 client that adds nothing of its own to the measurement.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// A server process, killed on drop.
pub(crate) struct Server {
    pub(crate) child: Child,
    pub(crate) port: u16,
    name: String,
    program: String,
    args: Vec<String>,
    ready_path: String,
    log: std::path::PathBuf,
}

impl Server {
    /// Starts `program args` with its output in `log`, and waits until `ready_path` answers 200.
    pub(crate) fn start(
        name: &str,
        program: &str,
        args: &[String],
        port: u16,
        ready_path: &str,
        log: &Path,
    ) -> anyhow::Result<Self> {
        let child = spawn(program, args, log)?;
        let server = Self {
            child,
            port,
            name: name.into(),
            program: program.into(),
            args: args.to_vec(),
            ready_path: ready_path.into(),
            log: log.into(),
        };
        server.wait_ready()?;
        Ok(server)
    }

    fn wait_ready(&self) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(600);
        while http("GET", self.port, &self.ready_path, &[], b"")
            .map(|r| r.0)
            .ok()
            != Some(200)
        {
            if Instant::now() > deadline {
                bail!(
                    "{} did not become ready (see {})",
                    self.name,
                    self.log.display()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(())
    }

    /// SIGKILLs the server, starts it again with the same arguments (its log appended to), and
    /// returns the time from the restart until it answers ready.
    pub(crate) fn kill_and_restart(&mut self) -> anyhow::Result<Duration> {
        self.child.kill()?;
        self.child.wait()?;
        let started = Instant::now();
        self.child = spawn(&self.program, &self.args, &self.log)?;
        self.wait_ready()?;
        Ok(started.elapsed())
    }

    /// Resident memory now (VmRSS), in bytes.
    pub(crate) fn rss(&self) -> u64 {
        status_bytes(self.child.id(), "VmRSS:")
    }

    /// User + system CPU seconds used so far.
    pub(crate) fn cpu_seconds(&self) -> f64 {
        cpu_of(self.child.id())
    }

    /// Peak resident memory (VmHWM), in bytes.
    pub(crate) fn peak_rss(&self) -> u64 {
        status_bytes(self.child.id(), "VmHWM:")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = &self.name;
    }
}

/// Starts `program args`, its output appended to `log`.
fn spawn(program: &str, args: &[String], log: &Path) -> anyhow::Result<Child> {
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .with_context(|| format!("open {}", log.display()))?;
    Command::new(program)
        .args(args)
        .stdout(Stdio::from(out.try_clone()?))
        .stderr(Stdio::from(out))
        .spawn()
        .with_context(|| format!("start {program}"))
}

/// Wall time, CPU seconds and peak anonymous resident memory of commands run to completion.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Measured {
    pub(crate) wall: Duration,
    pub(crate) cpu: f64,
    /// Highest `RssAnon` seen, bytes.
    pub(crate) peak_anon: u64,
}

impl Measured {
    /// Adds a run that followed the others: times add up, the peak is the highest.
    pub(crate) fn add(&mut self, other: Measured) {
        self.wall += other.wall;
        self.cpu += other.cpu;
        self.peak_anon = self.peak_anon.max(other.peak_anon);
    }
}

/// Runs `cmd` (output discarded) to completion, sampling its `RssAnon` every 20 ms; fails if it fails.
pub(crate) fn run_measured(mut cmd: Command) -> anyhow::Result<Measured> {
    let started = Instant::now();
    let mut child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("start {cmd:?}"))?;
    let pid = child.id();
    let (mut peak, mut cpu) = (0u64, 0.0f64);
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        peak = peak.max(status_bytes(pid, "RssAnon:"));
        cpu = cpu.max(cpu_of(pid));
        std::thread::sleep(Duration::from_millis(20));
    };
    if !status.success() {
        let mut err = String::new();
        if let Some(mut e) = child.stderr.take() {
            e.read_to_string(&mut err)?;
        }
        bail!("{cmd:?} failed ({status}): {err}");
    }
    Ok(Measured {
        wall: started.elapsed(),
        cpu,
        peak_anon: peak,
    })
}

/// A `kB` field of `/proc/PID/status` (`field` with its colon), in bytes; 0 once it is gone.
fn status_bytes(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// User + system CPU seconds of process `pid` so far (0 once it is gone).
fn cpu_of(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the `(comm)`: utime and stime are the 14th and 15th of the whole line.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

/// A free loopback port.
pub(crate) fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// One HTTP/1.1 request on a fresh connection; returns status and body.
pub(crate) fn http(
    method: &str,
    port: u16,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> anyhow::Result<(u16, Vec<u8>)> {
    let mut conn = TcpStream::connect(("127.0.0.1", port))?;
    conn.set_read_timeout(Some(Duration::from_secs(600)))?;
    conn.set_nodelay(true)?;
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    let mut msg = req.into_bytes();
    msg.extend_from_slice(body);
    conn.write_all(&msg)?;
    let mut resp = Vec::new();
    conn.read_to_end(&mut resp)?;
    let split = resp
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .context("no HTTP header end")?
        + 4;
    let head = String::from_utf8_lossy(&resp[..split]).to_ascii_lowercase();
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .context("no status")?
        .parse()?;
    let mut payload = resp[split..].to_vec();
    if head.contains("transfer-encoding: chunked") {
        payload = dechunk(&payload);
    }
    Ok((status, payload))
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(nl) = b.windows(2).position(|w| w == b"\r\n") {
        let n = usize::from_str_radix(String::from_utf8_lossy(&b[..nl]).trim(), 16).unwrap_or(0);
        if n == 0 || b.len() < nl + 2 + n {
            break;
        }
        out.extend_from_slice(&b[nl + 2..nl + 2 + n]);
        b = &b[(nl + 4 + n).min(b.len())..];
    }
    out
}
