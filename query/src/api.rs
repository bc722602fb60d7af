//! The Prometheus HTTP API (`/api/v1/*`) over a [`Catalog`], as an axum [`Router`].
//!
//! GET query strings and form-encoded POST bodies are both accepted (Grafana uses either). Errors go
//! through [`ApiError`], the one place that maps errors to `errorType` and HTTP status.

pub(crate) mod json;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use fleetscope_store::labels::METRIC_NAME;
use fleetscope_store::{Labels, Matcher};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use promql_parser::parser::Expr;
use tokio::sync::Semaphore;

use crate::downsampling::SourceResolution;
use crate::engine::{Engine, Planned};
use crate::error::Error;
use crate::sql::Sql;
use crate::warnings;
use fleetscope_store::Catalog;
use fleetscope_store::dedup::Dedup;
use fleetscope_store::source::Source;

/// Limits of the API (the querier's `--query.*` flags).
#[derive(Debug, Clone, Copy)]
pub struct ApiOptions {
    /// Longest a query may run (`--query.timeout`, 2m).
    pub timeout: Duration,
    /// Queries evaluated at once; more wait (`--query.max-concurrency`, 20).
    pub max_concurrency: usize,
}

impl Default for ApiOptions {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(120),
            max_concurrency: 20,
        }
    }
}

/// Everything a request handler needs.
#[derive(Debug)]
pub struct ApiState {
    engine: Engine,
    catalog: Arc<Catalog>,
    /// What queries read: the catalog, or the catalog plus fresher sources.
    source: Arc<dyn Source>,
    options: ApiOptions,
    slots: Semaphore,
    metrics: Metrics,
    sql: Sql,
    /// Labels telling HA replicas apart (`--query.replica-label`): their series are merged.
    replica_labels: Vec<String>,
    /// Whether `/-/ready` answers 200 (set by whoever loads the catalog's block headers).
    ready: Arc<AtomicBool>,
}

impl ApiState {
    /// State serving `catalog` with `engine`.
    pub fn new(engine: Engine, catalog: Arc<Catalog>, options: ApiOptions) -> Self {
        let source: Arc<dyn Source> = Arc::clone(&catalog) as _;
        Self::with_source(engine, catalog, source, options)
    }

    /// State answering from `source` (e.g. the catalog fanned out with shippers' heads).
    pub fn with_source(
        engine: Engine,
        catalog: Arc<Catalog>,
        source: Arc<dyn Source>,
        options: ApiOptions,
    ) -> Self {
        let slots = Semaphore::new(options.max_concurrency.max(1));
        let sql = Sql::new(&engine, Arc::clone(&source));
        Self {
            sql,
            engine,
            catalog,
            source,
            options,
            slots,
            metrics: Metrics::new(),
            replica_labels: Vec::new(),
            ready: Arc::new(AtomicBool::new(true)),
        }
    }

    /// `/-/ready` answers 503 while `ready` is false (e.g. while block headers load).
    pub fn with_readiness(mut self, ready: Arc<AtomicBool>) -> Self {
        self.ready = ready;
        self
    }

    /// Merges series that differ only in these labels (HA replicas), as Thanos's
    /// `--query.replica-label`; requests may turn it off (`dedup=false`) or name other labels
    /// (`replicaLabels[]`).
    pub fn with_replica_labels(mut self, labels: Vec<String>) -> Self {
        self.replica_labels = labels;
        self
    }

