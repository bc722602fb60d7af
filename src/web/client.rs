//! Prometheus's HTTP client configuration file (`--remote-read.http-config-file`, the format of
//! `promtool --http.config.file`): how the querier reaches shippers over TLS, mutual TLS, basic
//! authentication or a bearer token. Relative paths are relative to the file's directory.

use std::path::Path;

use anyhow::{Context, bail};
use fleetscope_query::{ClientTls, Credentials};
use yaml_rust2::Yaml;

use super::{fields, text_of, yaml_root};

/// TLS settings and credentials from an HTTP client configuration file.
#[derive(Debug, Default)]
pub struct ClientConfig {
    /// `tls_config`.
    pub tls: ClientTls,
    /// `basic_auth`, `authorization` or `bearer_token(_file)`.
    pub credentials: Option<Credentials>,
}

impl ClientConfig {
    /// Reads `path`, loading the files it names.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("read HTTP client config {}", path.display()))?;
        let base = path.parent().unwrap_or(Path::new("."));
        Self::parse(&text, base).with_context(|| format!("HTTP client config {}", path.display()))
    }

    fn parse(text: &str, base: &Path) -> anyhow::Result<Self> {
        let mut out = ClientConfig::default();
        let Some(root) = yaml_root(text)? else {
            return Ok(out);
        };
        let read = |v: &Yaml, what: &str| -> anyhow::Result<Vec<u8>> {
            let file = base.join(text_of(v, what)?);
            std::fs::read(&file).with_context(|| format!("read {what} {}", file.display()))
        };
        let secret = |v: &Yaml, what: &str| -> anyhow::Result<String> {
            Ok(String::from_utf8_lossy(&read(v, what)?).trim().to_string())
        };
        let (mut cert, mut key) = (None, None);
        for (k, v) in &root {
            match text_of(k, "a setting name")?.as_str() {
                "tls_config" => {
                    for (k, v) in fields(v, "tls_config")? {
                        let k = text_of(k, "a tls_config setting")?;
                        let what = format!("tls_config.{k}");
                        match k.as_str() {
                            "ca_file" => out.tls.ca_pem = Some(read(v, &what)?),
                            "cert_file" => cert = Some(read(v, &what)?),
                            "key_file" => key = Some(read(v, &what)?),
                            "insecure_skip_verify" => {
                                out.tls.insecure_skip_verify = v
                                    .as_bool()
                                    .with_context(|| format!("{what} must be true or false"))?
                            }
                            other => bail!(
                                "tls_config.{other} is not supported (ca_file, cert_file, key_file, insecure_skip_verify)"
                            ),
                        }
                    }
                }
                "basic_auth" => {
                    let (mut user, mut password) = (None, None);
                    for (k, v) in fields(v, "basic_auth")? {
                        match text_of(k, "a basic_auth setting")?.as_str() {
                            "username" => user = Some(text_of(v, "basic_auth.username")?),
                            "password" => password = Some(text_of(v, "basic_auth.password")?),
                            "password_file" => {
                                password = Some(secret(v, "basic_auth.password_file")?)
                            }
                            other => bail!(
                                "basic_auth.{other} is not supported (username, password, password_file)"
                            ),
                        }
                    }
                    out.credentials = Some(Credentials::Basic {
                        user: user.context("basic_auth needs username")?,
                        password: password.unwrap_or_default(),
                    });
                }
                "authorization" => {
                    let mut token = None;
                    for (k, v) in fields(v, "authorization")? {
                        match text_of(k, "an authorization setting")?.as_str() {
                            "type" => {
                                let t = text_of(v, "authorization.type")?;
                                if !t.eq_ignore_ascii_case("bearer") {
                                    bail!("authorization.type {t:?} is not supported (Bearer)");
                                }
                            }
                            "credentials" => token = Some(text_of(v, "authorization.credentials")?),
                            "credentials_file" => {
                                token = Some(secret(v, "authorization.credentials_file")?)
                            }
                            other => bail!(
                                "authorization.{other} is not supported (type, credentials, credentials_file)"
                            ),
                        }
                    }
                    out.credentials = Some(Credentials::Bearer(
                        token.context("authorization needs credentials or credentials_file")?,
                    ));
                }
                "bearer_token" => {
                    out.credentials = Some(Credentials::Bearer(text_of(v, "bearer_token")?))
                }
                "bearer_token_file" => {
                    out.credentials = Some(Credentials::Bearer(secret(v, "bearer_token_file")?))
                }
                other => bail!(
                    "unknown setting {other:?} (tls_config, basic_auth, authorization, bearer_token, bearer_token_file)"
                ),
            }
        }
        match (cert, key) {
            (Some(mut cert), Some(key)) => {
                cert.push(b'\n');
                cert.extend_from_slice(&key);
                out.tls.identity_pem = Some(cert);
            }
            (None, None) => {}
            _ => bail!("tls_config needs both cert_file and key_file for a client certificate"),
        }
        Ok(out)
    }
}
