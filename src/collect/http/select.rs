//! Which connections the http collector measures (`[[collect.http.instrument]]`
//! and `[[collect.http.exclude]]`): by the connection's server port and by
//! its process's executable path, systemd unit and container. With no
//! `instrument` selector every connection is measured; a connection any
//! `exclude` selector matches never is. Within one selector every field
//! given must match; between selectors, any one is enough.
//!
//! The decision is made once per process and server end (where the
//! service's labels are made, [`super::service`]), not per request.

use std::ops::RangeInclusive;

use serde::Deserialize;

/// One selector as the config writes it; every field optional, at least
/// one given.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SelectorConfig {
    /// Server ports and ranges, `"80,443,8000-8999"`: a server's own port,
    /// or the port a client calls.
    pub ports: Option<String>,
    /// A glob on the executable's path, `"/usr/sbin/*"`.
    pub exe_path: Option<String>,
    /// A glob on the systemd unit, `"nginx.service"`.
    pub unit: Option<String>,
    /// A glob on the container's name (or short id).
    pub container: Option<String>,
}

/// What a selector is matched against.
#[derive(Debug, Default)]
pub struct Target<'a> {
    pub exe_path: &'a str,
    pub unit: Option<&'a str>,
    pub container: Option<&'a str>,
    /// The connection's server port, when known.
    pub port: Option<u16>,
}

#[derive(Clone, Debug)]
struct Selector {
    ports: Vec<RangeInclusive<u16>>,
    exe_path: Option<String>,
    unit: Option<String>,
    container: Option<String>,
}

impl Selector {
    fn new(config: &SelectorConfig) -> Result<Selector, String> {
        let SelectorConfig {
            ports,
            exe_path,
            unit,
            container,
        } = config;
        if ports.is_none() && exe_path.is_none() && unit.is_none() && container.is_none() {
            return Err(
                "an empty selector: give at least one of ports, exe_path, unit, container"
                    .to_string(),
            );
        }
        Ok(Selector {
            ports: ports
                .as_deref()
                .map(parse_ports)
                .transpose()?
                .unwrap_or_default(),
            exe_path: exe_path.clone(),
            unit: unit.clone(),
            container: container.clone(),
        })
    }

    fn matches(&self, target: &Target) -> bool {
        let glob = |pattern: &Option<String>, value: Option<&str>| match pattern {
            None => true,
            Some(pattern) => value.is_some_and(|value| crate::glob::matches(pattern, value)),
        };
        (self.ports.is_empty()
            || target
                .port
                .is_some_and(|port| self.ports.iter().any(|range| range.contains(&port))))
            && glob(&self.exe_path, Some(target.exe_path))
            && glob(&self.unit, target.unit)
            && glob(&self.container, target.container)
    }
}

/// `"80,443,8000-8999"` as ranges.
fn parse_ports(text: &str) -> Result<Vec<RangeInclusive<u16>>, String> {
    text.split(',')
        .map(|part| {
            let part = part.trim();
            let port = |p: &str| {
                p.trim().parse::<u16>().ok().filter(|p| *p > 0).ok_or_else(|| {
                    format!("ports: expected ports and ranges such as \"80,443,8000-8999\", got {text:?}")
                })
            };
            match part.split_once('-') {
                Some((low, high)) => {
                    let (low, high) = (port(low)?, port(high)?);
                    if low > high {
                        return Err(format!("ports: the range {part:?} ends before it starts"));
                    }
                    Ok(low..=high)
                }
                None => port(part).map(|p| p..=p),
            }
        })
        .collect()
}

/// The compiled `instrument` and `exclude` selectors.
#[derive(Clone, Debug, Default)]
pub struct Selection {
    instrument: Vec<Selector>,
    exclude: Vec<Selector>,
}

impl Selection {
    /// Errors name the selector (`instrument[0]`) and the field.
    pub fn new(
        instrument: &[SelectorConfig],
        exclude: &[SelectorConfig],
    ) -> Result<Selection, String> {
        let compile = |key: &str, selectors: &[SelectorConfig]| {
            selectors
                .iter()
                .enumerate()
                .map(|(i, selector)| {
                    Selector::new(selector).map_err(|e| format!("{key}[{i}]: {e}"))
                })
                .collect::<Result<Vec<_>, String>>()
        };
        Ok(Selection {
            instrument: compile("instrument", instrument)?,
            exclude: compile("exclude", exclude)?,
        })
    }

    /// Whether the config selects every connection.
    pub fn is_everything(&self) -> bool {
        self.instrument.is_empty() && self.exclude.is_empty()
    }

    pub fn measures(&self, target: &Target) -> bool {
        (self.instrument.is_empty() || self.instrument.iter().any(|s| s.matches(target)))
            && !self.exclude.iter().any(|s| s.matches(target))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn selector(ports: Option<&str>, exe_path: Option<&str>, unit: Option<&str>) -> SelectorConfig {
        SelectorConfig {
            ports: ports.map(String::from),
            exe_path: exe_path.map(String::from),
            unit: unit.map(String::from),
            container: None,
        }
    }

    #[test]
    fn selects_by_every_field_of_one_selector_or_any_selector() {
        let selection = Selection::new(
            &[
                selector(Some("80, 8000-8999"), Some("/usr/sbin/*"), None),
                selector(None, None, Some("shop-*.service")),
            ],
            &[selector(Some("8080"), None, None)],
        )
        .unwrap();
        let nginx = |port| Target {
            exe_path: "/usr/sbin/nginx",
            port,
            ..Target::default()
        };
        assert!(selection.measures(&nginx(Some(80))));
        assert!(selection.measures(&nginx(Some(8443))));
        assert!(!selection.measures(&nginx(Some(443))), "port not selected");
        assert!(!selection.measures(&nginx(Some(8080))), "excluded");
        assert!(!selection.measures(&nginx(None)), "port unknown");
        let shop = Target {
            exe_path: "/usr/bin/python3",
            unit: Some("shop-cart.service"),
            port: Some(5000),
            ..Target::default()
        };
        assert!(selection.measures(&shop));
        assert!(!selection.measures(&Target { unit: None, ..shop }));
        assert!(Selection::default().measures(&nginx(None)));
        assert!(Selection::default().is_everything());
    }

    #[test]
    fn refuses_empty_selectors_and_bad_ports_naming_them() {
        let err = Selection::new(&[], &[SelectorConfig::default()]).unwrap_err();
        assert!(err.starts_with("exclude[0]: an empty selector"), "{err}");
        for ports in ["http", "0", "70000", "90-80", "80,"] {
            let err = Selection::new(&[selector(Some(ports), None, None)], &[]).unwrap_err();
            assert!(err.starts_with("instrument[0]: ports:"), "{ports}: {err}");
        }
    }
}