    /// The engine for this request: reading downsampled data as its `max_source_resolution` says.
    fn engine(&self, p: &Params) -> Result<std::borrow::Cow<'_, Engine>, ApiError> {
        match p.get("max_source_resolution") {
            None | Some("") => Ok(std::borrow::Cow::Borrowed(&self.engine)),
            Some(v) => {
                let r = v.parse::<SourceResolution>().map_err(|e| {
                    ApiError::bad_data(format!("invalid parameter \"max_source_resolution\": {e}"))
                })?;
                Ok(std::borrow::Cow::Owned(
                    self.engine.with_max_source_resolution(r),
                ))
            }
        }
    }

    /// What this request reads: the source, deduplicated over the replica labels unless the
    /// request says `dedup=false`.
    fn source(&self, p: &Params) -> Result<Arc<dyn Source>, ApiError> {
        let dedup = match p.get("dedup") {
            None | Some("true") | Some("1") => true,
            Some("false") | Some("0") => false,
            Some(v) => return Err(invalid("dedup", v, "boolean")),
        };
        let asked = p.all("replicaLabels[]");
        let labels: Vec<String> = if asked.is_empty() {
            self.replica_labels.clone()
        } else {
            asked.iter().map(|l| l.to_string()).collect()
        };
        if !dedup || labels.is_empty() {
            return Ok(Arc::clone(&self.source));
        }
        Ok(Arc::new(Dedup::new(Arc::clone(&self.source), labels)))
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    handler: String,
    code: String,
}

/// The querier's own metrics, on `/metrics`.
#[derive(Debug)]
struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    duration: Histogram,
    blocks: Gauge,
}

impl Metrics {
    fn new() -> Self {
        let mut registry = Registry::with_prefix("fleetscope_query");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "requests",
            "HTTP requests by handler and status code",
            requests.clone(),
        );
        let duration = Histogram::new([0.005, 0.025, 0.1, 0.5, 1.0, 5.0, 30.0, 120.0]);
        registry.register(
            "duration_seconds",
            "Query evaluation time",
            duration.clone(),
        );
        let blocks = Gauge::default();
        registry.register("blocks", "Blocks known to the catalog", blocks.clone());
        Self {
            registry,
            requests,
            duration,
            blocks,
        }
    }
}

/// The `data` object of a query answer, as the API renders it.
pub fn render_query_data(value: &crate::value::QueryValue) -> String {
    json::query_data(value)
}

/// The router: every endpoint Grafana and `promtool` use.
pub fn router(state: Arc<ApiState>) -> Router {
    Router::new()
        .route("/api/v1/query", get(query).post(query))
        .route("/api/v1/query_range", get(query_range).post(query_range))
        .route("/api/v1/sql", get(sql).post(sql))
        .route("/api/v1/series", get(series).post(series))
        .route("/api/v1/labels", get(labels).post(labels))
        .route("/api/v1/label/{name}/values", get(label_values))
        .route("/api/v1/metadata", get(|| async { ok("{}".into()) }))
        .route(
            "/api/v1/rules",
            get(|| async { ok("{\"groups\":[]}".into()) }),
        )
        .route(
            "/api/v1/alerts",
            get(|| async { ok("{\"alerts\":[]}".into()) }),
        )
        .route(
            "/api/v1/query_exemplars",
            get(|| async { ok("[]".into()) }).post(|| async { ok("[]".into()) }),
        )
        .route("/api/v1/status/buildinfo", get(buildinfo))
        .route("/api/v1/features", get(features))
        .route(
            "/api/v1/fleet/capacity",
            get(fleet_capacity).post(fleet_capacity),
        )
        .route("/metrics", get(metrics))
        .layer(tower_http::trace::TraceLayer::new_for_http())
        // Probes stay out of the request log: a 503 while headers load is not an error.
        .route(
            "/-/healthy",
            get(|| async { "fleetscope querier is healthy.\n" }),
        )
        .route("/-/ready", get(ready))
        .with_state(state)
}

/// `/-/ready`: 200 once the querier's block headers are loaded, 503 before.
async fn ready(State(state): State<Arc<ApiState>>) -> (StatusCode, &'static str) {
    if state.ready.load(Ordering::Acquire) {
        (StatusCode::OK, "fleetscope querier is ready.\n")
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "fleetscope querier is loading block headers.\n",
        )
    }
}

