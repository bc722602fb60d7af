//! `fleetscope shipper`: receives remote-write next to a cluster's Prometheus, keeps a WAL, cuts
//! blocks and uploads them.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use fleetscope_ingest::convert::Limits;
use fleetscope_ingest::metrics::Metrics;
use fleetscope_ingest::receiver::{ReceiverOptions, SHUTDOWN_FLUSH_TIMEOUT, router};
use fleetscope_ingest::{Shipper, ShipperConfig};

use crate::args::{ExternalLabelArgs, ObjstoreArgs, WebArgs, parse_duration, read_token_file};

/// Flags of `fleetscope shipper`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    objstore: ObjstoreArgs,
    #[command(flatten)]
    web: WebArgs,
    #[command(flatten)]
    labels: ExternalLabelArgs,
    /// Address to receive remote-write on.
    #[arg(long, env = "FLEETSCOPE_LISTEN", default_value = "0.0.0.0:19291")]
    listen: SocketAddr,
    /// Directory for the WAL and blocks waiting for upload.
    #[arg(
        long = "data-dir",
        env = "FLEETSCOPE_DATA_DIR",
        default_value = "./data"
    )]
    data_dir: PathBuf,
    /// Length of the aligned time window of each block.
    #[arg(long = "block-duration", env = "FLEETSCOPE_BLOCK_DURATION", default_value = "2h", value_parser = parse_duration)]
    block_duration: Duration,
    /// File holding a bearer token required on writes and flushes.
    #[arg(long = "auth-token-file", env = "FLEETSCOPE_AUTH_TOKEN_FILE")]
    auth_token_file: Option<PathBuf>,
    /// Largest compressed remote-write body accepted, in bytes.
    #[arg(long = "max-body-bytes", env = "FLEETSCOPE_MAX_BODY_BYTES", default_value_t = 32 << 20)]
    max_body_bytes: usize,
    /// Writes handled at once; one more waits up to a second, then gets 503 with `Retry-After`
    /// (Prometheus retries it). Bounds the memory of bodies being decoded.
    #[arg(long = "max-inflight-writes", env = "FLEETSCOPE_MAX_INFLIGHT_WRITES", default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..))]
    max_inflight_writes: u32,
    /// Samples further ahead of this machine's clock than this are refused (400 naming them; the
    /// rest of the request is written), so a wrong timestamp cannot open windows years ahead.
    #[arg(long = "ingest.max-future", env = "FLEETSCOPE_INGEST_MAX_FUTURE", default_value = "10m", value_parser = parse_duration)]
    max_future: Duration,
    /// Most labels of one series (`__name__` included); a series past it is refused, named.
    #[arg(long = "ingest.max-label-names-per-series", env = "FLEETSCOPE_INGEST_MAX_LABEL_NAMES", default_value_t = Limits::default().max_label_names)]
    max_label_names: usize,
    /// Longest label name, bytes; a series past it is refused, named.
    #[arg(long = "ingest.max-label-name-length", env = "FLEETSCOPE_INGEST_MAX_LABEL_NAME_LENGTH", default_value_t = Limits::default().max_label_name_bytes)]
    max_label_name_bytes: usize,
    /// Longest label value, bytes; a series past it is refused, named.
    #[arg(long = "ingest.max-label-value-length", env = "FLEETSCOPE_INGEST_MAX_LABEL_VALUE_LENGTH", default_value_t = Limits::default().max_label_value_bytes)]
    max_label_value_bytes: usize,
    /// Most series in one remote-write request; a request past it is refused whole.
    #[arg(long = "ingest.max-series-per-request", env = "FLEETSCOPE_INGEST_MAX_SERIES_PER_REQUEST", default_value_t = Limits::default().max_series)]
    max_series: usize,
    /// How long uploaded blocks stay readable through remote-read (keep it above the queriers'
    /// `--refresh`, so data is never in neither place).
    #[arg(long = "local-retention", env = "FLEETSCOPE_LOCAL_RETENTION", default_value = "10m", value_parser = parse_duration)]
    local_retention: Duration,
}

pub(super) async fn run(args: Args) -> anyhow::Result<()> {
    let remote = args.objstore.open()?;
    let auth_token = args
        .auth_token_file
        .as_deref()
        .map(|path| read_token_file("--auth-token-file", path))
        .transpose()?;
    if let (Some(_), Some(path)) = (&auth_token, &args.web.config_file)
        && !crate::web::config::WebConfig::load(path)?.users.is_empty()
    {
        anyhow::bail!(
            "--auth-token-file and basic_auth_users in --web.config.file both need the Authorization header: use one"
        );
    }
    let config = ShipperConfig {
        block_duration: args.block_duration,
        external_labels: args.labels.labels(),
        local_retention: args.local_retention,
        ..ShipperConfig::new(&args.data_dir)
    };
    let shipper = Shipper::start(config, remote, Arc::new(Metrics::new()))
        .await
        .with_context(|| format!("start shipper in {}", args.data_dir.display()))?;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let cutter = {
        let shipper = shipper.clone();
        tokio::spawn(async move {
            if let Err(e) = shipper.upload_recovered().await {
                tracing::error!(error = %e, "uploading blocks left by the previous run failed");
            }
            shipper.run_cutter(stop_rx).await;
        })
    };
    let options = ReceiverOptions {
        max_body_bytes: args.max_body_bytes,
        max_inflight_writes: args.max_inflight_writes as usize,
        auth_token,
        max_future: args.max_future,
        limits: Limits {
            max_label_names: args.max_label_names,
            max_label_name_bytes: args.max_label_name_bytes,
            max_label_value_bytes: args.max_label_value_bytes,
            max_series: args.max_series,
        },
        ..Default::default()
    };
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("listen on {}", args.listen))?;
    tracing::info!(listen = %listener.local_addr()?, external_labels = %args.labels.labels(), "shipper receiving remote-write on /api/v1/write, serving remote-read on /api/v1/read");
    crate::web::serve(
        listener,
        router(shipper.clone(), options),
        args.web.config_file.as_deref(),
    )
    .await?;

    // No more writes: cut everything and upload it before exiting.
    let _ = stop_tx.send(true);
    let _ = cutter.await;
    let blocks = shipper
        .flush(Some(SHUTDOWN_FLUSH_TIMEOUT))
        .await
        .context("final flush")?;
    tracing::info!(blocks, "shipper stopped");
    Ok(())
}
