//! Flag groups shared by subcommands, and their value parsers.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use fleetscope_store::Labels;
use object_store::ObjectStore;

/// Logging flags.
#[derive(Debug, Args)]
pub struct LogArgs {
    /// Log filter, in `tracing` env-filter syntax (e.g. `info`, `fleetscope_store=debug`).
    #[arg(
        long = "log.level",
        env = "FLEETSCOPE_LOG",
        default_value = "info",
        global = true
    )]
    pub level: String,
}

/// Sets up `tracing` to stderr.
pub fn init_tracing(log: &LogArgs) {
    let filter = tracing_subscriber::EnvFilter::try_new(&log.level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

/// Where blocks live.
#[derive(Debug, Args)]
pub struct ObjstoreArgs {
    /// Object store URL: file:///abs/dir, memory://, s3://bucket/prefix (AWS_* variables), gs://..., az://...
    #[arg(long, env = "FLEETSCOPE_OBJSTORE")]
    pub objstore: String,
}

impl ObjstoreArgs {
    /// Opens the object store.
    pub fn open(&self) -> anyhow::Result<Arc<dyn ObjectStore>> {
        fleetscope_store::objstore::open(&self.objstore)
            .with_context(|| format!("open --objstore {}", self.objstore))
    }
}

/// PromQL engine flags, shared by `querier` and `query`.
#[derive(Debug, Args)]
pub struct QueryArgs {
    /// How far back an instant selector looks for a sample.
    #[arg(long = "query.lookback-delta", env = "FLEETSCOPE_QUERY_LOOKBACK_DELTA", default_value = "5m", value_parser = parse_duration)]
    pub lookback_delta: Duration,
    /// Most samples one query may load.
    #[arg(
        long = "query.max-samples",
        env = "FLEETSCOPE_QUERY_MAX_SAMPLES",
        default_value_t = 50_000_000
    )]
    pub max_samples: usize,
    /// PromQL semantics: `current` (Prometheus 3), or `prometheus2` to match an older Prometheus
    /// (left-closed windows, the old rate() extrapolation), e.g. when comparing with it.
    #[arg(
        long = "query.compat",
        env = "FLEETSCOPE_QUERY_COMPAT",
        value_enum,
        default_value = "current"
    )]
    pub compat: CompatArg,
    /// Partitions one query's per-series work is spread over (default: the number of cores).
    #[arg(long = "query.parallelism", env = "FLEETSCOPE_QUERY_PARALLELISM")]
    pub parallelism: Option<usize>,
    /// Memory one query may hold (`512MiB`, `4GiB`, ...; default: an eighth of the machine's
    /// memory). Counted before it is allocated: a query past it fails with a clear error (422).
    #[arg(long = "query.max-memory", env = "FLEETSCOPE_QUERY_MAX_MEMORY", value_parser = parse_size)]
    pub max_memory: Option<u64>,
    /// Memory all running queries may hold together (default: half of the machine's memory). A
    /// query that would pass it fails with a clear error (422) instead of growing.
    #[arg(long = "query.max-total-memory", env = "FLEETSCOPE_QUERY_MAX_TOTAL_MEMORY", value_parser = parse_size)]
    pub max_total_memory: Option<u64>,
    /// A label telling HA replicas apart (Prometheus pairs' `replica` external label): series
    /// equal but for it are merged into one, without it (repeatable or comma-separated).
    #[arg(
        long = "query.replica-label",
        env = "FLEETSCOPE_QUERY_REPLICA_LABEL",
        value_delimiter = ','
    )]
    pub replica_labels: Vec<String>,
    /// Read downsampled blocks at most a fifth of a range query's step coarse (5m blocks from a
    /// 25m step, 1h blocks from a 5h step), finer data filling their gaps; requests override it
    /// with `max_source_resolution` (as Thanos's flag of the same name).
    #[arg(
        long = "query.auto-downsampling",
        env = "FLEETSCOPE_QUERY_AUTO_DOWNSAMPLING"
    )]
    pub auto_downsampling: bool,
    /// The coarsest downsampled data a query reads: `raw`, `5m`, `1h` or `auto` (default: `raw`,
    /// or `auto` with `--query.auto-downsampling`).
    #[arg(
        long = "query.max-source-resolution",
        env = "FLEETSCOPE_QUERY_MAX_SOURCE_RESOLUTION"
    )]
    pub max_source_resolution: Option<fleetscope_query::SourceResolution>,
    /// Prometheus features to turn on, as Prometheus names them (repeatable or comma-separated):
    /// `promql-experimental-functions` (`limitk`, `limit_ratio`, `info`), `promql-binop-fill-modifiers`.
    #[arg(
        long = "enable-feature",
        env = "FLEETSCOPE_ENABLE_FEATURE",
        value_delimiter = ','
    )]
    pub features: Vec<String>,
}

