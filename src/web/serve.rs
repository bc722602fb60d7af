//! Serving a router with the web configuration: TLS per connection, basic authentication per
//! request, the configuration reloaded on SIGHUP (a broken file keeps the previous one).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, mpsc};

use super::config::WebConfig;

/// The configuration in force, swapped whole on reload.
type Shared = Arc<RwLock<Arc<WebConfig>>>;

/// Longest a client may take over its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves `app` on `tcp` until SIGTERM or SIGINT, with TLS and basic authentication as
/// `config_file` sets them (plain and open without one).
pub async fn serve(
    tcp: TcpListener,
    app: Router,
    config_file: Option<&Path>,
) -> anyhow::Result<()> {
    let config = match config_file {
        Some(path) => WebConfig::load(path)?,
        None => WebConfig::default(),
    };
    tracing::info!(
        tls = config.tls.is_some(),
        basic_auth_users = config.users.len(),
        "web configuration"
    );
    let shared: Shared = Arc::new(RwLock::new(Arc::new(config)));
    let reloader = tokio::spawn(reload_on_hangup(
        config_file.map(Path::to_path_buf),
        Arc::clone(&shared),
    ));
    let auth = Arc::new(Auth::new(Arc::clone(&shared)));
    // Handlers become routes once here, and each connection gets a clone of the same router (a
    // reference count): `axum::serve(listener, router)` redoes that conversion per connection.
    let app = app
        .layer(axum::middleware::from_fn_with_state(auth, basic_auth))
        .with_state(())
        .into_make_service();
    let listener = WebListener::spawn(tcp, shared)?;
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(crate::args::shutdown_signal())
        .await;
    reloader.abort();
    Ok(served?)
}

/// Reloads the file on every SIGHUP (with no file, SIGHUP does nothing rather than end the process).
async fn reload_on_hangup(path: Option<PathBuf>, shared: Shared) {
    let Ok(mut hangup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
    else {
        return;
    };
    while hangup.recv().await.is_some() {
        let Some(path) = &path else {
            tracing::info!("SIGHUP: no --web.config.file to reload");
            continue;
        };
        match WebConfig::load(path) {
            Ok(config) => {
                tracing::info!(
                    tls = config.tls.is_some(),
                    basic_auth_users = config.users.len(),
                    "web configuration reloaded"
                );
                if let Ok(mut current) = shared.write() {
                    *current = Arc::new(config);
                }
            }
            Err(e) => tracing::error!(
                error = format!("{e:#}"),
                "web configuration reload failed; keeping the previous one"
            ),
        }
    }
}

fn current(shared: &Shared) -> Arc<WebConfig> {
    match shared.read() {
        Ok(c) => Arc::clone(&c),
        Err(poisoned) => Arc::clone(&poisoned.into_inner()),
    }
}

/// A connection, plain or TLS.
trait Conn: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Conn for T {}

/// Accepted connections, handshakes done: TCP is accepted on a task of its own, and each TLS
/// handshake runs on its own task, so a slow client never holds up the others.
struct WebListener {
    ready: mpsc::Receiver<(Box<dyn Conn>, SocketAddr)>,
    local: SocketAddr,
}

impl WebListener {
    fn spawn(tcp: TcpListener, shared: Shared) -> std::io::Result<Self> {
        let local = tcp.local_addr()?;
        let (tx, ready) = mpsc::channel::<(Box<dyn Conn>, SocketAddr)>(64);
        tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    r = tcp.accept() => r,
                    _ = tx.closed() => return,
                };
                let (stream, addr) = match accepted {
                    Ok(x) => x,
                    Err(e) => {
                        // Out of descriptors and the like: wait instead of spinning.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let Some(tls) = current(&shared).tls.clone() else {
                    if tx.send((Box::new(stream), addr)).await.is_err() {
                        return;
                    }
                    continue;
                };
                let tx = tx.clone();
                tokio::spawn(async move {
                    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(conn)) => {
                            let _ = tx.send((Box::new(conn), addr)).await;
                        }
                        Ok(Err(e)) => tracing::warn!(%addr, error = %e, "TLS handshake refused"),
                        Err(_) => tracing::warn!(%addr, "TLS handshake timed out"),
                    }
                });
            }
        });
        Ok(Self { ready, local })
    }
}

impl axum::serve::Listener for WebListener {
    type Io = Box<dyn Conn>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(conn) => conn,
            // The accepting task ended: nothing more will come.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}

/// Checks basic credentials against the configured users: bcrypt on the blocking pool (a few
/// at a time, so wrong passwords cannot take every thread), successes remembered by a digest.
struct Auth {
    shared: Shared,
    checks: Semaphore,
    /// SHA-256 of user, hash and password of credentials that passed.
    passed: Mutex<HashMap<[u8; 32], ()>>,
}

/// Most remembered successes; the memory is cleared when full.
const PASSED_MAX: usize = 1024;

impl Auth {
    fn new(shared: Shared) -> Self {
        Self {
            shared,
            checks: Semaphore::new(std::thread::available_parallelism().map_or(2, |n| n.get())),
            passed: Mutex::default(),
        }
    }

    async fn check(&self, config: &WebConfig, user: String, password: String) -> bool {
        let hash = config.users.get(&user).cloned();
        let digest = {
            let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
            for part in [
                user.as_bytes(),
                hash.as_deref().unwrap_or("").as_bytes(),
                password.as_bytes(),
            ] {
                ctx.update(&(part.len() as u64).to_le_bytes());
                ctx.update(part);
            }
            let mut d = [0u8; 32];
            d.copy_from_slice(ctx.finish().as_ref());
            d
        };
        if hash.is_some() && self.passed.lock().is_ok_and(|p| p.contains_key(&digest)) {
            return true;
        }
        let Ok(_permit) = self.checks.acquire().await else {
            return false;
        };
        // An unknown user costs the same as a known one: no timing tells which names exist.
        let known = hash.is_some();
        let hash = hash.unwrap_or_else(|| dummy_hash().to_string());
        let ok = tokio::task::spawn_blocking(move || bcrypt::verify(password, &hash))
            .await
            .is_ok_and(|r| r.unwrap_or(false))
            && known;
        if ok && let Ok(mut passed) = self.passed.lock() {
            if passed.len() >= PASSED_MAX {
                passed.clear();
            }
            passed.insert(digest, ());
        }
        ok
    }
}

/// A bcrypt hash no password matches, for unknown users.
fn dummy_hash() -> &'static str {
    static HASH: OnceLock<String> = OnceLock::new();
    HASH.get_or_init(|| bcrypt::hash("fleetscope: no such user", 10).unwrap_or_default())
}

/// `Authorization: Basic` user and password.
pub(super) fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}

async fn basic_auth(State(auth): State<Arc<Auth>>, req: Request, next: Next) -> Response {
    let config = current(&auth.shared);
    if config.users.is_empty() {
        return next.run(req).await;
    }
    if let Some((user, password)) = basic_credentials(req.headers())
        && auth.check(&config, user, password).await
    {
        return next.run(req).await;
    }
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, "Basic realm=\"fleetscope\"")],
        "Unauthorized\n",
    )
        .into_response()
}
