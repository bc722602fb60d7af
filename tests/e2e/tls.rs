//! TLS and authentication with real parts: a Debian Prometheus remote-writes over mutual TLS with
//! basic auth to a shipper; the querier reads the shipper over mutual TLS and serves TLS with basic
//! auth to Debian's `promtool`; curl shows what wrong credentials, a missing
//! client certificate or one from another CA get; SIGHUP swaps the users; no secret is logged.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::support::{Proc, free_port};

/// A CA that signs server and client certificates.
struct Ca {
    issuer: rcgen::CertifiedIssuer<'static, rcgen::KeyPair>,
}

impl Ca {
    fn new(name: &str) -> Self {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        let key = rcgen::KeyPair::generate().unwrap();
        Self {
            issuer: rcgen::CertifiedIssuer::self_signed(params, key).unwrap(),
        }
    }

    /// Writes `NAME.crt` and `NAME.key` under `dir`, valid for localhost and 127.0.0.1.
    fn issue(&self, dir: &Path, name: &str) {
        let params =
            rcgen::CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        std::fs::write(dir.join(format!("{name}.crt")), cert.pem()).unwrap();
        std::fs::write(dir.join(format!("{name}.key")), key.serialize_pem()).unwrap();
    }

    fn write(&self, path: &Path) {
        std::fs::write(path, self.issuer.pem()).unwrap();
    }
}

/// `curl` against `https://127.0.0.1:port/path`: the HTTP status, or 0 when TLS refused us.
fn curl(port: u16, path: &str, args: &[&str]) -> u16 {
    let out = Command::new("curl")
        .args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--max-time",
            "10",
        ])
        .args(args)
        .arg(format!("https://127.0.0.1:{port}{path}"))
        .output()
        .expect("curl must be installed");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(0)
}