/// A size in bytes: a number with an optional unit (`B`, `KB`, `MB`, `GB`, `KiB`, `MiB`, `GiB`).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let digits = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (number, unit) = s.split_at(digits);
    let number: f64 = number
        .parse()
        .map_err(|_| format!("{s:?} is not a size (e.g. 512MiB, 4GiB)"))?;
    let scale: u64 = match unit.trim() {
        "" | "B" => 1,
        "KB" | "kB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        other => {
            return Err(format!(
                "unknown size unit {other:?} (B, KB, MB, GB, KiB, MiB, GiB)"
            ));
        }
    };
    Ok((number * scale as f64) as u64)
}

/// The machine's memory in bytes (`MemTotal` of `/proc/meminfo`), if known.
fn machine_memory() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Where fresh data not yet in the bucket is read from: shippers' remote-read endpoints.
#[derive(Debug, Clone, clap::Args)]
pub struct RemoteArgs {
    /// Remote-read endpoint of a shipper (`http://shipper:19291/api/v1/read`), for data not in the
    /// bucket yet; repeat for each cluster. An endpoint that fails makes answers partial, with a
    /// warning, not errors.
    #[arg(
        long = "remote-read",
        env = "FLEETSCOPE_REMOTE_READ",
        value_delimiter = ','
    )]
    pub remote_read: Vec<String>,
    /// A shipper's address (`http://shipper:19291`): the same as `--remote-read` with
    /// `/api/v1/read` appended.
    #[arg(long = "shipper", env = "FLEETSCOPE_SHIPPERS", value_delimiter = ',')]
    pub shippers: Vec<String>,
    /// File holding the bearer token the `--remote-read` endpoints require (the shippers'
    /// `--auth-token-file`).
    #[arg(
        long = "remote-read.auth-token-file",
        env = "FLEETSCOPE_REMOTE_READ_AUTH_TOKEN_FILE"
    )]
    pub remote_read_token_file: Option<std::path::PathBuf>,
    /// Prometheus HTTP client configuration file for the `--remote-read` endpoints (`tls_config`
    /// with CA, client certificate and key for mutual TLS; `basic_auth`; `authorization`), the
    /// format of `promtool --http.config.file`.
    #[arg(
        long = "remote-read.http-config-file",
        env = "FLEETSCOPE_REMOTE_READ_HTTP_CONFIG_FILE"
    )]
    pub http_config_file: Option<std::path::PathBuf>,
}

/// The web configuration file of a server.
#[derive(Debug, Clone, Args)]
pub struct WebArgs {
    /// Prometheus web configuration file: `tls_server_config` (TLS, mutual TLS) and
    /// `basic_auth_users` (bcrypt hashes) for every endpoint; reloaded on SIGHUP.
    #[arg(long = "web.config.file", env = "FLEETSCOPE_WEB_CONFIG_FILE")]
    pub config_file: Option<std::path::PathBuf>,
}

