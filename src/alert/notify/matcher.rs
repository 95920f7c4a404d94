//! Alertmanager's matcher syntax, as routes and inhibition rules write it:
//! `name="value"`, `name!="value"`, `name=~"regex"`, `name!~"regex"`, the
//! value quoted (with Go's escapes) or bare. Regexes are anchored, as
//! Alertmanager anchors them.

use crate::model::{MatchOp, Matcher};

/// Parses one matcher; the error says what was expected.
pub fn parse(text: &str) -> Result<Matcher, String> {
    let expected = || {
        format!(
            "expected name=\"value\", name!=\"value\", name=~\"regex\" or name!~\"regex\", got {text:?}"
        )
    };
    let trimmed = text.trim();
    let name_len = trimmed
        .char_indices()
        .find(|&(i, c)| !is_label_char(c, i == 0))
        .map_or(trimmed.len(), |(i, _)| i);
    if name_len == 0 {
        return Err(expected());
    }
    let (name, rest) = trimmed.split_at(name_len);
    let rest = rest.trim_start();
    let (op, value) = [
        ("=~", MatchOp::Regex),
        ("!~", MatchOp::NotRegex),
        ("!=", MatchOp::NotEqual),
        ("=", MatchOp::Equal),
    ]
    .into_iter()
    .find_map(|(symbol, op)| rest.strip_prefix(symbol).map(|value| (op, value.trim())))
    .ok_or_else(expected)?;
    let value = if value.starts_with('"') {
        unquote(value).ok_or_else(|| format!("{text:?}: the value's quotes do not close"))?
    } else if value.contains('"') {
        return Err(format!("{text:?}: a bare value cannot hold a double quote"));
    } else {
        value.to_string()
    };
    Matcher::new(op, name, value).map_err(|err| format!("{text:?}: bad regex: {err}"))
}

/// Whether `name` is a valid label name (`[a-zA-Z_][a-zA-Z0-9_]*`).
pub fn is_label_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .char_indices()
            .all(|(i, c)| is_label_char(c, i == 0) && c != ':')
}

fn is_label_char(c: char, first: bool) -> bool {
    c.is_ascii_alphabetic() || c == '_' || c == ':' || (!first && c.is_ascii_digit())
}

/// A Go double-quoted string's content; `None` when it does not close
/// right at the end.
fn unquote(quoted: &str) -> Option<String> {
    let inner = quoted.strip_prefix('"')?.strip_suffix('"')?;
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => return None,
            '\\' => out.push(match chars.next()? {
                'n' => '\n',
                't' => '\t',
                'r' => '\r',
                other => other,
            }),
            c => out.push(c),
        }
    }
    Some(out)
}

/// The matcher as Alertmanager prints it: `name="value"`, `name=~"re"`...
pub fn to_string(matcher: &Matcher) -> String {
    let op = match matcher.op {
        MatchOp::Equal => "=",
        MatchOp::NotEqual => "!=",
        MatchOp::Regex => "=~",
        MatchOp::NotRegex => "!~",
    };
    let value = matcher
        .value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n");
    format!("{}{op}\"{value}\"", matcher.name)
}

/// Whether every matcher matches `labels`.
pub fn all_match(matchers: &[Matcher], labels: &crate::model::Labels) -> bool {
    matchers.iter().all(|m| m.matches(labels))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Labels;

    #[test]
    fn parses_every_operator_quoted_or_bare() {
        let cases = [
            (r#"severity="critical""#, MatchOp::Equal, "critical"),
            (r#" job =~ "api.*" "#, MatchOp::Regex, "api.*"),
            ("env!=prod", MatchOp::NotEqual, "prod"),
            (r#"path!~"/a\"b""#, MatchOp::NotRegex, "/a\"b"),
            ("empty=", MatchOp::Equal, ""),
        ];
        for (text, op, value) in cases {
            let m = parse(text).unwrap();
            assert_eq!((m.op, m.value.as_str()), (op, value), "{text}");
        }
        assert_eq!(to_string(&parse("job=~api.*").unwrap()), r#"job=~"api.*""#);
        assert_eq!(to_string(&parse(r#"a="x\"y""#).unwrap()), r#"a="x\"y""#);
    }

    #[test]
    fn bad_matchers_say_what_is_expected() {
        for text in ["", "=x", "job", "job==\"x", "job=\"open", "a=~\"(\""] {
            assert!(parse(text).is_err(), "accepted {text:?}");
        }
        assert!(parse("job")
            .unwrap_err()
            .contains("expected name=\"value\""));
    }

    #[test]
    fn regexes_are_anchored() {
        let m = parse(r#"job=~"api.*""#).unwrap();
        assert!(m.matches(&Labels::new([("job", "api-1")])));
        assert!(!m.matches(&Labels::new([("job", "my-api")])));
        assert!(parse("absent=\"\"").unwrap().matches(&Labels::default()));
    }
}
