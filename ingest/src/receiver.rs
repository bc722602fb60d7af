//! The shipper's HTTP side: `POST /api/v1/write` (remote-write 1.0 and 2.0), `POST /api/v1/read`
//! (remote-read, see [`crate::read`]), `POST /api/v1/flush`, `/metrics`, `/-/healthy`, `/-/ready`.
//!
//! Status codes follow the remote-write specs: 204 success; 400 invalid data (never retried; valid
//! samples of the request are kept); 401 without the bearer token; 413 too large (checked before
//! decompressing); 415 unsupported content type or encoding; 503 when the WAL cannot take the write
//! or more than `max_inflight_writes` writes are in flight (retried by the sender, after
//! `Retry-After`).

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use fleetscope_store::Labels;

use crate::convert::{Limits, SeriesCache, Version, decode};
use crate::metrics::CodeLabels;
use crate::read::ReadError;
use crate::shipper::Shipper;

/// Limits and access control of the receiver.
#[derive(Debug, Clone)]
pub struct ReceiverOptions {
    /// Largest compressed body accepted.
    pub max_body_bytes: usize,
    /// Largest decompressed body accepted (read from the snappy header before decompressing).
    pub max_decoded_bytes: usize,
    /// Bearer token required on writes, reads and flushes, if set.
    pub auth_token: Option<String>,
    /// Most samples one remote-read answers (Prometheus's `--storage.remote.read-sample-limit`).
    pub max_read_samples: usize,
    /// Samples further ahead of the shipper's clock than this are refused (Mimir's
    /// `creation_grace_period`): a wrong clock or a corrupt timestamp must not open windows
    /// years ahead that would make every real sample "too old".
    pub max_future: std::time::Duration,
    /// Limits on labels and series per request.
    pub limits: Limits,
    /// Writes handled at once (body read, decoded, appended); one more waits up to
    /// [`INFLIGHT_WAIT`], then gets 503 with `Retry-After`. Bounds the memory bodies and their
    /// decoding take: at most this many times `max_body_bytes + max_decoded_bytes`.
    pub max_inflight_writes: usize,
}

/// How long a write waits for one in flight to finish before it is refused with 503.
pub const INFLIGHT_WAIT: Duration = Duration::from_secs(1);

impl Default for ReceiverOptions {
    fn default() -> Self {
        Self {
            max_body_bytes: 32 << 20,
            max_decoded_bytes: 256 << 20,
            auth_token: None,
            max_read_samples: 50_000_000,
            max_future: std::time::Duration::from_secs(600),
            limits: Limits::default(),
            // Above Prometheus's default `max_shards` (50): one sender at full parallelism fits.
            max_inflight_writes: 64,
        }
    }
}

#[derive(Debug)]
struct AppState {
    shipper: Shipper,
    options: ReceiverOptions,
    series: SeriesCache,
    inflight: Arc<tokio::sync::Semaphore>,
}

/// The receiver's routes.
pub fn router(shipper: Shipper, options: ReceiverOptions) -> Router {
    let limit = options.max_body_bytes;
    let state = Arc::new(AppState {
        shipper,
        inflight: Arc::new(tokio::sync::Semaphore::new(
            options.max_inflight_writes.max(1),
        )),
        options,
        series: SeriesCache::new(),
    });
    let limited = middleware::from_fn_with_state(Arc::clone(&state), inflight);
    Router::new()
        .route("/api/v1/write", post(write).layer(limited))
        .route("/api/v1/read", post(read))
        .route("/api/v1/flush", post(flush))
        .route(
            "/metrics",
            get(|State(s): State<Arc<AppState>>| async move { s.shipper.metrics().encode() }),
        )
        .route(
            "/-/healthy",
            get(|| async { "fleetscope shipper is healthy.\n" }),
        )
        .route(
            "/-/ready",
            get(|| async { "fleetscope shipper is ready.\n" }),
        )
        .layer(DefaultBodyLimit::max(limit))
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .with_state(state)
}

/// A write outcome: status, message, and the `*-Written` counts for 2.0 senders.
struct Outcome {
    status: StatusCode,
    message: String,
    samples: usize,
    histograms: usize,
    exemplars: usize,
}

impl Outcome {
    fn error(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            samples: 0,
            histograms: 0,
            exemplars: 0,
        }
    }
}