impl RemoteArgs {
    /// One source per endpoint, each answering within `timeout`.
    pub fn sources(
        &self,
        timeout: Duration,
    ) -> anyhow::Result<Vec<Arc<dyn fleetscope_query::Source>>> {
        let token = self
            .remote_read_token_file
            .as_deref()
            .map(|path| read_token_file("--remote-read.auth-token-file", path))
            .transpose()?;
        let http = match &self.http_config_file {
            Some(path) => crate::web::client::ClientConfig::load(path)?,
            None => Default::default(),
        };
        let credentials = match (token, http.credentials) {
            (Some(_), Some(_)) => anyhow::bail!(
                "--remote-read.auth-token-file and credentials in --remote-read.http-config-file: use one"
            ),
            (Some(token), None) => Some(fleetscope_query::Credentials::Bearer(token)),
            (None, c) => c,
        };
        let shippers = self
            .shippers
            .iter()
            .map(|s| format!("{}/api/v1/read", s.trim_end_matches('/')));
        let endpoints: Vec<String> = self.remote_read.iter().cloned().chain(shippers).collect();
        let mut out: Vec<Arc<dyn fleetscope_query::Source>> = Vec::new();
        for url in &endpoints {
            let mut remote = fleetscope_query::RemoteRead::with_tls(url, timeout, &http.tls)?;
            if let Some(c) = &credentials {
                remote = remote.with_credentials(c.clone());
            }
            out.push(Arc::new(remote));
        }
        tracing::info!(?endpoints, "remote-read endpoints");
        Ok(out)
    }
}

/// Values of `--query.compat`.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum CompatArg {
    /// Current Prometheus (3.x) semantics.
    Current,
    /// Prometheus 2.x semantics.
    Prometheus2,
}

impl QueryArgs {
    /// `source`, its HA replicas merged when `--query.replica-label` is given.
    pub fn deduplicated(
        &self,
        source: Arc<dyn fleetscope_query::Source>,
    ) -> Arc<dyn fleetscope_query::Source> {
        if self.replica_labels.is_empty() {
            return source;
        }
        Arc::new(fleetscope_store::dedup::Dedup::new(
            source,
            self.replica_labels.clone(),
        ))
    }

    /// Whether `--enable-feature` names `feature`.
    fn enabled(&self, feature: &str) -> bool {
        self.features.iter().any(|f| f == feature)
    }

    /// The engine options these flags give.
    pub fn engine_options(&self) -> fleetscope_query::EngineOptions {
        for f in &self.features {
            if !fleetscope_query::FEATURES.contains(&f.as_str()) {
                // As Prometheus: an unknown name is reported, not fatal.
                tracing::warn!(feature = %f, known = ?fleetscope_query::FEATURES, "unknown option for --enable-feature");
            }
        }
        fleetscope_query::EngineOptions {
            experimental_functions: self.enabled("promql-experimental-functions"),
            fill_modifiers: self.enabled("promql-binop-fill-modifiers"),
            lookback_delta: self.lookback_delta,
            max_samples: self.max_samples,
            compat: match self.compat {
                CompatArg::Current => fleetscope_query::Compat::Current,
                CompatArg::Prometheus2 => fleetscope_query::Compat::Prometheus2,
            },
            parallelism: self
                .parallelism
                .filter(|&n| n > 0)
                .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())),
            max_memory: self
                .max_total_memory
                .or_else(|| machine_memory().map(|m| m / 2))
                .unwrap_or(4 << 30) as usize,
            max_query_memory: self
                .max_memory
                .or_else(|| machine_memory().map(|m| m / 8))
                .unwrap_or(1 << 30) as usize,
            max_source_resolution: self.max_source_resolution.unwrap_or(
                if self.auto_downsampling {
                    fleetscope_query::SourceResolution::Auto
                } else {
                    fleetscope_query::SourceResolution::Fixed(0)
                },
            ),
            ..Default::default()
        }
    }
}

/// Resolves on SIGTERM or SIGINT (Ctrl-C).
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
    tracing::info!("shutting down");
}

