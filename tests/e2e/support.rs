//! Test support: child processes killed on drop, free ports, a tiny HTTP client, remote-write
//! requests, and a real S3-compatible server (moto).

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use fleetscope_proto::v1;
use prost::Message;

/// A child process, killed (SIGKILL) on drop.
pub(crate) struct Proc {
    pub(crate) child: Child,
    pub(crate) name: String,
}

impl Proc {
    /// Spawns `program` with `args`; its output goes to `log` (read it when a test fails).
    pub(crate) fn spawn(program: &str, args: &[&str], log: &Path) -> Self {
        let out = std::fs::File::create(log).unwrap();
        let child = Command::new(program)
            .args(args)
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap_or_else(|e| {
                panic!("start {program}: {e} (is it installed? .ci/test-deps installs it)")
            });
        Self {
            child,
            name: program.to_string(),
        }
    }

    /// Sends SIGTERM and waits for the exit code.
    pub(crate) fn terminate(mut self) -> Option<i32> {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code();
            }
            assert!(
                Instant::now() < deadline,
                "{} did not stop after SIGTERM",
                self.name
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port nobody listens on right now.
pub(crate) fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One HTTP/1.1 request; returns status and body. `None` if the connection failed.
pub(crate) fn http(
    method: &str,
    port: u16,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Option<(u16, Vec<u8>)> {
    let mut conn = TcpStream::connect(("127.0.0.1", port)).ok()?;
    conn.set_read_timeout(Some(Duration::from_secs(120))).ok()?;
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    conn.write_all(req.as_bytes()).ok()?;
    conn.write_all(body).ok()?;
    let mut resp = Vec::new();
    conn.read_to_end(&mut resp).ok()?;
    let text = String::from_utf8_lossy(&resp);
    let status = text.split_whitespace().nth(1)?.parse().ok()?;
    let split = resp.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let mut payload = resp[split..].to_vec();
    if text[..split]
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        payload = dechunk(&payload);
    }
    Some((status, payload))
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(nl) = b.windows(2).position(|w| w == b"\r\n") else {
            return out;
        };
        let n = usize::from_str_radix(String::from_utf8_lossy(&b[..nl]).trim(), 16).unwrap_or(0);
        if n == 0 {
            return out;
        }
        out.extend_from_slice(&b[nl + 2..nl + 2 + n]);
        b = &b[nl + 2 + n + 2..];
    }
}

/// Starts `fleetscope querier` over `objstore` on a free port with `extra` flags, logging to `log`;
/// waits until ready.
pub(crate) fn start_querier(objstore: &str, extra: &[&str], log: &Path) -> (Proc, u16) {
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let mut args = vec!["querier", "--objstore", objstore, "--listen", &listen];
    args.extend_from_slice(extra);
    let querier = Proc::spawn(env!("CARGO_BIN_EXE_fleetscope"), &args, log);
    wait_ready(port, "/-/ready", "querier");
    (querier, port)
}

/// Peak resident memory of process `pid` so far (`VmHWM`), in bytes.
pub(crate) fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace()
        .nth(1)
        .unwrap()
        .parse::<u64>()
        .unwrap()
        * 1024
}

