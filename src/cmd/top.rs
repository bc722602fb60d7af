//! `fleetscope top`: a live full-screen view of the fleet, refreshed every `--refresh`, from a
//! querier's URL or straight from the object store. When its output is not a terminal it prints one
//! plain table and exits.

use std::io::IsTerminal;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use fleetscope_query::{Catalog, Engine, Fanout, Source};
use ratatui::crossterm::event::{self, Event, KeyEventKind};
use tokio::sync::watch;

use crate::args::{QueryArgs, RemoteArgs, parse_duration};
use crate::top::{Action, Backend, Snapshot, View, plain_table};

/// Flags of `fleetscope top`.
#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("from").required(true).args(["querier", "objstore"])))]
pub struct Args {
    /// A querier's base URL (`http://querier:9090`; `https://user:password@querier:9090` for basic
    /// authentication).
    #[arg(long)]
    querier: Option<String>,
    /// Or an object store URL, read through the engine here (with `--shipper` for fresh data).
    #[arg(long, env = "FLEETSCOPE_OBJSTORE")]
    objstore: Option<String>,
    #[command(flatten)]
    remote: RemoteArgs,
    #[command(flatten)]
    query: QueryArgs,
    /// How often to refresh.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    refresh: Duration,
}

pub(super) async fn run(args: Args) -> anyhow::Result<()> {
    let (backend, catalog, name) = match (&args.querier, &args.objstore) {
        (Some(url), _) => {
            let client = reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()?;
            let backend = Backend::Querier {
                url: url.clone(),
                client,
            };
            (backend, None, redact(url))
        }
        (None, Some(url)) => {
            let store = fleetscope_store::objstore::open(url)
                .with_context(|| format!("open --objstore {url}"))?;
            let catalog = Arc::new(Catalog::new(store));
            let mut sources: Vec<Arc<dyn Source>> = vec![Arc::<Catalog>::clone(&catalog)];
            sources.extend(args.remote.sources(Duration::from_secs(30))?);
            let backend = Backend::Local {
                source: args.query.deduplicated(Arc::new(Fanout(sources))),
                engine: Engine::new(args.query.engine_options()),
            };
            (backend, Some(catalog), url.clone())
        }
        (None, None) => anyhow::bail!("give --querier or --objstore"),
    };
    if !std::io::stdout().is_terminal() {
        println!(
            "{}",
            plain_table(&fetch(&backend, catalog.as_deref()).await?)
        );
        return Ok(());
    }
    let (tx, rx) = watch::channel(None);
    let refresh = args.refresh;
    let fetcher = tokio::spawn(async move {
        loop {
            let snapshot = fetch(&backend, catalog.as_deref())
                .await
                .map_err(|e| format!("{e:#}"));
            if tx.send(Some(snapshot)).is_err() {
                break;
            }
            tokio::time::sleep(refresh).await;
        }
    });
    let ui = tokio::task::spawn_blocking(move || ratatui::run(|t| live(t, rx, name))).await;
    fetcher.abort();
    ui.context("the terminal view stopped")?
}

/// The fleet now, after listing new blocks.
async fn fetch(backend: &Backend, catalog: Option<&Catalog>) -> anyhow::Result<Snapshot> {
    if let Some(c) = catalog {
        c.refresh().await.context("list blocks")?;
    }
    Snapshot::fetch(backend, chrono::Utc::now().timestamp_millis()).await
}

/// Draws and handles keys until one asks to quit; takes each snapshot as it arrives.
fn live(
    terminal: &mut ratatui::DefaultTerminal,
    mut rx: watch::Receiver<Option<Result<Snapshot, String>>>,
    name: String,
) -> anyhow::Result<()> {
    let mut view = View::new(name);
    loop {
        if rx.has_changed().unwrap_or(false) {
            match rx.borrow_and_update().clone() {
                Some(Ok(s)) => (view.snapshot, view.error) = (s, None),
                Some(Err(e)) => view.error = Some(e),
                None => {}
            }
        }
        terminal.draw(|f| view.draw(f))?;
        if event::poll(Duration::from_millis(200))?
            && let Event::Key(key) = event::read()?
            && key.kind == KeyEventKind::Press
            && view.key(key) == Action::Quit
        {
            return Ok(());
        }
    }
}

/// The URL without a password, for the title.
fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => url.to_string(),
    }
}
