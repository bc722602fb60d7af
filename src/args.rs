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
    /// The engine options these flags give.
    pub fn engine_options(&self) -> fleetscope_query::EngineOptions {
        fleetscope_query::EngineOptions {
            lookback_delta: self.lookback_delta,
            max_samples: self.max_samples,
            compat: match self.compat {
                CompatArg::Current => fleetscope_query::Compat::Current,
                CompatArg::Prometheus2 => fleetscope_query::Compat::Prometheus2,
            },
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
