//! `GET /api/v1/requests`: the request log of the HTTP RED collector
//! ([`crate::collect::http::log`]), filtered by the query string, in the
//! Prometheus API's envelope (`{"status":"success","data":[…]}`, errors as
//! `bad_data` with a 400). `sonde requests` reads it.

use axum::extract::Query;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use super::api::{success, ApiError};
use super::AppState;
use crate::collect::http::log::{Filter, RequestLog};

/// Entries answered when the query string sets no limit.
pub const DEFAULT_LIMIT: usize = 20;

/// The parameters, each optional.
pub const PARAMS: &str = "service, route, status, min_duration, order, limit";

pub fn routes() -> Router<AppState> {
    Router::new().route("/api/v1/requests", get(requests))
}

async fn requests(Query(pairs): Query<Vec<(String, String)>>) -> Response {
    match parse_filter(&pairs) {
        Ok(filter) => {
            let entries = RequestLog::shared().query(&filter, crate::collect::now_ms());
            match serde_json::to_string(&entries) {
                Ok(data) => success(&data),
                Err(err) => ApiError::bad_data(err.to_string()).into_response(),
            }
        }
        Err(message) => ApiError::bad_data(message).into_response(),
    }
}

/// The filter a query string asks for; an error names the parameter and
/// what it takes.
pub fn parse_filter(pairs: &[(String, String)]) -> Result<Filter, String> {
    let mut filter = Filter {
        limit: DEFAULT_LIMIT,
        ..Filter::default()
    };
    for (name, value) in pairs {
        let invalid = |err: String| format!("invalid parameter {name:?}: {err}");
        match name.as_str() {
            "service" => filter.service = Some(value.clone()),
            "route" => filter.route = Some(value.clone()),
            "status" => filter.status = Some(value.parse().map_err(invalid)?),
            "min_duration" => {
                let duration = humantime::parse_duration(value).map_err(|err| {
                    invalid(format!("expected a duration such as 100ms or 2s ({err})"))
                })?;
                filter.min_duration_seconds = duration.as_secs_f64();
            }
            "order" => filter.order = value.parse().map_err(invalid)?,
            "limit" => {
                filter.limit = value
                    .parse()
                    .map_err(|_| invalid(format!("expected a count, got {value:?}")))?
            }
            other => return Err(format!("unknown parameter {other:?}: this takes {PARAMS}")),
        }
    }
    Ok(filter)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collect::http::log::{Order, Status};

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn parses_filters_and_names_bad_parameters() {
        let filter = parse_filter(&pairs(&[
            ("service", "shop"),
            ("status", "5xx"),
            ("min_duration", "150ms"),
            ("order", "slowest"),
            ("limit", "5"),
        ]))
        .unwrap();
        assert_eq!(filter.service.as_deref(), Some("shop"));
        assert_eq!(filter.status, Some(Status::Class(5)));
        assert_eq!(filter.min_duration_seconds, 0.15);
        assert_eq!((filter.order, filter.limit), (Order::Slowest, 5));
        assert_eq!(parse_filter(&[]).unwrap().limit, DEFAULT_LIMIT);
        for (bad, names) in [
            (("min_duration", "soon"), "min_duration"),
            (("status", "teapot"), "status"),
            (("limit", "-1"), "limit"),
            (("order", "x"), "order"),
            (("colour", "red"), "colour"),
        ] {
            let err = parse_filter(&pairs(&[bad])).unwrap_err();
            assert!(err.contains(names), "{err}");
        }
    }
}
