//! HTTP routes from the manifest's `[[trigger.http]]` entries, matched like Spin matches them.
//!
//! A route is exact (`/v1/models`), may contain `/:name` parameter segments
//! (`/users/:id`), and may end in a `/...` wildcard (`/v1/...` matches `/v1` and everything
//! under it). When several routes match, the most specific wins: more fixed segments first
//! (longest prefix), then literal segments over parameters from left to right, then an exact
//! route over a wildcard one. Two routes that are equally specific for every path are
//! rejected when the router is built.

use anyhow::{Result, bail};

/// One parsed route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoutePattern {
    raw: String,
    segments: Vec<Segment>,
    wildcard: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Param(String),
}

impl RoutePattern {
    /// Parses a route as written in the manifest.
    pub fn parse(raw: &str) -> Result<RoutePattern> {
        if !raw.starts_with('/') {
            bail!("`{raw}` must start with `/`");
        }
        if raw.contains(['?', '#']) {
            bail!("`{raw}` must be a path without query or fragment");
        }
        let (body, wildcard) = if raw == "/..." {
            ("", true)
        } else if let Some(prefix) = raw.strip_suffix("/...") {
            (prefix, true)
        } else {
            (raw.trim_end_matches('/'), false)
        };
        let mut segments = Vec::new();
        for segment in body.split('/').skip(1) {
            if segment == "..." {
                bail!("`{raw}`: `...` is only allowed as the last segment");
            }
            if let Some(name) = segment.strip_prefix(':') {
                if name.is_empty() {
                    bail!("`{raw}`: a `:` parameter needs a name");
                }
                segments.push(Segment::Param(name.to_owned()));
            } else {
                segments.push(Segment::Literal(segment.to_owned()));
            }
        }
        Ok(RoutePattern {
            raw: raw.to_owned(),
            segments,
            wildcard,
        })
    }

    /// The route as written.
    pub fn as_str(&self) -> &str {
        &self.raw
    }

    /// The route without a trailing `/...` (Spin's `spin-component-route`).
    pub fn base(&self) -> &str {
        self.raw.strip_suffix("/...").unwrap_or(&self.raw)
    }

    /// Orders matching routes: greater is more specific.
    fn specificity(&self) -> (usize, Vec<bool>, bool) {
        (
            self.segments.len(),
            self.segments
                .iter()
                .map(|s| matches!(s, Segment::Literal(_)))
                .collect(),
            !self.wildcard,
        )
    }

    /// Matches `path` (no query). Returns parameter values and the unmatched rest of the
    /// path for wildcard routes (`""` for exact routes).
    fn matches(&self, path: &str) -> Option<(Vec<(String, String)>, String)> {
        let trimmed = if path.len() > 1 {
            path.strip_suffix('/').unwrap_or(path)
        } else {
            path
        };
        let mut parts = trimmed.split('/').skip(1).filter(|_| trimmed != "/");
        let mut params = Vec::new();
        let mut consumed = 0usize;
        for segment in &self.segments {
            let part = parts.next()?;
            match segment {
                Segment::Literal(lit) if lit == part => {}
                Segment::Literal(_) => return None,
                Segment::Param(name) => params.push((name.clone(), part.to_owned())),
            }
            consumed += 1 + part.len();
        }
        if self.wildcard {
            let rest = path.get(consumed..).unwrap_or("");
            Some((params, rest.to_owned()))
        } else if parts.next().is_none() {
            Some((params, String::new()))
        } else {
            None
        }
    }
}

/// The routing table of one application.
#[derive(Debug, Clone, Default)]
pub struct Router {
    routes: Vec<(RoutePattern, String)>,
}

/// The result of routing one request path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteMatch<'a> {
    /// The component that serves the request.
    pub component: &'a str,
    pub route: &'a RoutePattern,
    /// `:name` parameters and their values.
    pub params: Vec<(String, String)>,
    /// The part of the path after the route's fixed segments (Spin's `spin-path-info`).
    pub path_info: String,
}

impl Router {
    /// Builds the table from `(route, component)` pairs, rejecting ambiguous duplicates.
    pub fn new<'a>(entries: impl IntoIterator<Item = (&'a str, &'a str)>) -> Result<Router> {
        let mut routes: Vec<(RoutePattern, String)> = Vec::new();
        for (raw, component) in entries {
            let pattern = RoutePattern::parse(raw)?;
            if let Some((other, other_component)) = routes
                .iter()
                .find(|(p, _)| p.specificity() == pattern.specificity() && p.shape_eq(&pattern))
            {
                bail!(
                    "route `{raw}` (component `{component}`) duplicates route `{}` (component \
                     `{other_component}`)",
                    other.as_str()
                );
            }
            routes.push((pattern, component.to_owned()));
        }
        Ok(Router { routes })
    }

    /// The most specific route matching `path`.
    pub fn route(&self, path: &str) -> Option<RouteMatch<'_>> {
        self.routes
            .iter()
            .filter_map(|(pattern, component)| {
                pattern
                    .matches(path)
                    .map(|(params, path_info)| (pattern, component, params, path_info))
            })
            .max_by(|a, b| a.0.specificity().cmp(&b.0.specificity()))
            .map(|(route, component, params, path_info)| RouteMatch {
                component,
                route,
                params,
                path_info,
            })
    }

    pub fn routes(&self) -> impl Iterator<Item = (&RoutePattern, &str)> {
        self.routes.iter().map(|(p, c)| (p, c.as_str()))
    }
}

