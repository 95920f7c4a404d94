//! Go's regexp (RE2 syntax, Perl flags) on the regex crate: the pattern is
//! rewritten where the dialects part, and refused with Go's error text
//! where Go refuses it.

/// Compiles a Go regular expression; `Err` is Go's `error parsing regexp: …`.
pub fn compile(pattern: &str) -> Result<regex::Regex, String> {
    let translated = translate(pattern)
        .map_err(|(code, expr)| format!("error parsing regexp: {code}: `{expr}`"))?;
    regex::Regex::new(&translated).map_err(|e| crate_error(pattern, &e.to_string()))
}

/// Go's error code and the text it blames.
type SyntaxError = (&'static str, String);

const POSIX_CLASSES: &[&str] = &[
    "alnum", "alpha", "ascii", "blank", "cntrl", "digit", "graph", "lower", "print", "punct",
    "space", "upper", "word", "xdigit",
];

/// Characters the regex crate reads as syntax, escaped when Go means them literally.
const CRATE_META: &str = "\\.+*?()|[]{}^$#&-~";

/// Go's `\d`, `\s`, `\w` are ASCII-only where the regex crate's are
/// Unicode: spelled out, as class items (inside a class) or as classes.
fn perl_class(escape: char) -> Option<(&'static str, &'static str)> {
    Some(match escape {
        'd' => ("0-9", "[0-9]"),
        'D' => ("[^0-9]", "[^0-9]"),
        's' => (r"\t\n\f\r ", r"[\t\n\f\r ]"),
        'S' => (r"[^\t\n\f\r ]", r"[^\t\n\f\r ]"),
        'w' => ("0-9A-Za-z_", "[0-9A-Za-z_]"),
        'W' => ("[^0-9A-Za-z_]", "[^0-9A-Za-z_]"),
        _ => return None,
    })
}

fn push_literal(out: &mut String, c: char) {
    if CRATE_META.contains(c) {
        out.push('\\');
        out.push(c);
    } else if c.is_control() {
        out.push_str(&format!("\\x{{{:x}}}", c as u32));
    } else {
        out.push(c);
    }
}

/// The pattern in the regex crate's dialect, or Go's syntax error, found
/// left to right as Go's parser finds them.
fn translate(pattern: &str) -> Result<String, SyntaxError> {
    let mut out = String::with_capacity(pattern.len() + 16);
    let mut chars = pattern.char_indices().peekable();
    // Outside classes: whether a repetition has something to repeat, where
    // the repetition just before began (Go refuses `a**`), and where a
    // flags-only group just written began (`a(?i)*` repeats the `a`).
    let mut can_repeat = false;
    let mut previous_repeat: Option<usize> = None;
    let mut flags_at: Option<usize> = None;
    let mut open_groups = 0usize;
    let mut names: Vec<&str> = Vec::new();
    while let Some((i, c)) = chars.next() {
        let mut repeat_end = None;
        let mut wrote_flags = None;
        match c {
            '\\' => {
                escape(pattern, &mut chars, &mut out, false)?;
                can_repeat = true;
            }
            '[' => {
                class(pattern, i, &mut chars, &mut out)?;
                can_repeat = true;
            }
            '(' if pattern[i..].starts_with("(?") => {
                let rest = &pattern[i + 2..];
                if let Some(named) = rest.strip_prefix("P<") {
                    let name_end = named.find('>');
                    let name = &named[..name_end.unwrap_or(named.len())];
                    if name_end.is_none()
                        || name.is_empty()
                        || !name.chars().all(|c| c.is_alphanumeric() || c == '_')
                    {
                        let end = name_end.map_or(pattern.len(), |e| i + 4 + e + 1);
                        return Err(("invalid named capture", pattern[i..end].to_string()));
                    }
                    // Go takes a name twice, the regex crate not: later
                    // groups get a name no replacement can refer to.
                    if names.contains(&name) {
                        out.push_str(&format!("(?P<{name}__{}>", names.len()));
                    } else {
                        out.push_str(&format!("(?P<{name}>"));
                    }
                    names.push(name);
                    while chars
                        .peek()
                        .is_some_and(|(j, _)| *j < i + 4 + name.len() + 1)
                    {
                        chars.next();
                    }
                    open_groups += 1;
                    can_repeat = false;
                } else {
                    let Some(flags_end) = rest.find([':', ')']) else {
                        return Err((
                            "invalid or unsupported Perl syntax",
                            pattern[i..].to_string(),
                        ));
                    };
                    if let Some((at, bad)) = rest[..flags_end]
                        .char_indices()
                        .find(|(_, f)| !matches!(f, 'i' | 'm' | 's' | 'U' | '-'))
                    {
                        let end = i + 2 + at + bad.len_utf8();
                        return Err((
                            "invalid or unsupported Perl syntax",
                            pattern[i..end].to_string(),
                        ));
                    }
                    let end = i + 3 + flags_end;
                    if rest[flags_end..].starts_with(':') {
                        open_groups += 1;
                        can_repeat = false;
                    } else {
                        wrote_flags = Some(out.len());
                    }
                    out.push_str(&pattern[i..end]);
                    while chars.peek().is_some_and(|(j, _)| *j < end) {
                        chars.next();
                    }
                }
            }
            '(' => {
                out.push(c);
                open_groups += 1;
                can_repeat = false;
            }
            ')' => {
                if open_groups == 0 {
                    return Err(("unexpected )", pattern.to_string()));
                }
                open_groups -= 1;
                out.push(c);
                can_repeat = true;
            }
            '|' => {
                out.push(c);
                can_repeat = false;
            }
            '*' | '+' | '?' => repeat_end = Some(i + 1),
            '{' => match brace_repeat_len(&pattern[i..]) {
                Some(len) => {
                    let braces = &pattern[i..i + len];
                    let counts: Vec<Option<u32>> = braces[1..len - 1]
                        .split(',')
                        .map(|n| n.parse().ok())
                        .collect();
                    let low = counts[0].unwrap_or(u32::MAX);
                    let high = counts.get(1).copied().unwrap_or(Some(low));
                    if low > 1000 || high.is_some_and(|h| h > 1000 || h < low) {
                        return Err(("invalid repeat count", braces.to_string()));
                    }
                    while chars.peek().is_some_and(|(j, _)| *j < i + len) {
                        chars.next();
                    }
                    repeat_end = Some(i + len);
                }
                // Not a repeat count: Go reads the brace as itself.
                None => {
                    out.push_str("\\{");
                    can_repeat = true;
                }
            },
            // Everything else means the same to both: `.`, `^`, `$`, literals.
            _ => {
                out.push(c);
                can_repeat = true;
            }
        }
        let Some(mut end) = repeat_end else {
            previous_repeat = None;
            flags_at = wrote_flags;
            continue;
        };
        // A `?` right after an operator makes it lazy, not a second operator.
        if chars.peek().map(|(_, c)| *c) == Some('?') {
            chars.next();
            end += 1;
        }
        if let Some(start) = previous_repeat {
            return Err((
                "invalid nested repetition operator",
                pattern[start..end].to_string(),
            ));
        }
        if !can_repeat {
            return Err((
                "missing argument to repetition operator",
                pattern[i..end].to_string(),
            ));
        }
        match flags_at.take() {
            Some(at) => out.insert_str(at, &pattern[i..end]),
            None => out.push_str(&pattern[i..end]),
        }
        previous_repeat = Some(i);
    }
    if open_groups > 0 {
        return Err(("missing closing )", pattern.to_string()));
    }
    Ok(out)
}

/// The escape after a backslash (already read), inside a class or not.
fn escape(
    pattern: &str,
    chars: &mut std::iter::Peekable<std::str::CharIndices>,
    out: &mut String,
    in_class: bool,
) -> Result<(), SyntaxError> {
    let Some((at, e)) = chars.next() else {
        return Err(("trailing backslash at end of expression", String::new()));
    };
    let invalid = || Err(("invalid escape sequence", format!("\\{e}")));
    if let Some((inside, outside)) = perl_class(e) {
        out.push_str(if in_class { inside } else { outside });
        return Ok(());
    }
    match e {
        'b' | 'B' if !in_class => {
            // Go's word boundary is ASCII's.
            out.push_str(&format!("(?-u:\\{e})"));
        }
        'A' | 'z' if !in_class => {
            out.push('\\');
            out.push(e);
        }
        'Q' if !in_class => {
            // Literal text up to `\E`.
            let rest = &pattern[at + 1..];
            let end = rest.find("\\E").unwrap_or(rest.len());
            rest[..end].chars().for_each(|c| push_literal(out, c));
            let skip_to = at + 1 + (end + 2).min(rest.len());
            while chars.peek().is_some_and(|(j, _)| *j < skip_to) {
                chars.next();
            }
        }
        'p' | 'P' => {
            out.push('\\');
            out.push(e);
            if chars.peek().map(|(_, c)| *c) == Some('{') {
                for (_, c) in chars.by_ref() {
                    out.push(c);
                    if c == '}' {
                        break;
                    }
                }
            } else if let Some((_, c)) = chars.next() {
                out.push(c);
            }
        }
        'x' | 'a' | 'f' | 't' | 'n' | 'r' | 'v' => {
            out.push('\\');
            out.push(e);
        }
        '0'..='7' => {
            // Octal, as Go reads it: `\0`, or up to three digits when the
            // first is not alone (a lone `\1` would be a backreference).
            let digits: String = pattern[at..]
                .chars()
                .take(3)
                .take_while(|d| ('0'..='7').contains(d))
                .collect();
            if e != '0' && digits.len() == 1 {
                return invalid();
            }
            for _ in 1..digits.len() {
                chars.next();
            }
            let code = u32::from_str_radix(&digits, 8).unwrap_or(0);
            out.push_str(&format!("\\x{{{code:x}}}"));
        }
        _ if e.is_ascii() && !e.is_ascii_alphanumeric() => push_literal(out, e),
        _ => return invalid(),
    }
    Ok(())
}

/// A character class from its `[` (already read) through its `]`.
fn class(
    pattern: &str,
    start: usize,
    chars: &mut std::iter::Peekable<std::str::CharIndices>,
    out: &mut String,
) -> Result<(), SyntaxError> {
    out.push('[');
    if chars.peek().map(|(_, c)| *c) == Some('^') {
        chars.next();
        out.push('^');
    }
    let mut first = true;
    while let Some((i, c)) = chars.next() {
        if c != ']' || first {
            check_range(pattern, i)?;
        }
        match c {
            ']' if !first => {
                out.push(']');
                return Ok(());
            }
            '\\' => escape(pattern, chars, out, true)?,
            '[' if chars.peek().map(|(_, c)| *c) == Some(':') => {
                let end = pattern[i..].find(":]").map_or(pattern.len(), |e| i + e + 2);
                let posix = &pattern[i..end];
                let name = posix.trim_start_matches("[:").trim_end_matches(":]");
                if !POSIX_CLASSES.contains(&name.trim_start_matches('^')) {
                    return Err(("invalid character class range", posix.to_string()));
                }
                out.push_str(posix);
                while chars.peek().is_some_and(|(j, _)| *j < end) {
                    chars.next();
                }
            }
            // `[`, `&`, `~` and a leading `]` are literal to Go, syntax to the crate.
            '[' | '&' | '~' | ']' => {
                out.push('\\');
                out.push(c);
            }
            _ => out.push(c),
        }
        first = false;
    }
    Err(("missing closing ]", pattern[start..].to_string()))
}

/// One item of a class: a single character (and where it ends), or a
/// class such as `\d` or `\pL`.
enum ClassItem {
    Char(char, usize),
    Class,
    Other,
}

fn class_item(pattern: &str, at: usize) -> ClassItem {
    let mut rest = pattern[at..].chars();
    match rest.next() {
        Some('\\') => {}
        Some(c) => return ClassItem::Char(c, at + c.len_utf8()),
        None => return ClassItem::Other,
    }
    let Some(e) = rest.next() else {
        return ClassItem::Other;
    };
    let after = at + 1 + e.len_utf8();
    let control = |c: u32| ClassItem::Char(char::from_u32(c).unwrap_or('\0'), after);
    match e {
        'd' | 'D' | 's' | 'S' | 'w' | 'W' | 'p' | 'P' => ClassItem::Class,
        'a' => control(7),
        'f' => control(12),
        't' => control(9),
        'n' => control(10),
        'r' => control(13),
        'v' => control(11),
        'x' => {
            let tail = &pattern[after..];
            let (digits, end) = match tail.strip_prefix('{') {
                Some(braced) => match braced.find('}') {
                    Some(close) => (&braced[..close], after + close + 2),
                    None => return ClassItem::Other,
                },
                None => (tail.get(..2).unwrap_or(""), after + 2),
            };
            match u32::from_str_radix(digits, 16)
                .ok()
                .and_then(char::from_u32)
            {
                Some(c) => ClassItem::Char(c, end),
                None => ClassItem::Other,
            }
        }
        _ if e.is_ascii() && !e.is_ascii_alphanumeric() => ClassItem::Char(e, after),
        _ => ClassItem::Other,
    }
}

/// Refuses a range whose ends are out of order (`z-a`) or whose end is a
/// class (`a-\w`), as Go does, for the class item at `at`.
fn check_range(pattern: &str, at: usize) -> Result<(), SyntaxError> {
    let ClassItem::Char(low, low_end) = class_item(pattern, at) else {
        return Ok(());
    };
    let after_dash = low_end + 1;
    if !pattern[low_end..].starts_with('-')
        || pattern[after_dash..].starts_with(']')
        || after_dash >= pattern.len()
    {
        return Ok(());
    }
    match class_item(pattern, after_dash) {
        ClassItem::Char(high, high_end) if high < low => Err((
            "invalid character class range",
            pattern[at..high_end].to_string(),
        )),
        ClassItem::Class => {
            let escape: String = pattern[after_dash..].chars().take(2).collect();
            Err(("invalid escape sequence", escape))
        }
        _ => Ok(()),
    }
}

/// The length of `{n}`, `{n,}` or `{n,m}` at the start of `s`, if it is one
/// (otherwise Go reads the brace as a literal).
fn brace_repeat_len(s: &str) -> Option<usize> {
    let close = s.find('}')?;
    let inner = &s[1..close];
    let (low, high) = inner.split_once(',').unwrap_or((inner, "0"));
    let digits = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
    (digits(low) && (high.is_empty() || digits(high))).then_some(close + 1)
}

/// Go's text for the errors only the regex crate finds (groups out of
/// balance, unknown Unicode classes).
fn crate_error(pattern: &str, message: &str) -> String {
    let (code, expr) = if message.contains("unclosed group") {
        ("missing closing )", pattern.to_string())
    } else if message.contains("unopened group") {
        ("unexpected )", pattern.to_string())
    } else if message.contains("Unicode") {
        let from = pattern
            .find("\\p")
            .or_else(|| pattern.find("\\P"))
            .unwrap_or(0);
        let rest = &pattern[from..];
        let len = match rest.get(2..3) {
            Some("{") => rest.find('}').map_or(rest.len(), |e| e + 1),
            _ => rest.char_indices().nth(3).map_or(rest.len(), |(e, _)| e),
        };
        ("invalid character class range", rest[..len].to_string())
    } else {
        let reason = message
            .lines()
            .last()
            .unwrap_or(message)
            .trim_start_matches("error: ");
        return format!("error parsing regexp: {reason}");
    };
    format!("error parsing regexp: {code}: `{expr}`")
}
