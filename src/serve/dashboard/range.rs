//! The time range every view shows, and how the URL carries it: a preset
//! ending now (`?range=1h`) or a fixed span (`?from=…&to=…`, as the custom
//! form and drag-to-zoom send it), plus `refresh` for auto-reload. One parse
//! for every view, so a link copied from any of them shows the same thing.
//!
//! Invariants: `start_ms < end_ms`; a span is at most [`MAX_SPAN_MS`]; the
//! step puts [`POINTS`] instants on the range whatever its length, so
//! drawing costs the same for a week as for five minutes.

use std::fmt::Write as _;

use super::series::Grid;

/// Instants a chart is drawn at (one more with the end).
pub const POINTS: i64 = 180;
/// The longest range one may ask for: what the minute rollups keep by
/// default, and a grid step (about an hour at 90 days) still worth drawing.
pub const MAX_SPAN_MS: i64 = 90 * 24 * 3600 * 1000;
/// The shortest: a minute, six samples at the default interval.
const MIN_SPAN_MS: i64 = 60_000;

/// The ranges offered as one click, each ending now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Preset {
    Minutes5,
    Minutes15,
    Hour1,
    Hours6,
    Hours24,
    Days7,
}

impl Preset {
    pub const ALL: [Preset; 6] = [
        Preset::Minutes5,
        Preset::Minutes15,
        Preset::Hour1,
        Preset::Hours6,
        Preset::Hours24,
        Preset::Days7,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Preset::Minutes5 => "5m",
            Preset::Minutes15 => "15m",
            Preset::Hour1 => "1h",
            Preset::Hours6 => "6h",
            Preset::Hours24 => "24h",
            Preset::Days7 => "7d",
        }
    }

    pub fn duration_ms(self) -> i64 {
        const MINUTE: i64 = 60_000;
        match self {
            Preset::Minutes5 => 5 * MINUTE,
            Preset::Minutes15 => 15 * MINUTE,
            Preset::Hour1 => 60 * MINUTE,
            Preset::Hours6 => 6 * 60 * MINUTE,
            Preset::Hours24 => 24 * 60 * MINUTE,
            Preset::Days7 => 7 * 24 * 60 * MINUTE,
        }
    }

    pub fn parse(text: &str) -> Result<Preset, String> {
        Preset::ALL
            .into_iter()
            .find(|r| r.name() == text)
            .ok_or_else(|| {
                format!(
                    "bad range {text:?}: choose one of {}",
                    Preset::ALL.map(Preset::name).join(", ")
                )
            })
    }
}

/// Auto-refresh periods offered (seconds; 0 is off).
pub const REFRESHES: [(&str, u32); 5] = [
    ("off", 0),
    ("10s", 10),
    ("30s", 30),
    ("1m", 60),
    ("5m", 300),
];

/// The span shown: `[start_ms, end_ms]`, and the preset it came from when
/// it ends now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Range {
    pub start_ms: i64,
    pub end_ms: i64,
    pub preset: Option<Preset>,
}

impl Range {
    /// The last `preset` up to `now_ms`.
    pub fn last(preset: Preset, now_ms: i64) -> Range {
        Range {
            start_ms: now_ms - preset.duration_ms(),
            end_ms: now_ms,
            preset: Some(preset),
        }
    }

    pub fn duration_ms(&self) -> i64 {
        self.end_ms - self.start_ms
    }

    /// The grid step: [`POINTS`] instants over the range, a second at least.
    pub fn step_ms(&self) -> i64 {
        (self.duration_ms() / POINTS).max(1000)
    }

    pub fn grid(&self) -> Grid {
        Grid::ending_at(self.end_ms, self.duration_ms(), self.step_ms())
    }

    /// The range as a PromQL duration (`[3600s]`'s inside), for functions
    /// over the whole range evaluated at its end.
    pub fn promql_window(&self) -> String {
        format!("{}s", (self.duration_ms() / 1000).max(1))
    }

    /// The query string that asks for this range: the preset's name, or
    /// both ends in RFC 3339.
    pub fn query(&self) -> String {
        match self.preset {
            Some(preset) => format!("range={}", preset.name()),
            None => format!(
                "from={}&to={}",
                crate::civil::rfc3339(self.start_ms),
                crate::civil::rfc3339(self.end_ms)
            ),
        }
    }

    /// How the range reads in a sentence: "the last 1h", "12:00–13:30 UTC".
    pub fn describe(&self) -> String {
        match self.preset {
            Some(preset) => format!("the last {}", preset.name()),
            None => format!(
                "{} – {} UTC",
                minute(self.start_ms).replace('T', " "),
                minute(self.end_ms).replace('T', " ")
            ),
        }
    }
}

/// `YYYY-MM-DDTHH:MM` in UTC, as an `<input type="datetime-local">` holds it.
pub fn minute(ms: i64) -> String {
    crate::civil::rfc3339(ms.div_euclid(60_000) * 60_000)[..16].to_string()
}

/// An end of a custom range: RFC 3339, `YYYY-MM-DDTHH:MM[:SS]` taken as UTC
/// (what a `datetime-local` input sends), or milliseconds since the epoch.
fn instant(name: &str, text: &str) -> Result<i64, String> {
    let text = text.trim();
    if let Ok(ms) = text.parse::<i64>() {
        return Ok(ms);
    }
    let full = match text.len() {
        16 => format!("{text}:00Z"),
        19 => format!("{text}Z"),
        _ => text.to_string(),
    };
    crate::civil::parse_rfc3339(&full).ok_or_else(|| {
        format!(
            "{name}: expected a time such as 2026-11-27T12:00 (UTC), RFC 3339 or milliseconds since the epoch, got {text:?}"
        )
    })
}