/// Lets a write in when fewer than `max_inflight_writes` are, before its body is read; refuses it
/// with 503 and `Retry-After` when none finished within [`INFLIGHT_WAIT`].
async fn inflight(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let acquire = Arc::clone(&state.inflight).acquire_owned();
    let Ok(Ok(_permit)) = tokio::time::timeout(INFLIGHT_WAIT, acquire).await else {
        state
            .shipper
            .metrics()
            .requests
            .get_or_create(&CodeLabels {
                code: StatusCode::SERVICE_UNAVAILABLE.as_u16().to_string(),
            })
            .inc();
        let message = format!(
            "{} writes in flight, the most this shipper takes at once: retry later\n",
            state.options.max_inflight_writes
        );
        let mut resp = (StatusCode::SERVICE_UNAVAILABLE, message).into_response();
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        return resp;
    };
    next.run(req).await
}

fn authorized(state: &AppState, headers: &HeaderMap) -> bool {
    let Some(token) = &state.options.auth_token else {
        return true;
    };
    let got = headers
        .get(header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.strip_prefix("Bearer "));
    // Compare all bytes regardless of where they differ.
    got.is_some_and(|g| {
        g.len() == token.len()
            && g.bytes()
                .zip(token.bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0
    })
}

#[tracing::instrument(skip_all, fields(bytes = body.len()))]
async fn write(State(state): State<Arc<AppState>>, headers: HeaderMap, body: Bytes) -> Response {
    let outcome = if authorized(&state, &headers) {
        handle_write(&state, &headers, body).await
    } else {
        Outcome::error(StatusCode::UNAUTHORIZED, "missing or wrong bearer token")
    };
    let m = state.shipper.metrics();
    m.requests
        .get_or_create(&CodeLabels {
            code: outcome.status.as_u16().to_string(),
        })
        .inc();
    if !outcome.status.is_success() {
        tracing::debug!(status = outcome.status.as_u16(), message = %outcome.message, "write refused");
    }
    let mut resp = if outcome.status.is_success() {
        StatusCode::NO_CONTENT.into_response()
    } else {
        (outcome.status, format!("{}\n", outcome.message)).into_response()
    };
    let h = resp.headers_mut();
    for (name, n) in [
        ("x-prometheus-remote-write-samples-written", outcome.samples),
        (
            "x-prometheus-remote-write-histograms-written",
            outcome.histograms,
        ),
        (
            "x-prometheus-remote-write-exemplars-written",
            outcome.exemplars,
        ),
    ] {
        h.insert(name, HeaderValue::from(n as u64));
    }
    if outcome.status == StatusCode::SERVICE_UNAVAILABLE {
        h.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    resp
}

async fn handle_write(state: &AppState, headers: &HeaderMap, body: Bytes) -> Outcome {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    let version = match content_type
        .split(';')
        .map(str::trim)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["application/x-protobuf"]
        | ["application/x-protobuf", "proto=prometheus.WriteRequest"] => Version::V1,
        [
            "application/x-protobuf",
            "proto=io.prometheus.write.v2.Request",
        ] => Version::V2,
        _ => {
            return Outcome::error(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!(
                    "unsupported content type {content_type:?}: expected application/x-protobuf (remote-write 1.0) or application/x-protobuf;proto=io.prometheus.write.v2.Request"
                ),
            );
        }
    };
    let encoding = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    if encoding != "snappy" {
        return Outcome::error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("unsupported content encoding {encoding:?}: expected snappy"),
        );
    }
    let raw = match decompress(&body, state.options.max_decoded_bytes) {
        Ok(raw) => raw,
        Err((status, message)) => return Outcome::error(status, message),
    };
    let decoded = match decode(
        version,
        Bytes::from(raw),
        &state.series,
        &state.options.limits,
    ) {
        Ok(d) => d,
        Err(e) => return Outcome::error(StatusCode::BAD_REQUEST, e),
    };

    // Samples of windows already cut, or too far ahead of the clock, are refused; the rest kept.
    let min_valid_t = state.shipper.min_valid_t();
    let max_valid_t = now_ms()
        .saturating_add(i64::try_from(state.options.max_future.as_millis()).unwrap_or(i64::MAX));
    let (mut too_old, mut too_new) = (Refused::default(), Refused::default());
    let mut accepted = decoded.series;
    accepted.retain(|labels, x| {
        if x.t < min_valid_t {
            too_old.add(labels, x.t);
            false
        } else if x.t > max_valid_t {
            too_new.add(labels, x.t);
            false
        } else {
            true
        }
    });
    let rejected = too_old.count + too_new.count + decoded.refused_samples;
    let samples = accepted.samples();
    if let Err(e) = state.shipper.append(accepted).await {
        // Overload, a full disk or shutdown: all retryable by the sender.
        return Outcome::error(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("samples not written, retry: {e}"),
        );
    }
    let m = state.shipper.metrics();
    m.samples_rejected.inc_by(rejected as u64);
    let mut out = Outcome {
        status: StatusCode::NO_CONTENT,
        message: String::new(),
        samples,
        histograms: 0,
        exemplars: 0,
    };
    if rejected > 0 || decoded.refused_series > 0 {
        let mut parts = Vec::new();
        if let Some(why) = &decoded.first_refused {
            parts.push(format!(
                "{} series ({} sample(s)) refused; first: {why}",
                decoded.refused_series, decoded.refused_samples
            ));
        }
        if let Some(first) = &too_old.first {
            parts.push(format!(
                "{} sample(s) too old: their block window is already cut (oldest accepted t={min_valid_t} ms); first: {first}",
                too_old.count
            ));
        }
        if let Some(first) = &too_new.first {
            parts.push(format!(
                "{} sample(s) too far in the future (newest accepted t={max_valid_t} ms, --ingest.max-future {}s ahead of this shipper's clock); first: {first}",
                too_new.count,
                state.options.max_future.as_secs()
            ));
        }
        out.status = StatusCode::BAD_REQUEST;
        out.message = format!(
            "{}; the other {samples} sample(s) were written",
            parts.join("; ")
        );
    } else if decoded.histograms > 0 || decoded.exemplars > 0 {
        out.status = StatusCode::BAD_REQUEST;
        out.message = format!(
            "native histograms and exemplars are not supported yet: {} histogram sample(s) and {} exemplar(s) not written; {samples} float sample(s) written",
            decoded.histograms, decoded.exemplars
        );
    }
    out
}

