//! `fleetscope querier`: the Prometheus HTTP API over every block of the object store, plus the
//! fresh data of shippers read over remote-read.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use fleetscope_query::api::{ApiOptions, ApiState, router};
use fleetscope_query::{Catalog, Engine, Fanout, RemoteRead, Source};

use crate::args::{ObjstoreArgs, QueryArgs, parse_duration, read_token_file};

/// Flags of `fleetscope querier`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    objstore: ObjstoreArgs,
    #[command(flatten)]
    query: QueryArgs,
    /// Address to serve the HTTP API on.
    #[arg(long, env = "FLEETSCOPE_LISTEN", default_value = "0.0.0.0:9090")]
    listen: SocketAddr,
    /// How often to list the object store for new blocks.
    #[arg(long, env = "FLEETSCOPE_REFRESH", default_value = "30s", value_parser = parse_duration)]
    refresh: Duration,
    /// Longest a query may run.
    #[arg(long = "query.timeout", env = "FLEETSCOPE_QUERY_TIMEOUT", default_value = "2m", value_parser = parse_duration)]
    timeout: Duration,
    /// Queries evaluated at once; more wait.
    #[arg(
        long = "query.max-concurrency",
        env = "FLEETSCOPE_QUERY_MAX_CONCURRENCY",
        default_value_t = 20
    )]
    max_concurrency: usize,
    /// Remote-read endpoint of a shipper (`http://shipper:19291/api/v1/read`), for data not in the
    /// bucket yet; repeat for each cluster. An endpoint that fails makes answers partial, with a
    /// warning, not errors.
    #[arg(
        long = "remote-read",
        env = "FLEETSCOPE_REMOTE_READ",
        value_delimiter = ','
    )]
    remote_read: Vec<String>,
    /// A shipper's address (`http://shipper:19291`): the same as `--remote-read` with
    /// `/api/v1/read` appended.
    #[arg(long = "shipper", env = "FLEETSCOPE_SHIPPERS", value_delimiter = ',')]
    shippers: Vec<String>,
    /// File holding the bearer token the `--remote-read` endpoints require (the shippers'
    /// `--auth-token-file`).
    #[arg(
        long = "remote-read.auth-token-file",
        env = "FLEETSCOPE_REMOTE_READ_AUTH_TOKEN_FILE"
    )]
    remote_read_token_file: Option<std::path::PathBuf>,
}

pub(super) async fn run(args: Args) -> anyhow::Result<()> {
    let store = args.objstore.open()?;
    let catalog = Arc::new(Catalog::new(store));
    let blocks = catalog.refresh().await.context("list blocks")?;
    tracing::info!(blocks, objstore = %args.objstore.objstore, "catalog loaded");
    let refresher = {
        let catalog = Arc::clone(&catalog);
        let every = args.refresh;
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.tick().await;
            loop {
                tick.tick().await;
                match catalog.refresh().await {
                    Ok(n) => tracing::debug!(blocks = n, "catalog refreshed"),
                    Err(e) => {
                        tracing::warn!(error = %e, "catalog refresh failed; keeping the previous listing")
                    }
                }
            }
        })
    };
    let mut sources: Vec<Arc<dyn Source>> = vec![Arc::clone(&catalog) as _];
    let token = args
        .remote_read_token_file
        .as_deref()
        .map(|path| read_token_file("--remote-read.auth-token-file", path))
        .transpose()?;
    let shippers = args
        .shippers
        .iter()
        .map(|s| format!("{}/api/v1/read", s.trim_end_matches('/')));
    let endpoints: Vec<String> = args.remote_read.iter().cloned().chain(shippers).collect();
    for url in &endpoints {
        let mut remote = RemoteRead::new(url, args.timeout)?;
        if let Some(token) = &token {
            remote = remote.with_bearer_token(token.clone());
        }
        sources.push(Arc::new(remote));
    }
    tracing::info!(?endpoints, "remote-read endpoints");
    let state = ApiState::with_source(
        Engine::new(args.query.engine_options()),
        catalog,
        Arc::new(Fanout(sources)),
        ApiOptions {
            timeout: args.timeout,
            max_concurrency: args.max_concurrency,
        },
    );
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("listen on {}", args.listen))?;
    tracing::info!(listen = %listener.local_addr()?, "querier serving the Prometheus HTTP API");
    axum::serve(listener, router(Arc::new(state)))
        .with_graceful_shutdown(crate::args::shutdown_signal())
        .await?;
    refresher.abort();
    Ok(())
}