/// External labels of produced blocks.
#[derive(Debug, Args)]
pub struct ExternalLabelArgs {
    /// Cluster name: the external label `cluster=NAME`.
    #[arg(long, env = "FLEETSCOPE_CLUSTER")]
    pub cluster: Option<String>,
    /// An external label `K=V` of every block (repeatable; comma-separated in the environment).
    #[arg(long = "external-label", env = "FLEETSCOPE_EXTERNAL_LABELS", value_delimiter = ',', value_parser = parse_label)]
    pub external_labels: Vec<(String, String)>,
}

impl ExternalLabelArgs {
    /// The external labels; `--cluster` wins over an `--external-label cluster=...`.
    pub fn labels(&self) -> Labels {
        let cluster = self
            .cluster
            .iter()
            .map(|c| ("cluster".to_string(), c.clone()));
        Labels::from_pairs(self.external_labels.iter().cloned().chain(cluster))
    }
}

/// A bearer token from a file (`flag` names it in errors): trimmed, not empty.
pub fn read_token_file(flag: &str, path: &std::path::Path) -> anyhow::Result<String> {
    let token = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("read {flag} {}: {e}", path.display()))?;
    let token = token.trim().to_string();
    anyhow::ensure!(!token.is_empty(), "{flag} {} is empty", path.display());
    Ok(token)
}

/// RFC 3339, Unix seconds, `now`, or a negative duration relative to now (`-6h`).
pub fn parse_time(s: &str, now: i64) -> anyhow::Result<i64> {
    if s == "now" {
        return Ok(now);
    }
    if let Some(rel) = s.strip_prefix('-').filter(|r| {
        r.starts_with(|c: char| c.is_ascii_digit())
            && r.ends_with(|c: char| c.is_ascii_alphabetic())
    }) {
        let d = parse_duration(rel).map_err(anyhow::Error::msg)?;
        return Ok(now - d.as_millis() as i64);
    }
    if let Ok(secs) = s.parse::<f64>() {
        return Ok((secs * 1000.0).round() as i64);
    }
    chrono::DateTime::parse_from_rfc3339(s)
        .map(|t| t.timestamp_millis())
        .with_context(|| format!("{s:?} is not a time (RFC 3339, Unix seconds, now, or -6h)"))
}

/// Parses `K=V` with a valid Prometheus label name.
pub fn parse_label(s: &str) -> Result<(String, String), String> {
    let (k, v) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?} is not K=V"))?;
    let valid = k
        .chars()
        .enumerate()
        .all(|(i, c)| c == '_' || c.is_ascii_alphabetic() || (i > 0 && c.is_ascii_digit()));
    if k.is_empty() || !valid || k.starts_with("__") {
        return Err(format!(
            "{k:?} is not a valid label name ([a-zA-Z_][a-zA-Z0-9_]*, not starting with __)"
        ));
    }
    if v.is_empty() {
        return Err(format!("label {k:?} has an empty value"));
    }
    Ok((k.to_string(), v.to_string()))
}

/// Parses a duration like `2h`, `90m`, `15s`, `500ms` (Prometheus duration syntax, single unit).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let split = s
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| format!("{s:?} has no unit (ms, s, m, h, d)"))?;
    let (n, unit) = s.split_at(split);
    let n: u64 = n
        .parse()
        .map_err(|_| format!("{s:?} is not a duration like 2h or 90m"))?;
    let ms = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        "w" => 604_800_000,
        _ => return Err(format!("{s:?}: unknown unit {unit:?} (ms, s, m, h, d, w)")),
    };
    if n == 0 {
        return Err(format!("{s:?} must be positive"));
    }
    Ok(Duration::from_millis(n.saturating_mul(ms)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert!(parse_duration("2").unwrap_err().contains("no unit"));
        assert!(parse_duration("2y").unwrap_err().contains("unknown unit"));
        assert!(parse_duration("0s").is_err());
    }

    #[test]
    fn labels() {
        assert_eq!(
            parse_label("region=eu-1"),
            Ok(("region".into(), "eu-1".into()))
        );
        assert!(parse_label("region").is_err());
        assert!(parse_label("1x=a").is_err());
        assert!(parse_label("__name__=a").is_err());
        assert!(parse_label("a=").is_err());
    }
}
