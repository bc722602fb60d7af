//! `fleetscope querier`: the Prometheus HTTP API over every block of the object store, plus the
//! fresh data of shippers read over remote-read.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;
use fleetscope_query::api::{ApiOptions, ApiState, router};
use fleetscope_query::{Catalog, Engine, Fanout, Source};

use crate::args::{ObjstoreArgs, QueryArgs, RemoteArgs, WebArgs, parse_duration};

/// Flags of `fleetscope querier`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    objstore: ObjstoreArgs,
    #[command(flatten)]
    web: WebArgs,
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
    #[command(flatten)]
    remote: RemoteArgs,
}

pub(super) async fn run(args: Args) -> anyhow::Result<()> {
    let store = args.objstore.open()?;
    let catalog = Arc::new(Catalog::new(store));
    let blocks = catalog.refresh().await.context("list blocks")?;
    tracing::info!(blocks, objstore = %args.objstore.objstore, "catalog loaded");
    // Block headers load in the background (new blocks' after each refresh), so that no query
    // waits for them; `/-/ready` answers 503 until the first load is done.
    let ready = Arc::new(AtomicBool::new(false));
    let refresher = {
        let catalog = Arc::clone(&catalog);
        let every = args.refresh;
        let ready = Arc::clone(&ready);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.tick().await;
            match catalog.load_headers().await {
                0 => tracing::info!("block headers loaded"),
                failed => tracing::warn!(failed, "blocks whose headers could not be read"),
            }
            ready.store(true, Ordering::Release);
            loop {
                tick.tick().await;
                match catalog.refresh().await {
                    Ok(n) => {
                        tracing::debug!(blocks = n, "catalog refreshed");
                        catalog.load_headers().await;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "catalog refresh failed; keeping the previous listing")
                    }
                }
            }
        })
    };
    let mut sources: Vec<Arc<dyn Source>> = vec![Arc::clone(&catalog) as _];
    sources.extend(args.remote.sources(args.timeout)?);
    let state = ApiState::with_source(
        Engine::new(fleetscope_query::EngineOptions {
            timeout: Some(args.timeout),
            ..args.query.engine_options()
        }),
        catalog,
        Arc::new(Fanout(sources)),
        ApiOptions {
            timeout: args.timeout,
            max_concurrency: args.max_concurrency,
        },
    )
    // A request may turn the merge off (`dedup=false`) or name other labels (`replicaLabels[]`).
    .with_replica_labels(args.query.replica_labels.clone())
    .with_readiness(ready);
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("listen on {}", args.listen))?;
    tracing::info!(listen = %listener.local_addr()?, "querier serving the Prometheus HTTP API");
    crate::web::serve(
        listener,
        router(Arc::new(state)),
        args.web.config_file.as_deref(),
    )
    .await?;
    refresher.abort();
    Ok(())
}