/// An API error: Prometheus's `errorType` and HTTP status.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    error_type: &'static str,
    message: String,
}

impl ApiError {
    fn bad_data(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            error_type: "bad_data",
            message: message.into(),
        }
    }
}

impl From<fleetscope_store::Error> for ApiError {
    fn from(e: fleetscope_store::Error) -> Self {
        Error::Store(e).into()
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        let (status, error_type) = classify(&e);
        if status.is_server_error() {
            tracing::warn!(error = %fleetscope_store::error::display_chain(&e), "query failed");
        }
        Self {
            status,
            error_type,
            message: fleetscope_store::error::display_chain(&e),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            [(header::CONTENT_TYPE, "application/json")],
            json::error(self.error_type, &self.message),
        )
            .into_response()
    }
}

fn ok(data: String) -> Response {
    ok_warn(data, &[])
}

fn ok_warn(data: String, warnings: &[String]) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        json::success(&data, warnings),
    )
        .into_response()
}

/// Request parameters from the query string and a form-encoded body.
struct Params(Vec<(String, String)>);

impl<S: Send + Sync> axum::extract::FromRequest<S> for Params {
    type Rejection = ApiError;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, Self::Rejection> {
        let query = req.uri().query().map(String::from);
        let headers = req.headers().clone();
        let body = <Bytes as axum::extract::FromRequest<S>>::from_request(req, state)
            .await
            .map_err(|e| ApiError::bad_data(format!("read request body: {e}")))?;
        Ok(Params::new(query, &headers, &body))
    }
}

impl Params {
    fn new(query: Option<String>, headers: &HeaderMap, body: &Bytes) -> Self {
        let mut v: Vec<(String, String)> =
            url::form_urlencoded::parse(query.unwrap_or_default().as_bytes())
                .into_owned()
                .collect();
        let form = headers
            .get(header::CONTENT_TYPE)
            .and_then(|c| c.to_str().ok())
            .is_some_and(|c| c.starts_with("application/x-www-form-urlencoded"));
        let json = headers
            .get(header::CONTENT_TYPE)
            .and_then(|c| c.to_str().ok())
            .is_some_and(|c| c.starts_with("application/json"));
        if form {
            v.extend(url::form_urlencoded::parse(body).into_owned());
        } else if json && let Ok(serde_json::Value::Object(fields)) = serde_json::from_slice(body) {
            // A JSON object body (`{"query": "..."}`): its string fields are parameters.
            v.extend(fields.into_iter().filter_map(|(k, v)| match v {
                serde_json::Value::String(s) => Some((k, s)),
                _ => None,
            }));
        }
        Self(v)
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn all(&self, name: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    fn time(&self, name: &str) -> Result<Option<i64>, ApiError> {
        self.get(name)
            .map(|v| parse_time(v).ok_or_else(|| invalid(name, v, "timestamp")))
            .transpose()
    }

    fn duration(&self, name: &str) -> Result<Option<i64>, ApiError> {
        self.get(name)
            .map(|v| parse_duration(v).ok_or_else(|| invalid(name, v, "duration")))
            .transpose()
    }

    fn limit(&self) -> Result<usize, ApiError> {
        match self.get("limit") {
            None | Some("") => Ok(0),
            Some(v) => v.parse().map_err(|_| {
                ApiError::bad_data(format!("limit must be a non-negative integer, got {v:?}"))
            }),
        }
    }
}

fn invalid(name: &str, value: &str, what: &str) -> ApiError {
    ApiError::bad_data(format!(
        "invalid parameter {name:?}: cannot parse {value:?} to a valid {what}"
    ))
}

/// Largest time the API takes, ms (2^53: exact in a float, and far from `i64` overflow).
const TIME_LIMIT_MS: f64 = 9_007_199_254_740_992.0;

/// Unix seconds with decimals, or RFC 3339 (Prometheus's `parseTime`).
fn parse_time(s: &str) -> Option<i64> {
    if let Ok(secs) = s.parse::<f64>() {
        if !secs.is_finite() {
            return None;
        }
        // Past about 285,000 years either way, the time is clamped: no data is there, and the
        // engine's arithmetic on it stays far from overflowing.
        let ms = (secs * 1000.0).round().clamp(-TIME_LIMIT_MS, TIME_LIMIT_MS);
        return Some(ms as i64);
    }
    chrono::DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.timestamp_millis())
}

/// Seconds with decimals, or a Prometheus duration like `1h30m` (ms).
fn parse_duration(s: &str) -> Option<i64> {
    if let Ok(secs) = s.parse::<f64>() {
        return (secs.is_finite() && secs.abs() < 9e15).then(|| (secs * 1000.0).round() as i64);
    }
    let mut total = 0i64;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit())?;
        let n: i64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let ms = match &rest[..unit_len] {
            "ms" => 1,
            "s" => 1000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            "w" => 604_800_000,
            "y" => 31_536_000_000,
            _ => return None,
        };
        total = total.checked_add(n.checked_mul(ms)?)?;
        rest = &rest[unit_len..];
    }
    (!s.is_empty()).then_some(total)
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Runs a query with the concurrency limit and timeout, recording metrics.
async fn run_query<F, T>(state: &ApiState, handler: &str, fut: F) -> Result<T, ApiError>
where
    F: std::future::Future<Output = crate::error::Result<T>>,
{
    let started = Instant::now();
    let result = async {
        let _slot = state
            .slots
            .acquire()
            .await
            .map_err(|_| Error::Internal("query slots closed".into()))?;
        tokio::time::timeout(state.options.timeout, fut)
            .await
            .map_err(|_| Error::Timeout("query execution"))?
    }
    .await;
    state
        .metrics
        .duration
        .observe(started.elapsed().as_secs_f64());
    let code = match &result {
        Ok(_) => StatusCode::OK,
        Err(e) => classify(e).0,
    };
    state
        .metrics
        .requests
        .get_or_create(&RequestLabels {
            handler: handler.into(),
            code: code.as_str().to_string(),
        })
        .inc();
    result.map_err(ApiError::from)
}