/// Waits until `GET path` answers 200.
pub(crate) fn wait_ready(port: u16, path: &str, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while http("GET", port, path, &[], b"").map(|r| r.0) != Some(200) {
        assert!(
            Instant::now() < deadline,
            "{what} did not become ready on port {port}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A series to send: label pairs and `(t, v)` samples.
pub(crate) type WriteSeries = (Vec<(String, String)>, Vec<(i64, f64)>);

/// A snappy-compressed remote-write 1.0 body.
pub(crate) fn remote_write_body(series: &[WriteSeries]) -> Vec<u8> {
    let req = v1::WriteRequest {
        timeseries: series
            .iter()
            .map(|(labels, samples)| v1::TimeSeries {
                labels: labels
                    .iter()
                    .map(|(n, v)| v1::Label {
                        name: n.clone(),
                        value: v.clone(),
                    })
                    .collect(),
                samples: samples
                    .iter()
                    .map(|&(t, v)| v1::Sample {
                        value: v,
                        timestamp: t,
                    })
                    .collect(),
                ..Default::default()
            })
            .collect(),
        metadata: vec![],
    };
    snap::raw::Encoder::new()
        .compress_vec(&req.encode_to_vec())
        .unwrap()
}

/// POSTs a remote-write body; returns the status (None if the connection failed).
pub(crate) fn remote_write(port: u16, body: &[u8]) -> Option<u16> {
    let headers = [
        ("Content-Type", "application/x-protobuf"),
        ("Content-Encoding", "snappy"),
        ("X-Prometheus-Remote-Write-Version", "0.1.0"),
        ("User-Agent", "fleetscope-e2e"),
    ];
    http("POST", port, "/api/v1/write", &headers, body).map(|r| r.0)
}

/// Starts Debian's `prometheus-node-exporter` on a free port and waits until it serves.
pub(crate) fn start_node_exporter(dir: &Path) -> (Proc, u16) {
    let port = free_port();
    let proc = Proc::spawn(
        "prometheus-node-exporter",
        &[&format!("--web.listen-address=127.0.0.1:{port}")],
        &dir.join("node.log"),
    );
    wait_ready(port, "/metrics", "node exporter");
    (proc, port)
}

/// Starts `fleetscope shipper` on a free port and waits until it serves.
pub(crate) fn start_shipper(
    data_dir: &Path,
    objstore: &str,
    extra: &[&str],
    env: &[(&str, String)],
    log: &Path,
) -> (Proc, u16) {
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let mut args = vec![
        "shipper",
        "--objstore",
        objstore,
        "--listen",
        &listen,
        "--data-dir",
        data_dir.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let out = std::fs::File::options()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_fleetscope"))
        .args(&args)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .unwrap();
    let proc = Proc {
        child,
        name: "fleetscope shipper".into(),
    };
    wait_ready(port, "/-/ready", "shipper");
    (proc, port)
}

/// A moto S3 server on a fixed port.
pub(crate) struct S3 {
    pub(crate) port: u16,
    pub(crate) proc: Option<Proc>,
    log: std::path::PathBuf,
}

impl S3 {
    pub(crate) fn start(log: &Path) -> Self {
        let mut s = Self {
            port: free_port(),
            proc: None,
            log: log.into(),
        };
        s.restart();
        s
    }

    /// (Re)starts the server on the same port with an empty `fleet` bucket.
    pub(crate) fn restart(&mut self) {
        let port = self.port.to_string();
        self.proc = Some(Proc::spawn(
            "moto_server",
            &["-H", "127.0.0.1", "-p", &port],
            &self.log,
        ));
        let deadline = Instant::now() + Duration::from_secs(30);
        while http("PUT", self.port, "/fleet", &[], b"").map(|r| r.0) != Some(200) {
            assert!(Instant::now() < deadline, "moto_server did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub(crate) fn stop(&mut self) {
        self.proc = None;
    }

    /// The `AWS_*` variables pointing at this server.
    pub(crate) fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT", format!("http://127.0.0.1:{}", self.port)),
            ("AWS_ALLOW_HTTP", "true".into()),
            ("AWS_ACCESS_KEY_ID", "test".into()),
            ("AWS_SECRET_ACCESS_KEY", "test".into()),
            ("AWS_REGION", "us-east-1".into()),
            ("AWS_VIRTUAL_HOSTED_STYLE_REQUEST", "false".into()),
        ]
    }
}

/// Every `(labels, t, value bits)` in the blocks of `store`, external labels included, once per block.
pub(crate) fn all_samples(
    store: &std::sync::Arc<dyn object_store::ObjectStore>,
) -> Vec<(String, i64, u64)> {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let mut out = Vec::new();
        for meta in fleetscope_store::BlockMeta::list(store).await.unwrap() {
            let reader = fleetscope_store::BlockReader::new(std::sync::Arc::clone(store), meta);
            for s in reader.select(&[], i64::MIN, i64::MAX).await.unwrap().series {
                let l = s.labels.to_string();
                out.extend(s.samples.iter().map(|x| (l.clone(), x.t, x.v.to_bits())));
            }
        }
        out
    })
}

/// Sum of a counter family in Prometheus's own `/metrics`.
pub(crate) fn prom_metric(port: u16, name: &str) -> f64 {
    let (_, body) = http("GET", port, "/metrics", &[], b"").expect("prometheus /metrics");
    String::from_utf8_lossy(&body)
        .lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// `{metric labels} -> [(t ms, v)]` from a Prometheus API matrix/vector answer.
pub(crate) fn api_series(port: u16, path: &str) -> BTreeMap<String, Vec<(i64, f64)>> {
    let (status, body) = http("GET", port, path, &[], b"").expect("query answers");
    assert_eq!(status, 200, "{path}: {}", String::from_utf8_lossy(&body));
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let mut out = BTreeMap::new();
    for r in json["data"]["result"].as_array().unwrap() {
        let mut labels: Vec<(String, String)> = r["metric"]
            .as_object()
            .unwrap()
            .iter()
            .filter(|(k, _)| *k != "cluster")
            .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
            .collect();
        labels.sort();
        let key = format!("{labels:?}");
        let points = r["values"]
            .as_array()
            .cloned()
            .unwrap_or_else(|| vec![r["value"].clone()]);
        let samples = points
            .iter()
            .map(|p| {
                (
                    (p[0].as_f64().unwrap() * 1000.0).round() as i64,
                    p[1].as_str().unwrap().parse::<f64>().unwrap(),
                )
            })
            .collect();
        out.insert(key, samples);
    }
    out
}

pub(crate) fn enc(q: &str) -> String {
    url::form_urlencoded::byte_serialize(q.as_bytes()).collect()
}
