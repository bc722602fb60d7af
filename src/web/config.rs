//! Prometheus's web configuration file (`--web.config.file`), the format of
//! [exporter-toolkit](https://prometheus.io/docs/prometheus/latest/configuration/https/):
//! `tls_server_config` (certificate, key, client CA, client authentication, TLS versions) and
//! `basic_auth_users` (bcrypt hashes). Relative paths are relative to the file's directory.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, bail};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use yaml_rust2::Yaml;

use super::{fields, text_of, yaml_root};

/// What a web configuration file sets: TLS for every connection, users for every request.
#[derive(Clone, Default)]
pub struct WebConfig {
    /// TLS server settings; `None` serves plain HTTP.
    pub tls: Option<Arc<ServerConfig>>,
    /// Users and their bcrypt hashes; empty means no basic authentication.
    pub users: HashMap<String, String>,
}

impl std::fmt::Debug for WebConfig {
    /// Never the hashes: a configuration may be logged.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut users: Vec<&String> = self.users.keys().collect();
        users.sort();
        f.debug_struct("WebConfig")
            .field("tls", &self.tls.is_some())
            .field("users", &users)
            .finish()
    }
}

/// Client certificate policies of Go's `crypto/tls`, as the file names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ClientAuth {
    NoClientCert,
    VerifyClientCertIfGiven,
    RequireAndVerifyClientCert,
}

impl WebConfig {
    /// Reads and checks `path`: certificates and keys are loaded now, so a broken file is refused
    /// at start (or on reload, keeping the previous configuration).
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("read web config {}", path.display()))?;
        let base = path.parent().unwrap_or(Path::new("."));
        Self::parse(&text, base).with_context(|| format!("web config {}", path.display()))
    }

    /// Parses the YAML `text`; relative file names are under `base`.
    pub fn parse(text: &str, base: &Path) -> anyhow::Result<Self> {
        let mut config = WebConfig::default();
        let Some(root) = yaml_root(text)? else {
            return Ok(config);
        };
        for (key, value) in &root {
            match text_of(key, "a setting name")?.as_str() {
                "tls_server_config" => config.tls = tls_server_config(value, base)?,
                "basic_auth_users" => config.users = users(value)?,
                "http_server_config" => {
                    // Only `http2` (default true in Prometheus) is meaningful to us: accepted.
                    for (k, _) in fields(value, "http_server_config")? {
                        let k = text_of(k, "an http_server_config setting")?;
                        if k != "http2" {
                            bail!("http_server_config.{k} is not supported");
                        }
                    }
                }
                other => bail!(
                    "unknown setting {other:?} (tls_server_config, basic_auth_users, http_server_config)"
                ),
            }
        }
        Ok(config)
    }
}

fn users(value: &Yaml) -> anyhow::Result<HashMap<String, String>> {
    let mut out = HashMap::new();
    if matches!(value, Yaml::Null) {
        return Ok(out);
    }
    for (user, hash) in fields(value, "basic_auth_users")? {
        let user = text_of(user, "a basic_auth_users name")?;
        let hash = text_of(hash, &format!("the hash of user {user:?}"))?;
        // Checked now, so a typo is a start-up error, not a user who can never log in.
        bcrypt::verify("", &hash)
            .with_context(|| format!("the hash of user {user:?} is not a bcrypt hash"))?;
        out.insert(user, hash);
    }
    Ok(out)
}

