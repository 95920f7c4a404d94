//! What stands between the network and sonde's router: TLS ([`tls`]) and
//! HTTP basic auth ([`auth`]), both set in `[server]` in the spirit of
//! Prometheus's web config file.
//!
//! - With `tls_cert_file` and `tls_key_file`, the port speaks HTTPS only;
//!   the files are read at start (a bad one refuses the start, naming it and
//!   why) and again when they change, so a renewed certificate needs no
//!   restart.
//! - With `[server.basic_auth_users]`, every endpoint but `/-/healthy` (for
//!   load balancers and liveness probes) answers 401 without a user and
//!   password matching its bcrypt hash.
//! - The default listen address stays loopback; a non-loopback one without
//!   users is served, with a warning.

pub mod auth;
pub mod tls;

use std::future::Future;
use std::sync::Arc;

use anyhow::Context;
use axum::Router;

use crate::config::ServerConfig;

/// Serves `router` on `[server] listen`, behind basic auth as `config`
/// sets it and behind `tls` ([`tls::server_config`], loaded before sonde
/// touches the machine) when there is one, until `shutdown` completes.
pub async fn serve(
    config: &ServerConfig,
    tls: Option<Arc<rustls::ServerConfig>>,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let router = auth::protect(router, &config.basic_auth_users);
    if let Some(warning) = open_port_warning(config) {
        tracing::warn!("{warning}");
    }
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| {
            format!(
                "cannot listen on {}: is another sonde running? Change [server] listen",
                config.listen
            )
        })?;
    tracing::info!("listening on {}", config.url());
    match tls {
        None => axum::serve(listener, router)
            .with_graceful_shutdown(shutdown)
            .await
            .context("HTTP server failed"),
        Some(tls) => axum::serve(tls::Listener::new(listener, tls)?, router)
            .with_graceful_shutdown(shutdown)
            .await
            .context("HTTPS server failed"),
    }
}

/// The warning for a port anyone on the network may use: not loopback, and
/// no users.
fn open_port_warning(config: &ServerConfig) -> Option<String> {
    (config.basic_auth_users.is_empty() && !config.listen.ip().is_loopback()).then(|| {
        format!(
            "[server] listen {} is not a loopback address and [server.basic_auth_users] is empty: \
             anyone who reaches the port reads every metric and can silence alerts",
            config.listen
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_open_port_without_users_is_warned_about() {
        let mut config = ServerConfig::default();
        assert_eq!(open_port_warning(&config), None);
        config.listen = "0.0.0.0:9977".parse().unwrap();
        assert!(open_port_warning(&config).unwrap().contains("0.0.0.0:9977"));
        config
            .basic_auth_users
            .insert("ops".into(), "$2y$10$...".into());
        assert_eq!(open_port_warning(&config), None);
    }
}
