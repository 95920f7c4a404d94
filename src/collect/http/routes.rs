//! The `http_route` of a request: the first of the user's route patterns
//! (`[collect.http] route_patterns`, such as `/users/{id}`) that matches its
//! path, else the path with its id-like segments as `*`
//! ([`super::parse::route`]); each service keeps at most
//! `max_routes_per_service` distinct heuristic routes, later ones are
//! [`OTHER_ROUTE`]. A pattern is counted under itself and outside the
//! budget: the patterns are few and the user's.

use std::collections::HashSet;
use std::sync::Arc;

use crate::collect::FastMap;

/// Default of `[collect.http] max_routes_per_service`.
pub const DEFAULT_MAX_ROUTES: usize = 100;
/// The route every route beyond a service's budget is counted under.
pub const OTHER_ROUTE: &str = "/**";

/// One pattern segment.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Segment {
    Literal(String),
    /// `{name}`, `:name` or `*`: any one segment that is not empty.
    Any,
}

/// A route pattern: `/`-separated segments, matched whole.
#[derive(Clone, Debug)]
pub struct Pattern {
    route: Arc<str>,
    segments: Vec<Segment>,
}

impl Pattern {
    /// `/users/{id}`, `/users/:id/posts`, `/files/*`.
    pub fn new(text: &str) -> Result<Pattern, String> {
        let Some(rest) = text.strip_prefix('/') else {
            return Err(format!(
                "expected a path starting with '/', such as \"/users/{{id}}\", got {text:?}"
            ));
        };
        let segments = rest
            .split('/')
            .map(|segment| {
                let named = segment
                    .strip_prefix('{')
                    .and_then(|s| s.strip_suffix('}'))
                    .or_else(|| segment.strip_prefix(':'));
                match named {
                    Some(name) if !name.is_empty() && !name.contains(['{', '}']) => Ok(Segment::Any),
                    Some(_) => Err(format!("{text:?}: a parameter needs a name, such as {{id}} or :id")),
                    None if segment == "*" => Ok(Segment::Any),
                    None if segment.contains(['{', '}', '*']) => Err(format!(
                        "{text:?}: the segment {segment:?} mixes a parameter with text; a parameter is a whole segment ({{id}}, :id or *)"
                    )),
                    None => Ok(Segment::Literal(segment.to_string())),
                }
            })
            .collect::<Result<_, String>>()?;
        Ok(Pattern {
            route: text.into(),
            segments,
        })
    }

    fn matches(&self, path: &str) -> bool {
        let mut parts = path.strip_prefix('/').unwrap_or(path).split('/');
        self.segments
            .iter()
            .all(|segment| match (segment, parts.next()) {
                (Segment::Literal(literal), Some(part)) => literal == part,
                (Segment::Any, Some(part)) => !part.is_empty(),
                (_, None) => false,
            })
            && parts.next().is_none()
    }
}

/// Every service's routes.
pub struct Routes {
    patterns: Vec<Pattern>,
    max_per_service: usize,
    /// Per service name, its heuristic routes.
    known: FastMap<Arc<str>, HashSet<Arc<str>, foldhash::fast::RandomState>>,
}

impl Routes {
    pub fn new(patterns: Vec<Pattern>, max_per_service: usize) -> Routes {
        Routes {
            patterns,
            max_per_service,
            known: FastMap::default(),
        }
    }

    /// The route of `path` for `service`.
    pub fn route(&mut self, service: &Arc<str>, path: &str) -> Arc<str> {
        if let Some(pattern) = self.patterns.iter().find(|p| p.matches(path)) {
            return pattern.route.clone();
        }
        let route = super::parse::route(path);
        let known = self.known.entry(service.clone()).or_default();
        if let Some(route) = known.get(route.as_str()) {
            return route.clone();
        }
        if known.len() >= self.max_per_service {
            return OTHER_ROUTE.into();
        }
        let route: Arc<str> = route.into();
        known.insert(route.clone());
        route
    }

    /// Keeps the routes of the services `serving` says still have series.
    pub fn retain(&mut self, serving: impl Fn(&str) -> bool) {
        self.known.retain(|service, _| serving(service));
    }

    pub fn is_empty(&self) -> bool {
        self.known.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_win_over_the_heuristic_in_their_order() {
        let s: Arc<str> = "s".into();
        let patterns = [
            "/users/{id}",
            "/users/:id/posts",
            "/files/*",
            "/files/{name}",
        ]
        .map(|p| Pattern::new(p).unwrap())
        .to_vec();
        let mut routes = Routes::new(patterns, 100);
        assert_eq!(&*routes.route(&s, "/users/alice"), "/users/{id}");
        assert_eq!(&*routes.route(&s, "/users/42/posts"), "/users/:id/posts");
        assert_eq!(&*routes.route(&s, "/files/a.txt"), "/files/*");
        // Not matched: an empty segment, more or fewer segments.
        assert_eq!(&*routes.route(&s, "/users/"), "/users/");
        assert_eq!(&*routes.route(&s, "/users/42/likes"), "/users/*/likes");
        assert_eq!(&*routes.route(&s, "/users"), "/users");
    }

    #[test]
    fn routes_beyond_the_budget_fold_but_patterns_do_not() {
        let (s, t): (Arc<str>, Arc<str>) = ("s".into(), "t".into());
        let mut routes = Routes::new(vec![Pattern::new("/p/{x}").unwrap()], 3);
        for i in 0..5 {
            assert_ne!(&*routes.route(&s, &format!("/r{i}x")), "");
        }
        assert_eq!(&*routes.route(&s, "/another"), OTHER_ROUTE);
        assert_eq!(&*routes.route(&s, "/r1x"), "/r1x");
        assert_eq!(&*routes.route(&s, "/p/y"), "/p/{x}");
        assert_eq!(&*routes.route(&t, "/another"), "/another");
        routes.retain(|service| service == "t");
        assert_eq!(&*routes.route(&s, "/another"), "/another");
    }

    #[test]
    fn refuses_patterns_that_are_not_paths_or_half_parameters() {
        for bad in [
            "users/{id}",
            "/users/{}",
            "/users/{id",
            "/users/id-{id}",
            "/a/:",
        ] {
            assert!(Pattern::new(bad).is_err(), "{bad}");
        }
    }
}
