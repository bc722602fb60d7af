//! [`RemoteRead`]: a Prometheus remote-read endpoint as a [`Source`] — a shipper's fresh data (its
//! head and the blocks it just uploaded), or any Prometheus-compatible server.
//!
//! Requests are `SAMPLES` remote-read (protobuf, snappy). A failing endpoint does not fail the query:
//! it answers nothing and reports a warning (see [`crate::warnings`]), as Prometheus treats its
//! remote-read storage, so a shipper that is down costs only its newest data.

use std::time::Duration;

use fleetscope_proto::read::{
    LabelMatcher, MatchType, Query, ReadHints, ReadRequest, ReadResponse, ResponseType,
};
use fleetscope_proto::v1;
use fleetscope_store::reader::LabelIndex;
use fleetscope_store::{Label, Labels, MatchOp, Matcher, Sample, Series};
use prost::Message;

use crate::warnings;
use fleetscope_store::source::{IndexFuture, LabelsFuture, SelectFuture, SelectHints, Source};

/// Largest decompressed response accepted (Prometheus's default sample limit is 5e7).
const MAX_RESPONSE_BYTES: usize = 1 << 30;

/// A remote-read endpoint, e.g. `http://shipper:19291/api/v1/read`.
#[derive(Debug, Clone)]
pub struct RemoteRead {
    url: String,
    client: reqwest::Client,
    credentials: Option<Credentials>,
}

/// What a remote-read client sends in `Authorization`.
#[derive(Clone)]
pub enum Credentials {
    /// `Bearer <token>`.
    Bearer(String),
    /// `Basic` user and password.
    Basic {
        /// The user.
        user: String,
        /// The password.
        password: String,
    },
}

impl std::fmt::Debug for Credentials {
    /// Never the secrets.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credentials::Bearer(_) => f.write_str("Bearer(<secret>)"),
            Credentials::Basic { user, .. } => write!(f, "Basic({user}:<secret>)"),
        }
    }
}

/// TLS settings of a remote-read client (PEM bytes), as Prometheus's `tls_config`.
#[derive(Clone, Default)]
pub struct ClientTls {
    /// CA certificates that sign the servers' certificates (besides the system's).
    pub ca_pem: Option<Vec<u8>>,
    /// The client's certificate chain and private key, for mutual TLS.
    pub identity_pem: Option<Vec<u8>>,
    /// Accept any server certificate (testing only).
    pub insecure_skip_verify: bool,
}

impl std::fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientTls")
            .field("ca", &self.ca_pem.is_some())
            .field("identity", &self.identity_pem.is_some())
            .field("insecure_skip_verify", &self.insecure_skip_verify)
            .finish()
    }
}

/// A `--remote-read` URL that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("invalid remote-read endpoint {url:?}: {reason}")]
pub struct InvalidEndpoint {
    url: String,
    reason: String,
}