/// Samples refused for one reason: how many, and the first, named.
#[derive(Default)]
struct Refused {
    count: usize,
    first: Option<String>,
}

impl Refused {
    fn add(&mut self, labels: &Labels, t: i64) {
        self.count += 1;
        self.first
            .get_or_insert_with(|| format!("{labels} at t={t} ms"));
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

#[tracing::instrument(skip_all, fields(bytes = body.len()))]
async fn read(State(state): State<Arc<AppState>>, headers: HeaderMap, body: Bytes) -> Response {
    if !authorized(&state, &headers) {
        return (StatusCode::UNAUTHORIZED, "missing or wrong bearer token\n").into_response();
    }
    let raw = match decompress(&body, state.options.max_decoded_bytes) {
        Ok(raw) => raw,
        Err((status, message)) => return (status, format!("{message}\n")).into_response(),
    };
    let answer = crate::read::answer(&state.shipper, &raw, state.options.max_read_samples).await;
    let compressed = answer.and_then(|r| {
        snap::raw::Encoder::new()
            .compress_vec(&r)
            .map_err(|e| ReadError::Internal(format!("compress response: {e}")))
    });
    match compressed {
        Ok(body) => (
            [
                (header::CONTENT_TYPE, "application/x-protobuf"),
                (header::CONTENT_ENCODING, "snappy"),
            ],
            body,
        )
            .into_response(),
        Err(e) => {
            let status = match e {
                ReadError::BadRequest(_) => StatusCode::BAD_REQUEST,
                ReadError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            };
            tracing::debug!(status = status.as_u16(), error = %e, "read refused");
            (status, format!("{e}\n")).into_response()
        }
    }
}

/// A snappy body decompressed, its declared size checked against `limit` first.
fn decompress(body: &[u8], limit: usize) -> Result<Vec<u8>, (StatusCode, String)> {
    let len = snap::raw::decompress_len(body)
        .map_err(|e| (StatusCode::BAD_REQUEST, format!("snappy header: {e}")))?;
    if len > limit {
        return Err((
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("decompressed body of {len} bytes exceeds the limit of {limit} bytes"),
        ));
    }
    snap::raw::Decoder::new()
        .decompress_vec(body)
        .map_err(|e| (StatusCode::BAD_REQUEST, format!("snappy decompress: {e}")))
}

#[tracing::instrument(skip_all)]
async fn flush(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    if !authorized(&state, &headers) {
        return (StatusCode::UNAUTHORIZED, "missing or wrong bearer token\n").into_response();
    }
    match state.shipper.flush(None).await {
        Ok(blocks) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            format!("{{\"blocks\":{blocks}}}\n"),
        )
            .into_response(),
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, format!("flush: {e}\n")).into_response(),
    }
}

/// How long a shutdown waits for the object store before leaving blocks staged for the next start.
pub const SHUTDOWN_FLUSH_TIMEOUT: Duration = Duration::from_secs(60);