/// The one error -> (HTTP status, Prometheus `errorType`) table of the query API.
fn classify(e: &Error) -> (StatusCode, &'static str) {
    match e {
        Error::BadData(_) => (StatusCode::BAD_REQUEST, "bad_data"),
        Error::Execution(_) | Error::TooManySamples(_) | Error::ResourcesExhausted(_) => {
            (StatusCode::UNPROCESSABLE_ENTITY, "execution")
        }
        Error::Timeout(_) => (StatusCode::SERVICE_UNAVAILABLE, "timeout"),
        Error::Store(_) | Error::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
        Error::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
    }
}

#[tracing::instrument(skip_all, fields(handler = "query"))]
async fn query(State(state): State<Arc<ApiState>>, p: Params) -> Result<Response, ApiError> {
    let query = p
        .get("query")
        .ok_or_else(|| ApiError::bad_data("invalid parameter \"query\": query is empty"))?;
    let t = p.time("time")?.unwrap_or_else(now_ms);
    tracing::debug!(query, t, "instant query");
    let planned = state
        .engine(&p)?
        .plan_instant(&state.source(&p)?, query, t)?;
    answer(&state, "query", &planned, &p).await
}

#[tracing::instrument(skip_all, fields(handler = "query_range"))]
async fn query_range(State(state): State<Arc<ApiState>>, p: Params) -> Result<Response, ApiError> {
    let query = p
        .get("query")
        .ok_or_else(|| ApiError::bad_data("invalid parameter \"query\": query is empty"))?;
    let start = p
        .time("start")?
        .ok_or_else(|| ApiError::bad_data("invalid parameter \"start\": missing"))?;
    let end = p
        .time("end")?
        .ok_or_else(|| ApiError::bad_data("invalid parameter \"end\": missing"))?;
    let step = p
        .duration("step")?
        .ok_or_else(|| ApiError::bad_data("invalid parameter \"step\": missing"))?;
    if end < start {
        return Err(ApiError::bad_data(
            "invalid parameter \"end\": end timestamp must not be before start time",
        ));
    }
    if step <= 0 {
        return Err(ApiError::bad_data(
            "invalid parameter \"step\": zero or negative query resolution step widths are not accepted. Try a positive integer",
        ));
    }
    if (end - start) / step > 11_000 {
        return Err(ApiError::bad_data(
            "exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)",
        ));
    }
    let planned = state
        .engine(&p)?
        .plan_range(&state.source(&p)?, query, start, end, step)?;
    answer(&state, "query_range", &planned, &p).await
}

