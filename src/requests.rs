//! `sonde requests`: the request log of a running sonde
//! (`GET /api/v1/requests`), printed as a table. It asks the sonde the
//! config's `[server] listen` names (or `--url`), and says what to do when
//! nothing answers there.

use std::io::Write;
use std::time::Duration;

use anyhow::{anyhow, bail};
use serde::Deserialize;

use crate::collect::http::log::status_text;

/// How long sonde may take to answer.
const TIMEOUT: Duration = Duration::from_secs(10);

/// What to ask for: the API's parameters (`service`, `route`, `status`,
/// `min_duration`, `order`, `limit`) as name, value pairs.
pub struct Ask {
    pub url: String,
    pub params: Vec<(&'static str, String)>,
}

#[derive(Deserialize)]
struct Answer {
    status: String,
    #[serde(default)]
    data: Vec<Entry>,
    #[serde(default)]
    error: String,
}

/// An entry as the API writes it ([`crate::collect::http::log::Entry`]).
#[derive(Clone, Deserialize)]
struct Entry {
    time_ms: i64,
    service: String,
    pid: u32,
    method: String,
    path: String,
    route: String,
    status: u16,
    #[serde(default)]
    grpc_status: Option<u16>,
    duration_seconds: f64,
    request_body_bytes: u64,
    response_body_bytes: u64,
}

/// Asks the running sonde and prints its answer to `out`.
pub fn print(ask: &Ask, out: &mut impl Write) -> anyhow::Result<()> {
    let base = ask.url.trim_end_matches('/');
    let query: String = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(&ask.params)
        .finish();
    let url = format!("{base}/api/v1/requests?{query}");
    let agent = crate::outbound::agent(TIMEOUT, |config| config);
    let mut response = agent.get(&url).call().map_err(|err| {
        anyhow!(
            "cannot reach sonde at {base} ({err}): is `sonde run` running there? \
             Give --url, or --config with the file it runs with"
        )
    })?;
    let status = response.status().as_u16();
    let text = response
        .body_mut()
        .read_to_string()
        .map_err(|err| anyhow!("cannot read sonde's answer from {url}: {err}"))?;
    let answer: Answer = serde_json::from_str(&text).map_err(|_| {
        anyhow!(
            "{base} answered HTTP {status} but not as sonde does: {}",
            text.chars().take(200).collect::<String>()
        )
    })?;
    if answer.status != "success" {
        bail!("sonde refused: {}", answer.error);
    }
    write_table(&answer.data, out)?;
    Ok(())
}

fn write_table(entries: &[Entry], out: &mut impl Write) -> std::io::Result<()> {
    if entries.is_empty() {
        return writeln!(
            out,
            "no request matches (sonde logs HTTP requests once its http collector sees them)"
        );
    }
    let rows: Vec<[String; 10]> = entries
        .iter()
        .map(|e| {
            [
                crate::civil::rfc3339(e.time_ms),
                e.service.clone(),
                e.pid.to_string(),
                e.method.clone(),
                status_text(e.status, e.grpc_status),
                format!("{:.1}ms", e.duration_seconds * 1000.0),
                e.request_body_bytes.to_string(),
                e.response_body_bytes.to_string(),
                e.route.clone(),
                e.path.clone(),
            ]
        })
        .collect();
    let heading = [
        "TIME",
        "SERVICE",
        "PID",
        "METHOD",
        "STATUS",
        "DURATION",
        "REQ_BYTES",
        "RESP_BYTES",
        "ROUTE",
        "PATH",
    ];
    let widths: Vec<usize> = (0..heading.len())
        .map(|i| {
            rows.iter()
                .map(|r| r[i].len())
                .chain([heading[i].len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: Vec<&str>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        padded.join("  ").trim_end().to_string()
    };
    writeln!(out, "{}", line(heading.to_vec()))?;
    for row in &rows {
        writeln!(out, "{}", line(row.iter().map(String::as_str).collect()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_a_table_with_aligned_columns() {
        let entry = Entry {
            time_ms: 0,
            service: "shop".into(),
            pid: 7,
            method: "GET".into(),
            path: "/users/1".into(),
            route: "/users/*".into(),
            status: 200,
            grpc_status: None,
            duration_seconds: 0.0125,
            request_body_bytes: 0,
            response_body_bytes: 10,
        };
        let call = Entry {
            method: "POST".into(),
            route: "/shop.Cart/Fail".into(),
            grpc_status: Some(5),
            ..entry.clone()
        };
        let mut out = Vec::new();
        write_table(&[entry, call], &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("TIME"), "{text}");
        assert!(lines[1].contains("shop") && lines[1].contains("12.5ms"));
        assert_eq!(lines[0].find("SERVICE"), lines[1].find("shop"));
        assert!(lines[2].contains("200 (gRPC 5)"), "{text}");
        let mut empty = Vec::new();
        write_table(&[], &mut empty).unwrap();
        assert!(String::from_utf8(empty).unwrap().starts_with("no request"));
    }

    #[test]
    fn says_what_to_do_when_sonde_is_not_running() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let ask = Ask {
            url: format!("http://127.0.0.1:{port}"),
            params: Vec::new(),
        };
        let err = print(&ask, &mut Vec::new()).unwrap_err().to_string();
        assert!(err.contains("is `sonde run` running"), "{err}");
    }
}