impl RoutePattern {
    /// Same literals in the same places and the same wildcard-ness: the two routes match
    /// exactly the same paths.
    fn shape_eq(&self, other: &RoutePattern) -> bool {
        self.wildcard == other.wildcard
            && self.segments.len() == other.segments.len()
            && self
                .segments
                .iter()
                .zip(&other.segments)
                .all(|(a, b)| match (a, b) {
                    (Segment::Literal(x), Segment::Literal(y)) => x == y,
                    (Segment::Param(_), Segment::Param(_)) => true,
                    _ => false,
                })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn router(entries: &[(&str, &str)]) -> Router {
        Router::new(entries.iter().copied()).unwrap()
    }

    fn hit(r: &Router, path: &str) -> Option<String> {
        r.route(path).map(|m| m.component.to_owned())
    }

    #[test]
    fn exact_routes() {
        let r = router(&[("/health-check", "a"), ("/", "root")]);
        assert_eq!(hit(&r, "/health-check").as_deref(), Some("a"));
        assert_eq!(hit(&r, "/health-check/").as_deref(), Some("a"));
        assert_eq!(hit(&r, "/health-check/x"), None);
        assert_eq!(hit(&r, "/").as_deref(), Some("root"));
        assert_eq!(hit(&r, "/other"), None);
    }

    #[test]
    fn wildcards_and_longest_prefix() {
        let r = router(&[
            ("/...", "catchall"),
            ("/v1/...", "v1"),
            ("/v1/chat/...", "chat"),
            ("/v1/models", "models"),
        ]);
        assert_eq!(hit(&r, "/").as_deref(), Some("catchall"));
        assert_eq!(hit(&r, "/x/y").as_deref(), Some("catchall"));
        assert_eq!(hit(&r, "/v1").as_deref(), Some("v1"));
        assert_eq!(hit(&r, "/v1/embeddings").as_deref(), Some("v1"));
        assert_eq!(hit(&r, "/v1/chat/completions").as_deref(), Some("chat"));
        assert_eq!(hit(&r, "/v1/models").as_deref(), Some("models"));
        assert_eq!(hit(&r, "/v1/models/x").as_deref(), Some("v1"));
        assert_eq!(hit(&r, "/v10").as_deref(), Some("catchall"));
    }

    #[test]
    fn exact_beats_wildcard_of_the_same_prefix() {
        let r = router(&[("/a/...", "wild"), ("/a", "exact")]);
        assert_eq!(hit(&r, "/a").as_deref(), Some("exact"));
        assert_eq!(hit(&r, "/a/b").as_deref(), Some("wild"));
    }

    #[test]
    fn parameters() {
        let r = router(&[
            ("/users/:id", "user"),
            ("/users/me", "me"),
            ("/users/...", "users"),
            ("/:org/repos/:repo", "repo"),
        ]);
        let m = r.route("/users/42").unwrap();
        assert_eq!(m.component, "user");
        assert_eq!(m.params, [("id".to_string(), "42".to_string())]);
        assert_eq!(hit(&r, "/users/me").as_deref(), Some("me"));
        assert_eq!(hit(&r, "/users/42/x").as_deref(), Some("users"));
        let m = r.route("/acme/repos/kefu").unwrap();
        assert_eq!(m.component, "repo");
        assert_eq!(m.params.len(), 2);
    }

    #[test]
    fn literal_segments_win_from_the_left() {
        let r = router(&[("/:x/b", "param-first"), ("/a/:y", "literal-first")]);
        assert_eq!(hit(&r, "/a/b").as_deref(), Some("literal-first"));
        assert_eq!(hit(&r, "/z/b").as_deref(), Some("param-first"));
    }

    #[test]
    fn path_info() {
        let r = router(&[("/static/...", "s"), ("/...", "all")]);
        assert_eq!(
            r.route("/static/css/a.css").unwrap().path_info,
            "/css/a.css"
        );
        assert_eq!(r.route("/static").unwrap().path_info, "");
        assert_eq!(r.route("/x/y").unwrap().path_info, "/x/y");
        assert_eq!(r.route("/static/...").unwrap().route.base(), "/static");
    }

    #[test]
    fn duplicates_are_rejected() {
        let e = Router::new([("/a/:x", "one"), ("/a/:y", "two")]).unwrap_err();
        assert!(e.to_string().contains("duplicates"), "{e}");
        assert!(Router::new([("/a", "one"), ("/a/", "two")]).is_err());
        assert!(Router::new([("/a", "one"), ("/a/...", "two")]).is_ok());
    }

    #[test]
    fn bad_routes() {
        for bad in ["a", "/a/.../b", "/:", "/a?b"] {
            assert!(RoutePattern::parse(bad).is_err(), "{bad}");
        }
    }
}