/// Runs a planned query and renders its result. With `explain=true` the answer is the physical
/// plan instead (`data.plan`); with `analyze=true` as well, the query runs and `data.plan` has
/// each node's figures beside the result.
async fn answer(
    state: &ApiState,
    handler: &'static str,
    planned: &Planned,
    p: &Params,
) -> Result<Response, ApiError> {
    let flag = |name: &str| p.get(name).is_some_and(|v| v == "true" || v == "1");
    let (explain, analyze) = (flag("explain"), flag("analyze"));
    if explain && !analyze {
        let plan = serde_json::json!({ "plan": planned.display() });
        return Ok(ok(plan.to_string()));
    }
    let (value, warnings) =
        warnings::collect(run_query(state, handler, state.engine.execute(planned))).await;
    let mut data = json::query_data(&value?);
    if explain {
        let plan = serde_json::Value::String(planned.display_metrics()).to_string();
        data.truncate(data.len().saturating_sub(1));
        data.push_str(&format!(",\"plan\":{plan}}}"));
    }
    Ok(ok_warn(data, &warnings))
}

/// `POST /api/v1/sql` (form or JSON body with `query`): rows as JSON objects under
/// `data.rows` with `data.columns` (name and Arrow type), or an Arrow IPC stream when the client
/// accepts `application/vnd.apache.arrow.stream`. Same concurrency limit and timeout as PromQL.
#[tracing::instrument(skip_all, fields(handler = "sql"))]
async fn sql(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    p: Params,
) -> Result<Response, ApiError> {
    let statement = p
        .get("query")
        .ok_or_else(|| ApiError::bad_data("invalid parameter \"query\": missing"))?;
    let arrow_stream = headers
        .get(header::ACCEPT)
        .and_then(|a| a.to_str().ok())
        .is_some_and(|a| a.contains(ARROW_STREAM));
    let result = run_query(&state, "sql", state.sql.query(statement)).await?;
    let internal = |e: arrow::error::ArrowError| ApiError::from(Error::Internal(e.to_string()));
    if arrow_stream {
        let mut out = Vec::new();
        let mut w = arrow::ipc::writer::StreamWriter::try_new(&mut out, &result.schema)
            .map_err(internal)?;
        for b in &result.batches {
            w.write(b).map_err(internal)?;
        }
        w.finish().map_err(internal)?;
        drop(w);
        return Ok(([(header::CONTENT_TYPE, ARROW_STREAM)], out).into_response());
    }
    let mut rows = Vec::new();
    let mut w = arrow::json::ArrayWriter::new(&mut rows);
    for b in &result.batches {
        w.write(b).map_err(internal)?;
    }
    w.finish().map_err(internal)?;
    drop(w);
    if rows.is_empty() {
        rows.extend_from_slice(b"[]");
    }
    let columns: Vec<serde_json::Value> = result
        .schema
        .fields()
        .iter()
        .map(|f| serde_json::json!({"name": f.name(), "type": f.data_type().to_string()}))
        .collect();
    let data = format!(
        "{{\"columns\":{},\"rows\":{}}}",
        serde_json::Value::Array(columns),
        String::from_utf8_lossy(&rows)
    );
    Ok(ok(data))
}

