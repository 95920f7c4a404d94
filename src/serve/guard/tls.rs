//! HTTPS on sonde's port: the certificate and key of `[server]`, reloaded
//! when their files change, and a listener that hands axum finished TLS
//! connections.
//!
//! The files are checked at most once a second, on a handshake: a handshake
//! after a renewal gets the new certificate. A change that does not load (a
//! key written before its certificate, a bad file) keeps the previous pair
//! and is logged once per change.
//!
//! Handshakes run in tasks of their own, at most [`HANDSHAKES`] at once and
//! each within [`HANDSHAKE_TIMEOUT`], so a client that stalls its handshake
//! holds up no one else.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{anyhow, Context};
use rustls::crypto::ring::default_provider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Semaphore};
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

use crate::config::ServerConfig;

/// How often the files are looked at for a change.
const RECHECK: Duration = Duration::from_secs(1);

/// Most handshakes in progress at once.
const HANDSHAKES: usize = 256;

/// Time a client has to finish its handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The TLS configuration of `[server]`; None without TLS. Fails, naming the
/// file and the reason, when the certificate or key does not load.
pub fn server_config(config: &ServerConfig) -> anyhow::Result<Option<Arc<rustls::ServerConfig>>> {
    let (Some(cert), Some(key)) = (&config.tls_cert_file, &config.tls_key_file) else {
        return Ok(None);
    };
    let resolver = Reloading::load(cert, key)?;
    let mut tls = rustls::ServerConfig::builder_with_provider(Arc::new(default_provider()))
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(resolver));
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Some(Arc::new(tls)))
}

/// The certificate and key files, and the pair last loaded from them.
#[derive(Debug)]
struct Reloading {
    cert: PathBuf,
    key: PathBuf,
    current: Mutex<Current>,
}

#[derive(Debug)]
struct Current {
    pair: Arc<CertifiedKey>,
    stamp: Stamp,
    checked: Instant,
}

/// What tells a changed file: modification time and length of each.
type Stamp = [(Option<SystemTime>, u64); 2];

impl Reloading {
    fn load(cert: &Path, key: &Path) -> anyhow::Result<Reloading> {
        let stamp = stamp(cert, key);
        let pair = load_pair(cert, key)?;
        Ok(Reloading {
            cert: cert.to_owned(),
            key: key.to_owned(),
            current: Mutex::new(Current {
                pair: Arc::new(pair),
                stamp,
                checked: Instant::now(),
            }),
        })
    }
}

impl ResolvesServerCert for Reloading {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let mut current = self
            .current
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if current.checked.elapsed() >= RECHECK {
            current.checked = Instant::now();
            let stamp = stamp(&self.cert, &self.key);
            if stamp != current.stamp {
                current.stamp = stamp;
                match load_pair(&self.cert, &self.key) {
                    Ok(pair) => {
                        current.pair = Arc::new(pair);
                        tracing::info!("TLS: reloaded {}", self.cert.display());
                    }
                    Err(err) => {
                        tracing::warn!("TLS: keeping the previous certificate: {err:#}");
                    }
                }
            }
        }
        Some(current.pair.clone())
    }
}

fn stamp(cert: &Path, key: &Path) -> Stamp {
    [cert, key].map(|path| match std::fs::metadata(path) {
        Ok(meta) => (meta.modified().ok(), meta.len()),
        Err(_) => (None, 0),
    })
}

/// Reads a PEM certificate chain and its private key, and checks that they
/// belong together.
fn load_pair(cert: &Path, key: &Path) -> anyhow::Result<CertifiedKey> {
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|err| {
            anyhow!(
                "[server] tls_cert_file {}: {err} (expected PEM certificates)",
                cert.display()
            )
        })?;
    if chain.is_empty() {
        anyhow::bail!(
            "[server] tls_cert_file {}: no CERTIFICATE block in it (expected PEM certificates)",
            cert.display()
        );
    }
    let private = PrivateKeyDer::from_pem_file(key).map_err(|err| {
        anyhow!(
            "[server] tls_key_file {}: {err} (expected a PEM private key)",
            key.display()
        )
    })?;
    let signing = default_provider()
        .key_provider
        .load_private_key(private)
        .map_err(|err| anyhow!("[server] tls_key_file {}: {err}", key.display()))?;
    let pair = CertifiedKey::new(chain, signing);
    pair.keys_match().map_err(|err| {
        anyhow!(
            "[server] tls_key_file {} is not the key of tls_cert_file {}: {err}",
            key.display(),
            cert.display()
        )
    })?;
    Ok(pair)
}

/// Accepts TCP connections and hands on those whose handshake succeeded.
pub struct Listener {
    local: SocketAddr,
    ready: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
}

impl Listener {
    /// Starts accepting on `tcp` (in a task of the current runtime).
    pub fn new(tcp: TcpListener, config: Arc<rustls::ServerConfig>) -> std::io::Result<Listener> {
        let local = tcp.local_addr()?;
        let (send, ready) = mpsc::channel(HANDSHAKES);
        tokio::spawn(accept(tcp, TlsAcceptor::from(config), send));
        Ok(Listener { local, ready })
    }
}

/// Accepts until the listener is dropped.
async fn accept(
    tcp: TcpListener,
    acceptor: TlsAcceptor,
    ready: mpsc::Sender<(TlsStream<TcpStream>, SocketAddr)>,
) {
    let slots = Arc::new(Semaphore::new(HANDSHAKES));
    while !ready.is_closed() {
        let (stream, peer) = match tcp.accept().await {
            Ok(accepted) => accepted,
            Err(err) => {
                // Out of descriptors, most likely: wait for some to close.
                tracing::warn!("accepting a connection: {err}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let acceptor = acceptor.clone();
        let ready = ready.clone();
        tokio::spawn(async move {
            let _slot = slot;
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                Ok(Ok(tls)) => {
                    let _ = ready.send((tls, peer)).await;
                }
                Ok(Err(err)) => tracing::debug!("TLS handshake with {peer} failed: {err}"),
                Err(_) => tracing::debug!("TLS handshake with {peer} timed out"),
            }
        });
    }
}

impl axum::serve::Listener for Listener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(connection) => connection,
            // The accepting task ended: no connection will come.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}
