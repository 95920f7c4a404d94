//! What every HTTP request sonde sends shares (remote write, Alertmanagers,
//! notification endpoints): an agent that treats a status as an answer,
//! bounds each request in time and names sonde, and one way to tell why an
//! answer refused.

use std::io::Read;
use std::time::Duration;

/// An agent whose requests take at most `timeout`; `configure` adds what a
/// caller needs more (TLS settings).
pub fn agent(
    timeout: Duration,
    configure: impl FnOnce(
        ureq::config::ConfigBuilder<ureq::typestate::AgentScope>,
    ) -> ureq::config::ConfigBuilder<ureq::typestate::AgentScope>,
) -> ureq::Agent {
    configure(
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(timeout))
            .user_agent(concat!("sonde/", env!("CARGO_PKG_VERSION"))),
    )
    .build()
    .into()
}

/// `HTTP <status>: <the first KiB of the body>`, for logs and errors.
pub fn refusal(response: &mut ureq::http::Response<ureq::Body>) -> String {
    let mut text = String::new();
    let _ = response
        .body_mut()
        .as_reader()
        .take(1024)
        .read_to_string(&mut text);
    format!("HTTP {}: {}", response.status().as_u16(), text.trim())
}

/// Whether a refusal may go better later: 429 and 5xx.
pub fn worth_retrying(status: u16) -> bool {
    status == 429 || status >= 500
}