/// Media type of an Arrow IPC stream.
const ARROW_STREAM: &str = "application/vnd.apache.arrow.stream";

/// Parses `match[]` selectors into matcher sets.
fn match_sets(p: &Params) -> Result<Vec<Vec<Matcher>>, ApiError> {
    p.all("match[]")
        .into_iter()
        .map(|m| {
            let expr = Engine::parse(m)
                .map_err(|e| ApiError::bad_data(format!("invalid parameter \"match[]\": {e}")))?;
            let Expr::VectorSelector(vs) = expr else {
                return Err(ApiError::bad_data(format!(
                    "invalid parameter \"match[]\": {m:?} is not a series selector"
                )));
            };
            let mut sets = Vec::new();
            let mut groups = vec![vs.matchers.matchers.clone()];
            groups.extend(vs.matchers.or_matchers.iter().cloned());
            for g in groups {
                let mut set = g
                    .iter()
                    .map(|m| {
                        let op = match m.op {
                            promql_parser::label::MatchOp::Equal => {
                                fleetscope_store::MatchOp::Equal
                            }
                            promql_parser::label::MatchOp::NotEqual => {
                                fleetscope_store::MatchOp::NotEqual
                            }
                            promql_parser::label::MatchOp::Re(_) => {
                                fleetscope_store::MatchOp::Regex
                            }
                            promql_parser::label::MatchOp::NotRe(_) => {
                                fleetscope_store::MatchOp::NotRegex
                            }
                        };
                        Matcher::new(op, m.name.clone(), m.value.clone())
                            .map_err(|e| ApiError::bad_data(e.to_string()))
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                if let Some(name) = &vs.name
                    && !set.iter().any(|m| m.name == METRIC_NAME)
                {
                    set.push(Matcher::equal(METRIC_NAME, name.clone()));
                }
                sets.push(set);
            }
            Ok(sets)
        })
        .collect::<Result<Vec<_>, _>>()
        .map(|v| v.into_iter().flatten().collect())
}

/// Label sets of the series matching any of `sets` in the request's time range.
async fn matching_series(
    state: &ApiState,
    p: &Params,
    sets: Vec<Vec<Matcher>>,
) -> Result<Vec<Labels>, ApiError> {
    let start = p.time("start")?.unwrap_or(i64::MIN / 2);
    let end = p.time("end")?.unwrap_or(i64::MAX / 2);
    let source = state.source(p)?;
    let mut all = Vec::new();
    for set in &sets {
        let found = tokio::time::timeout(state.options.timeout, source.series(set, start, end))
            .await
            .map_err(|_| ApiError::from(Error::Timeout("series lookup")))??;
        all.extend(found);
    }
    all.sort();
    all.dedup();
    Ok(all)
}

/// Label names (`name` `None`) or the values of label `name` among the series in the request's
/// time range, from the sources' indexes.
async fn indexed(
    state: &ApiState,
    p: &Params,
    name: Option<&str>,
) -> Result<Vec<String>, ApiError> {
    let start = p.time("start")?.unwrap_or(i64::MIN / 2);
    let end = p.time("end")?.unwrap_or(i64::MAX / 2);
    let source = state.source(p)?;
    let lookup = match name {
        None => source.label_names(start, end),
        Some(name) => source.label_values(name, start, end),
    };
    tokio::time::timeout(state.options.timeout, lookup)
        .await
        .map_err(|_| ApiError::from(Error::Timeout("label lookup")))?
        .map(|set| set.into_iter().collect())
        .map_err(ApiError::from)
}

fn truncate<T>(items: &mut Vec<T>, limit: usize) -> Vec<String> {
    if limit > 0 && items.len() > limit {
        items.truncate(limit);
        return vec!["results truncated due to limit".into()];
    }
    vec![]
}

async fn series(State(state): State<Arc<ApiState>>, p: Params) -> Result<Response, ApiError> {
    let sets = match_sets(&p)?;
    if sets.is_empty() {
        return Err(ApiError::bad_data("no match[] parameter provided"));
    }
    let (found, mut warnings) = warnings::collect(matching_series(&state, &p, sets)).await;
    let mut found = found?;
    warnings.extend(truncate(&mut found, p.limit()?));
    Ok(ok_warn(json::label_sets(&found), &warnings))
}

async fn labels(State(state): State<Arc<ApiState>>, p: Params) -> Result<Response, ApiError> {
    let (names, mut warnings) = warnings::collect(label_names(&state, &p)).await;
    let mut names = names?;
    warnings.extend(truncate(&mut names, p.limit()?));
    Ok(ok_warn(
        json::string_array(names.iter().map(String::as_str)),
        &warnings,
    ))
}

async fn label_names(state: &ApiState, p: &Params) -> Result<Vec<String>, ApiError> {
    let sets = match_sets(p)?;
    Ok(if sets.is_empty() {
        indexed(state, p, None).await?
    } else {
        let found = matching_series(state, p, sets).await?;
        let mut names: Vec<String> = found
            .iter()
            .flat_map(|l| l.iter().map(|l| l.name.clone()))
            .collect();
        names.sort_unstable();
        names.dedup();
        names
    })
}

async fn label_values(
    State(state): State<Arc<ApiState>>,
    Path(name): Path<String>,
    p: Params,
) -> Result<Response, ApiError> {
    // Grafana escapes UTF-8 label names as `U__...`; plain names pass through unchanged.
    let name = unescape_label_name(&name);
    let (values, mut warnings) = warnings::collect(values_of(&state, &p, &name)).await;
    let mut values = values?;
    warnings.extend(truncate(&mut values, p.limit()?));
    Ok(ok_warn(
        json::string_array(values.iter().map(String::as_str)),
        &warnings,
    ))
}

async fn values_of(state: &ApiState, p: &Params, name: &str) -> Result<Vec<String>, ApiError> {
    let sets = match_sets(p)?;
    Ok(if sets.is_empty() {
        indexed(state, p, Some(name)).await?
    } else {
        let found = matching_series(state, p, sets).await?;
        let mut values: Vec<String> = found
            .iter()
            .filter_map(|l| l.get(name).map(String::from))
            .collect();
        values.sort_unstable();
        values.dedup();
        values
    })
}

/// Decodes Prometheus's `U__` label-name escaping (`U__a_2e_b` is `a.b`).
fn unescape_label_name(name: &str) -> String {
    let Some(rest) = name.strip_prefix("U__") else {
        return name.to_string();
    };
    let mut out = String::new();
    let parts = rest.split('_');
    // Segments alternate: literal text, then a hex code point between underscores.
    let mut literal = true;
    for part in parts {
        if literal {
            out.push_str(part);
        } else if part.is_empty() {
            out.push('_');
        } else if let Some(c) = u32::from_str_radix(part, 16).ok().and_then(char::from_u32) {
            out.push(c);
        } else {
            return name.to_string();
        }
        literal = !literal;
    }
    out
}

/// `GET /api/v1/fleet/capacity`: which clusters can run a gang-scheduled job now
/// ([`crate::capacity`]); the same JSON as `fleetscope capacity --output json`.
async fn fleet_capacity(
    State(state): State<Arc<ApiState>>,
    p: Params,
) -> Result<Response, ApiError> {
    let quantity = |name: &str, required: bool| -> Result<f64, ApiError> {
        match p.get(name) {
            Some(v) => crate::capacity::parse_quantity(v)
                .map_err(|e| ApiError::bad_data(format!("invalid parameter {name:?}: {e}"))),
            None if required => Err(ApiError::bad_data(format!("missing parameter {name:?}"))),
            None => Ok(0.0),
        }
    };
    let pods = quantity("pods", true)?;
    if pods.fract() != 0.0 || pods < 1.0 {
        return Err(ApiError::bad_data(
            "invalid parameter \"pods\": a whole number, at least 1",
        ));
    }
    let job = crate::capacity::Job {
        pods: pods as u64,
        gpus_per_pod: quantity("gpus_per_pod", false)?,
        cpu_per_pod: quantity("cpu_per_pod", false)?,
        memory_per_pod: quantity("memory_per_pod", false)?,
    };
    let clusters: Vec<String> = p.all("cluster").into_iter().map(String::from).collect();
    let time = p.time("time")?.unwrap_or_else(now_ms);
    let (answer, warnings) = warnings::collect(tokio::time::timeout(
        state.options.timeout,
        crate::capacity::capacity(&state.source(&p)?, job, &clusters, time),
    ))
    .await;
    let answer = answer.map_err(|_| Error::Timeout("capacity"))??;
    let data = serde_json::to_string(&answer)
        .map_err(|e| ApiError::from(Error::Internal(e.to_string())))?;
    Ok(ok_warn(data, &warnings))
}

async fn buildinfo() -> Response {
    let data = format!(
        "{{\"version\":{},\"revision\":\"\",\"branch\":\"\",\"buildUser\":\"\",\"buildDate\":\"\",\"goVersion\":\"\",\"features\":{{}}}}",
        serde_json::to_string(env!("CARGO_PKG_VERSION")).unwrap_or_default()
    );
    ok(data)
}

/// `GET /api/v1/features` (Prometheus 3.8): what this querier's PromQL supports, by Prometheus's
/// categories and names, so clients such as Grafana can tell what is on. Absent means off.
async fn features(State(state): State<Arc<ApiState>>) -> Response {
    let opts = state.engine.options();
    let mut promql = serde_json::Map::new();
    for (name, on) in [
        ("at_modifier", true),
        ("negative_offset", true),
        ("subqueries", true),
        ("offset", true),
        ("bool", true),
        ("by", true),
        ("without", true),
        ("on", true),
        ("ignoring", true),
        ("group_left", true),
        ("group_right", true),
        ("start", true),
        ("end", true),
        ("fill", opts.fill_modifiers),
        ("fill_left", opts.fill_modifiers),
        ("fill_right", opts.fill_modifiers),
        ("anchored", false),
        ("smoothed", false),
        ("duration_expr", false),
        ("delayed_name_removal", false),
        ("type_and_unit_labels", false),
    ] {
        promql.insert(name.into(), on.into());
    }
    let mut operators = serde_json::Map::new();
    for op in [
        "+", "-", "*", "/", "%", "^", "==", "!=", "<", "<=", ">", ">=", "=", "=~", "!~", "and",
        "or", "unless", "atan2",
    ] {
        operators.insert(op.into(), true.into());
    }
    for op in crate::plan::AggOp::ALL {
        operators.insert(
            op.name().into(),
            (!op.experimental() || opts.experimental_functions).into(),
        );
    }
    let functions: serde_json::Map<String, serde_json::Value> = crate::plan::FUNCTIONS
        .iter()
        .map(|f| {
            let on = !f.experimental() || opts.experimental_functions;
            (f.name.to_string(), on.into())
        })
        .collect();
    let data = serde_json::json!({
        "promql": promql,
        "promql_operators": operators,
        "promql_functions": functions,
    });
    ok(data.to_string())
}

async fn metrics(State(state): State<Arc<ApiState>>) -> Response {
    state
        .metrics
        .blocks
        .set(state.catalog.blocks().len() as i64);
    let mut out = String::new();
    if prometheus_client::encoding::text::encode(&mut out, &state.metrics.registry).is_err() {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    }
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        out,
    )
        .into_response()
}

#[cfg(test)]
mod tests;