/// Why a remote read failed (reported as a warning).
#[derive(Debug, thiserror::Error)]
enum ReadError {
    #[error("{0}")]
    Http(#[from] reqwest::Error),
    #[error("HTTP {status}: {body}")]
    Status { status: u16, body: String },
    #[error("decompress response: {0}")]
    Snappy(#[from] snap::Error),
    #[error("decode response: {0}")]
    Decode(#[from] prost::DecodeError),
    #[error("{0}")]
    Invalid(String),
}

impl RemoteRead {
    /// An endpoint (an `http` or `https` URL); each request may take up to `timeout`.
    pub fn new(url: &str, timeout: Duration) -> Result<Self, InvalidEndpoint> {
        Self::with_tls(url, timeout, &ClientTls::default())
    }

    /// An endpoint whose `https` connections follow `tls`.
    pub fn with_tls(
        url: &str,
        timeout: Duration,
        tls: &ClientTls,
    ) -> Result<Self, InvalidEndpoint> {
        let invalid = |reason: String| InvalidEndpoint {
            url: url.to_string(),
            reason,
        };
        let parsed = reqwest::Url::parse(url).map_err(|e| invalid(e.to_string()))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(invalid(format!(
                "scheme {:?} is not http or https",
                parsed.scheme()
            )));
        }
        let mut builder = reqwest::Client::builder()
            .use_rustls_tls()
            .timeout(timeout)
            .user_agent(concat!("fleetscope/", env!("CARGO_PKG_VERSION")))
            .danger_accept_invalid_certs(tls.insecure_skip_verify);
        if let Some(pem) = &tls.ca_pem {
            for cert in reqwest::Certificate::from_pem_bundle(pem)
                .map_err(|e| invalid(format!("CA certificates: {e}")))?
            {
                builder = builder.add_root_certificate(cert);
            }
        }
        if let Some(pem) = &tls.identity_pem {
            let identity = reqwest::Identity::from_pem(pem)
                .map_err(|e| invalid(format!("client certificate and key: {e}")))?;
            builder = builder.identity(identity);
        }
        let client = builder.build().map_err(|e| invalid(e.to_string()))?;
        Ok(Self {
            url: url.to_string(),
            client,
            credentials: None,
        })
    }

    /// Sends `Authorization: Bearer <token>` with every request.
    pub fn with_bearer_token(self, token: String) -> Self {
        self.with_credentials(Credentials::Bearer(token))
    }

    /// Sends `credentials` with every request.
    pub fn with_credentials(mut self, credentials: Credentials) -> Self {
        self.credentials = Some(credentials);
        self
    }

    /// The endpoint's URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Reads the series matching `matchers` in `[hints.start, hints.end]`, passing the hints on;
    /// without samples if the hints' function is `series`.
    async fn read(
        &self,
        matchers: &[Matcher],
        hints: &SelectHints,
    ) -> Result<Vec<Series>, ReadError> {
        let (min_t, max_t) = (hints.start, hints.end);
        let hints = Some(ReadHints {
            step_ms: hints.step,
            func: hints.func.clone().unwrap_or_default(),
            start_ms: min_t,
            end_ms: max_t,
            grouping: hints.grouping.clone(),
            by: hints.by,
            range_ms: hints.range,
        });
        let request = ReadRequest {
            queries: vec![Query {
                start_timestamp_ms: min_t,
                end_timestamp_ms: max_t,
                matchers: to_proto(matchers),
                hints,
            }],
            accepted_response_types: vec![ResponseType::Samples as i32],
        };
        let body = snap::raw::Encoder::new().compress_vec(&request.encode_to_vec())?;
        let mut req = self
            .client
            .post(&self.url)
            .header("Content-Type", "application/x-protobuf")
            .header("Content-Encoding", "snappy")
            .header("X-Prometheus-Remote-Read-Version", "0.1.0")
            .body(body);
        match &self.credentials {
            Some(Credentials::Bearer(token)) => req = req.bearer_auth(token),
            Some(Credentials::Basic { user, password }) => {
                req = req.basic_auth(user, Some(password))
            }
            None => {}
        }
        let resp = req.send().await?;
        let status = resp.status();
        let bytes = resp.bytes().await?;
        if !status.is_success() {
            let body = String::from_utf8_lossy(&bytes[..bytes.len().min(512)])
                .trim()
                .to_string();
            return Err(ReadError::Status {
                status: status.as_u16(),
                body,
            });
        }
        let len = snap::raw::decompress_len(&bytes)?;
        if len > MAX_RESPONSE_BYTES {
            return Err(ReadError::Invalid(format!(
                "response of {len} bytes decompressed is over the {MAX_RESPONSE_BYTES}-byte limit"
            )));
        }
        let raw = snap::raw::Decoder::new().decompress_vec(&bytes)?;
        let response = ReadResponse::decode(raw.as_slice())?;
        let result = response
            .results
            .into_iter()
            .next()
            .ok_or_else(|| ReadError::Invalid("response has no result for the query".into()))?;
        let mut series = result
            .timeseries
            .into_iter()
            .map(|ts| from_proto(ts, min_t, max_t))
            .collect::<Result<Vec<Series>, ReadError>>()?;
        series.sort_by(|a, b| a.labels.cmp(&b.labels));
        Ok(series)
    }

    /// [`RemoteRead::read`], answering nothing with a warning on failure.
    async fn read_or_warn(&self, matchers: &[Matcher], hints: &SelectHints) -> Vec<Series> {
        match self.read(matchers, hints).await {
            Ok(series) => series,
            Err(e) => {
                warnings::warn(format!(
                    "remote read from {}: {}",
                    self.url,
                    fleetscope_store::error::display_chain(&e)
                ));
                Vec::new()
            }
        }
    }
}

/// Hints asking for the label sets in `[min_t, max_t]` only.
fn labels_only(min_t: i64, max_t: i64) -> SelectHints {
    SelectHints {
        func: Some("series".into()),
        ..SelectHints::range(min_t, max_t)
    }
}

impl Source for RemoteRead {
    fn select<'a>(&'a self, matchers: &'a [Matcher], hints: &'a SelectHints) -> SelectFuture<'a> {
        Box::pin(async move {
            let mut series = self.read_or_warn(matchers, hints).await;
            if series.windows(2).any(|w| w[0].labels == w[1].labels) {
                // A server may send one label set in several pieces: one entry per label set.
                series =
                    fleetscope_store::series::merge(series.into_iter().map(|s| vec![s]).collect());
            }
            // Remote-read serves raw samples.
            Ok(fleetscope_store::downsample::raw_view(
                series,
                hints.aggregate,
            ))
        })
    }

