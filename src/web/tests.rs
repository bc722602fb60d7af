use std::path::Path;

use axum::http::{HeaderMap, HeaderValue, header};

use super::client::ClientConfig;
use super::config::WebConfig;

fn err(text: &str) -> String {
    format!("{:#}", WebConfig::parse(text, Path::new("/")).unwrap_err())
}

/// A self-signed certificate and key written under `dir`: (cert, key).
fn self_signed(dir: &Path) -> (String, String) {
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["localhost".to_string()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    std::fs::write(dir.join("c.pem"), cert.pem()).unwrap();
    std::fs::write(dir.join("k.pem"), key.serialize_pem()).unwrap();
    ("c.pem".into(), "k.pem".into())
}

#[test]
fn empty_file_serves_plain_and_open() {
    let c = WebConfig::parse("", Path::new("/")).unwrap();
    assert!(c.tls.is_none() && c.users.is_empty());
}

#[test]
fn users_need_bcrypt_hashes_and_never_show_them() {
    let hash = bcrypt::hash("secret", 4).unwrap();
    let c = WebConfig::parse(
        &format!("basic_auth_users:\n  alice: '{hash}'\n"),
        Path::new("/"),
    )
    .unwrap();
    assert_eq!(c.users.len(), 1);
    let shown = format!("{c:?}");
    assert!(shown.contains("alice") && !shown.contains(&hash), "{shown}");
    let e = err("basic_auth_users:\n  bob: secret\n");
    assert!(e.contains("bob") && e.contains("not a bcrypt hash"), "{e}");
}

#[test]
fn mistakes_are_named() {
    assert!(err("tls_server_confg: {}\n").contains("unknown setting \"tls_server_confg\""));
    assert!(err("tls_server_config:\n  cert_file: a\n").contains("needs key_file"));
    let e = err("basic_auth_users:\n  a: b\n c: d\n");
    assert!(e.contains("line 3"), "{e}");
    let e = err(
        "tls_server_config:\n  cert_file: a\n  key_file: b\n  client_auth_type: RequireAnyClientCert\n",
    );
    assert!(e.contains("VerifyClientCertIfGiven"), "{e}");
    let e = err("tls_server_config:\n  cert_file: /nonexistent/c.pem\n  key_file: k\n");
    assert!(e.contains("/nonexistent/c.pem"), "{e}");
}

#[test]
fn tls_loads_relative_to_the_file_and_checks_client_auth() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = self_signed(dir.path());
    let ok = format!(
        "tls_server_config:\n  cert_file: {cert}\n  key_file: {key}\n  min_version: TLS13\n"
    );
    assert!(WebConfig::parse(&ok, dir.path()).unwrap().tls.is_some());
    let ca_without_policy = format!("{ok}  client_ca_file: {cert}\n");
    let e = format!(
        "{:#}",
        WebConfig::parse(&ca_without_policy, dir.path()).unwrap_err()
    );
    assert!(e.contains("client_auth_type is NoClientCert"), "{e}");
    let mtls = format!("{ca_without_policy}  client_auth_type: RequireAndVerifyClientCert\n");
    assert!(WebConfig::parse(&mtls, dir.path()).unwrap().tls.is_some());
    let policy_without_ca = format!("{ok}  client_auth_type: RequireAndVerifyClientCert\n");
    let e = format!(
        "{:#}",
        WebConfig::parse(&policy_without_ca, dir.path()).unwrap_err()
    );
    assert!(e.contains("needs client_ca_file"), "{e}");
}

#[test]
fn basic_credentials_from_the_header() {
    let mut h = HeaderMap::new();
    assert_eq!(super::serve::basic_credentials(&h), None);
    // "alice:pa:ss" — a password may hold colons.
    h.insert(
        header::AUTHORIZATION,
        HeaderValue::from_static("Basic YWxpY2U6cGE6c3M="),
    );
    assert_eq!(
        super::serve::basic_credentials(&h),
        Some(("alice".to_string(), "pa:ss".to_string()))
    );
    h.insert(
        header::AUTHORIZATION,
        HeaderValue::from_static("Bearer YWxpY2U6cGE6c3M="),
    );
    assert_eq!(super::serve::basic_credentials(&h), None);
}

#[test]
fn client_config_reads_secrets_from_files() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = self_signed(dir.path());
    std::fs::write(dir.path().join("pw"), "hunter2\n").unwrap();
    let path = dir.path().join("http.yml");
    std::fs::write(
        &path,
        format!("tls_config:\n  ca_file: {cert}\n  cert_file: {cert}\n  key_file: {key}\nbasic_auth:\n  username: q\n  password_file: pw\n"),
    )
    .unwrap();
    let c = ClientConfig::load(&path).unwrap();
    assert!(c.tls.ca_pem.is_some() && c.tls.identity_pem.is_some());
    match c.credentials {
        Some(fleetscope_query::Credentials::Basic { user, password }) => {
            assert_eq!((user.as_str(), password.as_str()), ("q", "hunter2"))
        }
        other => panic!("{other:?}"),
    }
    assert!(!format!("{:?}", ClientConfig::load(&path).unwrap()).contains("hunter2"));
    std::fs::write(&path, format!("tls_config:\n  cert_file: {cert}\n")).unwrap();
    let e = format!("{:#}", ClientConfig::load(&path).unwrap_err());
    assert!(e.contains("both cert_file and key_file"), "{e}");
}