fn wait_for(what: &str, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(90);
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn bcrypt_hash(password: &str) -> String {
    // Cost 4 keeps the test quick; the server verifies any cost.
    bcrypt::hash(password, 4).unwrap()
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

#[test]
fn prometheus_shipper_querier_promtool_over_tls_with_auth() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let path = |name: &str| d.join(name).display().to_string();
    let (ca, other_ca) = (Ca::new("fleet CA"), Ca::new("some other CA"));
    ca.write(&d.join("ca.crt"));
    for name in ["shipper", "querier", "prometheus", "reader"] {
        ca.issue(d, name);
    }
    other_ca.issue(d, "intruder");
    let (ship_pw, query_pw, new_pw) = ("ship-s3cret", "query-s3cret", "rotated-s3cret");
    let ship_hash = bcrypt_hash(ship_pw);

    // The shipper: TLS, a client certificate from the fleet CA required, basic auth.
    std::fs::write(
        d.join("shipper-web.yml"),
        format!(
            "tls_server_config:\n  cert_file: shipper.crt\n  key_file: shipper.key\n  client_ca_file: ca.crt\n  client_auth_type: RequireAndVerifyClientCert\nbasic_auth_users:\n  prometheus: '{ship_hash}'\n"
        ),
    )
    .unwrap();
    let bucket = d.join("bucket");
    std::fs::create_dir_all(&bucket).unwrap();
    let objstore = crate::file_url(&bucket);
    let ship_port = free_port();
    let _shipper = Proc::spawn(
        env!("CARGO_BIN_EXE_fleetscope"),
        &[
            "shipper",
            "--objstore",
            &objstore,
            "--cluster",
            "secure",
            "--listen",
            &format!("127.0.0.1:{ship_port}"),
            "--data-dir",
            &path("shipper-data"),
            "--web.config.file",
            &path("shipper-web.yml"),
        ],
        &d.join("shipper.log"),
    );
    let ca_file = path("ca.crt");
    let client = |name: &str| {
        vec![
            "--cacert".to_string(),
            ca_file.clone(),
            "--cert".to_string(),
            path(&format!("{name}.crt")),
            "--key".to_string(),
            path(&format!("{name}.key")),
        ]
    };
    let with_pw = |mut args: Vec<String>, pw: &str| {
        args.extend(["-u".to_string(), format!("prometheus:{pw}")]);
        args
    };
    let reader = with_pw(client("reader"), ship_pw);
    wait_for("the shipper to serve TLS", || {
        curl(ship_port, "/-/ready", &strs(&reader)) == 200
    });
    // The shipper refuses: no client certificate, one from another CA, no or wrong password.
    assert_eq!(
        curl(
            ship_port,
            "/-/ready",
            &["--cacert", &ca_file, "-u", "prometheus:ship-s3cret"]
        ),
        0
    );
    let intruder = with_pw(client("intruder"), ship_pw);
    assert_eq!(curl(ship_port, "/-/ready", &strs(&intruder)), 0);
    assert_eq!(curl(ship_port, "/-/ready", &strs(&client("reader"))), 401);
    let wrong = with_pw(client("reader"), "guess");
    assert_eq!(curl(ship_port, "/-/ready", &strs(&wrong)), 401);
    // Plain HTTP on a TLS port gets nothing.
    assert_eq!(
        crate::support::http("GET", ship_port, "/-/ready", &[], b"").map(|r| r.0),
        None
    );

    // A real Prometheus writes to it over mutual TLS with basic auth.
    let prom_port = free_port();
    std::fs::write(
        d.join("prometheus.yml"),
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: self\n    static_configs:\n      - targets: ['127.0.0.1:{prom_port}']\nremote_write:\n  - url: https://127.0.0.1:{ship_port}/api/v1/write\n    basic_auth:\n      username: prometheus\n      password: {ship_pw}\n    tls_config:\n      ca_file: {ca_file}\n      cert_file: {}\n      key_file: {}\n    queue_config:\n      batch_send_deadline: 1s\n      min_backoff: 100ms\n      max_backoff: 1s\n",
            path("prometheus.crt"),
            path("prometheus.key"),
        ),
    )
    .unwrap();
    let _prometheus = Proc::spawn(
        "prometheus",
        &[
            &format!("--config.file={}", path("prometheus.yml")),
            &format!("--storage.tsdb.path={}", path("tsdb")),
            &format!("--web.listen-address=127.0.0.1:{prom_port}"),
        ],
        &d.join("prometheus.log"),
    );

    // The querier: TLS with basic auth for its clients; reads the shipper over mutual TLS.
    std::fs::write(
        d.join("querier-web.yml"),
        format!(
            "tls_server_config:\n  cert_file: querier.crt\n  key_file: querier.key\nbasic_auth_users:\n  grafana: '{}'\n",
            bcrypt_hash(query_pw)
        ),
    )
    .unwrap();
    std::fs::write(
        d.join("remote-read.yml"),
        "tls_config:\n  ca_file: ca.crt\n  cert_file: reader.crt\n  key_file: reader.key\nbasic_auth:\n  username: prometheus\n  password_file: ship-password\n",
    )
    .unwrap();
    std::fs::write(d.join("ship-password"), format!("{ship_pw}\n")).unwrap();
    let query_port = free_port();
    let querier = Proc::spawn(
        env!("CARGO_BIN_EXE_fleetscope"),
        &[
            "querier",
            "--objstore",
            &objstore,
            "--listen",
            &format!("127.0.0.1:{query_port}"),
            "--web.config.file",
            &path("querier-web.yml"),
            "--shipper",
            &format!("https://localhost:{ship_port}"),
            "--remote-read.http-config-file",
            &path("remote-read.yml"),
        ],
        &d.join("querier.log"),
    );
    wait_for("the querier to serve TLS", || {
        curl(query_port, "/-/ready", &["--cacert", &ca_file]) == 401
    });
    assert_eq!(
        curl(
            query_port,
            "/-/ready",
            &["--cacert", &ca_file, "-u", "grafana:nope"]
        ),
        401
    );
    assert_eq!(
        curl(
            query_port,
            "/-/ready",
            &["--cacert", &ca_file, "-u", "mallory:query-s3cret"]
        ),
        401
    );
    assert_eq!(
        curl(
            query_port,
            "/-/ready",
            &["--cacert", &ca_file, "-u", "grafana:query-s3cret"]
        ),
        200
    );

    // promtool, a real API client, over TLS with basic auth: Prometheus's own samples, read by the
    // querier from the shipper over mutual TLS.
    // Debian's promtool (2.42) predates `--http.config.file`: it takes the password as the URL's
    // user info (Go's client sends it as basic auth) and the CA from SSL_CERT_FILE.
    let promtool = |pw: &str| {
        Command::new("promtool")
            .env("SSL_CERT_FILE", &ca_file)
            .args([
                "query",
                "instant",
                &format!("https://grafana:{pw}@localhost:{query_port}"),
                "up{job=\"self\", cluster=\"secure\"}",
            ])
            .output()
            .expect("promtool (Debian package prometheus)")
    };
    let deadline = Instant::now() + Duration::from_secs(90);
    let last = loop {
        let out = promtool(query_pw);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        if out.status.success() && text.contains("=> 1 @") {
            break text;
        }
        let log = |f: &str| std::fs::read_to_string(d.join(f)).unwrap_or_default();
        assert!(
            Instant::now() < deadline,
            "no samples through shipper and querier; promtool: {text}\nshipper: {}\nquerier: {}\nprometheus: {}",
            log("shipper.log"),
            log("querier.log"),
            log("prometheus.log")
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    assert!(last.contains("cluster=\"secure\""), "{last}");

    // SIGHUP: a new password replaces the old one without a restart.
    std::fs::write(
        d.join("querier-web.yml"),
        format!(
            "tls_server_config:\n  cert_file: querier.crt\n  key_file: querier.key\nbasic_auth_users:\n  grafana: '{}'\n",
            bcrypt_hash(new_pw)
        ),
    )
    .unwrap();
    let pid = querier.child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-HUP", &pid])
            .status()
            .unwrap()
            .success()
    );
    wait_for("the reloaded users", || {
        curl(
            query_port,
            "/-/ready",
            &["--cacert", &ca_file, "-u", "grafana:query-s3cret"],
        ) == 401
    });
    assert_eq!(
        curl(
            query_port,
            "/-/ready",
            &["--cacert", &ca_file, "-u", &format!("grafana:{new_pw}")]
        ),
        200
    );
    assert!(
        !promtool(query_pw).status.success(),
        "the old password still works"
    );
    assert!(promtool(new_pw).status.success());

    // No secret in any log or in /metrics.
    let metrics = Command::new("curl")
        .args([
            "-s",
            "--cacert",
            &ca_file,
            "-u",
            &format!("grafana:{new_pw}"),
        ])
        .arg(format!("https://127.0.0.1:{query_port}/metrics"))
        .output()
        .unwrap();
    let metrics = String::from_utf8_lossy(&metrics.stdout).into_owned();
    for (name, text) in [
        (
            "shipper.log",
            std::fs::read_to_string(d.join("shipper.log")).unwrap(),
        ),
        (
            "querier.log",
            std::fs::read_to_string(d.join("querier.log")).unwrap(),
        ),
        ("/metrics", metrics),
    ] {
        for secret in [ship_pw, query_pw, new_pw, &ship_hash] {
            assert!(!text.contains(secret), "{name} shows a secret");
        }
    }
}