    fn series<'a>(&'a self, matchers: &'a [Matcher], min_t: i64, max_t: i64) -> LabelsFuture<'a> {
        Box::pin(async move {
            let mut labels: Vec<Labels> = self
                .read_or_warn(matchers, &labels_only(min_t, max_t))
                .await
                .into_iter()
                .map(|s| s.labels)
                .collect();
            labels.dedup();
            Ok(labels)
        })
    }

    fn label_index<'a>(&'a self, min_t: i64, max_t: i64) -> IndexFuture<'a> {
        Box::pin(async move {
            // Remote-read needs a matcher; this one matches every series.
            let all = [Matcher::new(MatchOp::Regex, "__name__", ".+")?];
            let mut index = LabelIndex::new();
            for s in self.read_or_warn(&all, &labels_only(min_t, max_t)).await {
                for l in s.labels.iter() {
                    index
                        .entry(l.name.clone())
                        .or_default()
                        .insert(l.value.clone());
                }
            }
            Ok(index)
        })
    }
}

fn to_proto(matchers: &[Matcher]) -> Vec<LabelMatcher> {
    matchers
        .iter()
        .map(|m| LabelMatcher {
            r#type: match m.op {
                MatchOp::Equal => MatchType::Eq,
                MatchOp::NotEqual => MatchType::Neq,
                MatchOp::Regex => MatchType::Re,
                MatchOp::NotRegex => MatchType::Nre,
            } as i32,
            name: m.name.clone(),
            value: m.value.clone(),
        })
        .collect()
}

/// A remote series as ours: labels checked (sorted, unique, non-empty names), samples sorted,
/// one per timestamp, within `[min_t, max_t]`.
fn from_proto(ts: v1::TimeSeries, min_t: i64, max_t: i64) -> Result<Series, ReadError> {
    let mut labels: Vec<Label> = ts
        .labels
        .into_iter()
        .filter(|l| !l.value.is_empty())
        .map(|l| Label::new(l.name, l.value))
        .collect();
    labels.sort_by(|a, b| a.name.cmp(&b.name));
    let labels = Labels::from_sorted(labels).map_err(|e| ReadError::Invalid(e.to_string()))?;
    let mut samples: Vec<Sample> = ts
        .samples
        .into_iter()
        .filter(|s| (min_t..=max_t).contains(&s.timestamp))
        .map(|s| Sample {
            t: s.timestamp,
            v: s.value,
        })
        .collect();
    fleetscope_store::series::sort_dedup(&mut samples);
    Ok(Series { labels, samples })
}