fn tls_server_config(value: &Yaml, base: &Path) -> anyhow::Result<Option<Arc<ServerConfig>>> {
    if matches!(value, Yaml::Null) {
        return Ok(None);
    }
    let (mut cert, mut key, mut client_ca) = (None, None, None);
    let mut client_auth = None;
    let (mut min, mut max) = (None, None);
    for (k, v) in fields(value, "tls_server_config")? {
        let k = text_of(k, "a tls_server_config setting")?;
        let what = format!("tls_server_config.{k}");
        let path = |v: &Yaml| text_of(v, &what).map(|s| base.join(s));
        match k.as_str() {
            "cert_file" => cert = Some(path(v)?),
            "key_file" => key = Some(path(v)?),
            "client_ca_file" => client_ca = Some(path(v)?),
            "client_auth_type" => {
                client_auth = Some(match text_of(v, &what)?.as_str() {
                    "NoClientCert" => ClientAuth::NoClientCert,
                    "VerifyClientCertIfGiven" => ClientAuth::VerifyClientCertIfGiven,
                    "RequireAndVerifyClientCert" => ClientAuth::RequireAndVerifyClientCert,
                    t @ ("RequestClientCert" | "RequireAnyClientCert") => bail!(
                        "{what}: {t} accepts certificates nobody verified; use VerifyClientCertIfGiven or RequireAndVerifyClientCert"
                    ),
                    t => bail!(
                        "{what}: unknown {t:?} (NoClientCert, VerifyClientCertIfGiven, RequireAndVerifyClientCert)"
                    ),
                })
            }
            "min_version" => min = Some(tls_version(&text_of(v, &what)?, &what)?),
            "max_version" => max = Some(tls_version(&text_of(v, &what)?, &what)?),
            other => bail!(
                "tls_server_config.{other} is not supported (cert_file, key_file, client_ca_file, client_auth_type, min_version, max_version)"
            ),
        }
    }
    let cert = cert.context("tls_server_config needs cert_file")?;
    let key = key.context("tls_server_config needs key_file")?;
    let certs = CertificateDer::pem_file_iter(&cert)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .with_context(|| format!("read cert_file {}", cert.display()))?;
    if certs.is_empty() {
        bail!("cert_file {} holds no certificate", cert.display());
    }
    let key = PrivateKeyDer::from_pem_file(&key)
        .with_context(|| format!("read key_file {}", key.display()))?;

    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let (min, max) = (min.unwrap_or(12), max.unwrap_or(13));
    let versions: Vec<&'static rustls::SupportedProtocolVersion> =
        [(12, &rustls::version::TLS12), (13, &rustls::version::TLS13)]
            .into_iter()
            .filter(|(v, _)| (min..=max).contains(v))
            .map(|(_, p)| p)
            .collect();
    if versions.is_empty() {
        bail!("tls_server_config: min_version is above max_version");
    }
    let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(&versions)
        .context("TLS versions")?;
    let client_auth = client_auth.unwrap_or(ClientAuth::NoClientCert);
    let builder = match (client_auth, client_ca) {
        (ClientAuth::NoClientCert, Some(_)) => bail!(
            "tls_server_config: client_ca_file is set but client_auth_type is NoClientCert (set VerifyClientCertIfGiven or RequireAndVerifyClientCert)"
        ),
        (ClientAuth::NoClientCert, None) => builder.with_no_client_auth(),
        (_, None) => {
            bail!("tls_server_config: client_auth_type {client_auth:?} needs client_ca_file")
        }
        (_, Some(ca)) => {
            let mut roots = RootCertStore::empty();
            for c in CertificateDer::pem_file_iter(&ca)
                .and_then(|it| it.collect::<Result<Vec<_>, _>>())
                .with_context(|| format!("read client_ca_file {}", ca.display()))?
            {
                roots
                    .add(c)
                    .with_context(|| format!("client_ca_file {}", ca.display()))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            let verifier = if client_auth == ClientAuth::VerifyClientCertIfGiven {
                verifier.allow_unauthenticated()
            } else {
                verifier
            };
            builder.with_client_cert_verifier(verifier.build().context("client verifier")?)
        }
    };
    let mut config = builder
        .with_single_cert(certs, key)
        .context("cert_file and key_file do not make a certificate")?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Some(Arc::new(config)))
}

fn tls_version(v: &str, what: &str) -> anyhow::Result<u8> {
    match v {
        "TLS12" => Ok(12),
        "TLS13" => Ok(13),
        "TLS10" | "TLS11" => bail!("{what}: {v} is not offered (TLS12 or TLS13)"),
        _ => bail!("{what}: unknown version {v:?} (TLS12, TLS13)"),
    }
}