/// What every view's query string may say about time: `range`, or `from`
/// and `to`, and `refresh`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimeParams {
    pub range: Range,
    pub refresh: (&'static str, u32),
}

impl TimeParams {
    /// Reads the time parameters from `pairs` at `now_ms`; a parameter
    /// outside them and `extra` (the view's own) is an error naming both.
    pub fn parse(
        pairs: &[(String, String)],
        extra: &[&str],
        now_ms: i64,
    ) -> Result<TimeParams, String> {
        let mut preset = Preset::Hour1;
        let (mut from, mut to) = (None, None);
        let mut refresh = REFRESHES[0];
        for (name, value) in pairs {
            match name.as_str() {
                "range" => preset = Preset::parse(value)?,
                "from" if !value.is_empty() => from = Some(instant("from", value)?),
                "to" if !value.is_empty() => to = Some(instant("to", value)?),
                "from" | "to" => {}
                "refresh" => {
                    refresh = REFRESHES
                        .into_iter()
                        .find(|(n, _)| n == value)
                        .ok_or_else(|| {
                            format!(
                                "bad refresh {value:?}: choose one of {}",
                                REFRESHES.map(|(n, _)| n).join(", ")
                            )
                        })?
                }
                other if extra.contains(&other) => {}
                other => {
                    let mut known = String::from("range, from, to, refresh");
                    for name in extra {
                        let _ = write!(known, ", {name}");
                    }
                    return Err(format!(
                        "unknown parameter {other:?}: this view takes {known}"
                    ));
                }
            }
        }
        let range = match (from, to) {
            (None, None) => Range::last(preset, now_ms),
            (Some(start_ms), end) => {
                let end_ms = end.unwrap_or(now_ms);
                if end_ms - start_ms < MIN_SPAN_MS {
                    return Err("from must be at least a minute before to".to_string());
                }
                if end_ms - start_ms > MAX_SPAN_MS {
                    return Err("from and to may be at most 90 days apart".to_string());
                }
                Range {
                    start_ms,
                    end_ms,
                    preset: None,
                }
            }
            (None, Some(_)) => return Err("to needs a from".to_string()),
        };
        Ok(TimeParams { range, refresh })
    }

    /// The query string of these parameters (without `?`).
    pub fn query(&self) -> String {
        self.with(self.range, self.refresh.0)
    }

    /// The query string of another range or refresh.
    pub fn with(&self, range: Range, refresh: &str) -> String {
        let mut query = range.query();
        if refresh != REFRESHES[0].0 {
            let _ = write!(query, "&refresh={refresh}");
        }
        query
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    const NOW: i64 = 1_800_000_000_000;

    #[test]
    fn defaults_to_the_last_hour_without_refresh() {
        let params = TimeParams::parse(&[], &[], NOW).unwrap();
        assert_eq!(params.range, Range::last(Preset::Hour1, NOW));
        assert_eq!(params.refresh.1, 0);
        assert_eq!(params.query(), "range=1h");
        let params =
            TimeParams::parse(&pairs(&[("range", "7d"), ("refresh", "30s")]), &[], NOW).unwrap();
        assert_eq!(params.range.duration_ms(), 7 * 86_400_000);
        assert_eq!(params.query(), "range=7d&refresh=30s");
    }

    #[test]
    fn a_custom_range_round_trips_through_its_query() {
        let asked = pairs(&[("from", "2027-01-15T08:00"), ("to", "2027-01-15T09:30:00Z")]);
        let params = TimeParams::parse(&asked, &[], NOW).unwrap();
        assert_eq!(params.range.duration_ms(), 90 * 60_000);
        assert_eq!(
            params.query(),
            "from=2027-01-15T08:00:00Z&to=2027-01-15T09:30:00Z"
        );
        let again: Vec<(String, String)> = form_urlencoded::parse(params.query().as_bytes())
            .into_owned()
            .collect();
        assert_eq!(TimeParams::parse(&again, &[], NOW).unwrap(), params);
        let ms = pairs(&[("from", "1000000"), ("to", "4000000")]);
        assert_eq!(
            TimeParams::parse(&ms, &[], NOW).unwrap().range.start_ms,
            1_000_000
        );
    }

    #[test]
    fn bad_parameters_say_what_is_allowed() {
        let err = TimeParams::parse(&pairs(&[("range", "banana")]), &[], NOW).unwrap_err();
        assert_eq!(
            err,
            "bad range \"banana\": choose one of 5m, 15m, 1h, 6h, 24h, 7d"
        );
        let err = TimeParams::parse(&pairs(&[("refresh", "1s")]), &[], NOW).unwrap_err();
        assert!(err.contains("off, 10s, 30s, 1m, 5m"), "{err}");
        let err = TimeParams::parse(&pairs(&[("zoom", "2")]), &["sort"], NOW).unwrap_err();
        assert!(err.contains("range, from, to, refresh, sort"), "{err}");
        let err = TimeParams::parse(&pairs(&[("from", "yesterday")]), &[], NOW).unwrap_err();
        assert!(err.starts_with("from: expected a time"), "{err}");
        let backwards = pairs(&[("from", "2027-01-15T09:00"), ("to", "2027-01-15T08:00")]);
        assert!(TimeParams::parse(&backwards, &[], NOW).is_err());
        assert!(TimeParams::parse(&pairs(&[("to", "1000")]), &[], NOW).is_err());
    }

    #[test]
    fn every_range_is_drawn_at_a_few_hundred_instants() {
        for preset in Preset::ALL {
            let range = Range::last(preset, NOW);
            let points = range.duration_ms() / range.step_ms();
            assert!((60..=250).contains(&points), "{preset:?}: {points}");
        }
    }
}
