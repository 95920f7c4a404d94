//! The condition language of event rules' `where:`, small on purpose:
//!
//! ```text
//! cond    := and ("||" and)*
//! and     := not ("&&" not)*
//! not     := "!" not | "(" cond ")" | call | compare
//! compare := field op literal        op: == != =~ !~ < <= > >=
//! call    := is_local(field) | is_private(field)
//!          | starts_with(field, "text") | contains(field, "text")
//! ```
//!
//! A field is one of [`FIELDS`] (`comm`, `parent.comm`, `exe`, `peer`,
//! `port`...); a literal is a double-quoted string (`\"` and `\\` escaped)
//! or a number. `=~` and `!~` take a regular expression, anchored at both
//! ends as PromQL's are. Numeric fields compare with numbers, the others
//! with strings; `<`... only with numbers. A field the event does not have
//! (`peer` of an exec) makes its comparison or call false, whatever the
//! operator, so `!` over it is true.
//!
//! Everything is checked when the rule file loads: unknown fields,
//! mismatched types and bad regular expressions are errors there, never at
//! an event.

use std::net::IpAddr;

use regex::Regex;

use crate::collect::events::{Event, Value, FIELDS};

/// Fields holding numbers; every other field holds text.
const NUMERIC: &[&str] = &[
    "pid",
    "parent.pid",
    "port",
    "local_port",
    "sender_pid",
    "exit_code",
];

#[derive(Clone, Debug)]
pub enum Condition {
    /// An empty `where:`: every event of the kind.
    True,
    Or(Box<Condition>, Box<Condition>),
    And(Box<Condition>, Box<Condition>),
    Not(Box<Condition>),
    Compare {
        field: &'static str,
        op: Op,
        literal: Literal,
    },
    Call {
        function: Function,
        field: &'static str,
        text: String,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Match,
    NotMatch,
    Lt,
    Le,
    Gt,
    Ge,
}

#[derive(Clone, Debug)]
pub enum Literal {
    Text(String),
    Number(f64),
    Regex(Regex),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Function {
    /// A loopback or unspecified address: the machine itself.
    IsLocal,
    /// Loopback, RFC 1918, link-local, unique-local (fc00::/7).
    IsPrivate,
    StartsWith,
    Contains,
}

impl Condition {
    /// Parses a `where:`; the error says what was expected where.
    pub fn parse(text: &str) -> Result<Condition, String> {
        let tokens = lex(text)?;
        if tokens.is_empty() {
            return Ok(Condition::True);
        }
        let mut parser = Parser { tokens, at: 0 };
        let condition = parser.or()?;
        match parser.tokens.get(parser.at) {
            None => Ok(condition),
            Some(token) => Err(format!(
                "unexpected {} after a complete condition",
                token.shown()
            )),
        }
    }

    pub fn matches(&self, event: &Event) -> bool {
        match self {
            Condition::True => true,
            Condition::Or(a, b) => a.matches(event) || b.matches(event),
            Condition::And(a, b) => a.matches(event) && b.matches(event),
            Condition::Not(a) => !a.matches(event),
            Condition::Compare { field, op, literal } => match event.field(field) {
                Some(value) => compare(&value, *op, literal),
                None => false,
            },
            Condition::Call {
                function,
                field,
                text,
            } => match event.field(field) {
                Some(Value::Str(value)) => call(*function, &value, text),
                _ => false,
            },
        }
    }
}

fn compare(value: &Value, op: Op, literal: &Literal) -> bool {
    match (value, literal) {
        (Value::Str(value), Literal::Text(text)) => match op {
            Op::Eq => value == text,
            Op::Ne => value != text,
            _ => false,
        },
        (Value::Str(value), Literal::Regex(regex)) => regex.is_match(value) == (op == Op::Match),
        (Value::Num(value), Literal::Number(number)) => match op {
            Op::Eq => value == number,
            Op::Ne => value != number,
            Op::Lt => value < number,
            Op::Le => value <= number,
            Op::Gt => value > number,
            Op::Ge => value >= number,
            Op::Match | Op::NotMatch => false,
        },
        // The parser refuses every other pairing.
        _ => false,
    }
}

fn call(function: Function, value: &str, text: &str) -> bool {
    match function {
        Function::StartsWith => value.starts_with(text),
        Function::Contains => value.contains(text),
        Function::IsLocal => value
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.is_loopback() || ip.is_unspecified()),
        Function::IsPrivate => value.parse::<IpAddr>().is_ok_and(|ip| match ip {
            IpAddr::V4(v4) => v4.is_loopback() || v4.is_private() || v4.is_link_local(),
            IpAddr::V6(v6) => {
                v6.is_loopback()
                    || (v6.segments()[0] & 0xfe00) == 0xfc00
                    || (v6.segments()[0] & 0xffc0) == 0xfe80
            }
        }),
    }
}

#[derive(Clone, Debug, PartialEq)]
enum Token {
    Ident(String),
    Text(String),
    Number(f64),
    Symbol(&'static str),
}

impl Token {
    fn shown(&self) -> String {
        match self {
            Token::Ident(name) => format!("{name:?}"),
            Token::Text(text) => format!("the string {text:?}"),
            Token::Number(n) => format!("the number {n}"),
            Token::Symbol(s) => format!("{s:?}"),
        }
    }
}

const SYMBOLS: [&str; 14] = [
    "&&", "||", "==", "!=", "=~", "!~", "<=", ">=", "<", ">", "!", "(", ")", ",",
];

fn lex(text: &str) -> Result<Vec<Token>, String> {
    let mut tokens = Vec::new();
    let mut rest = text.trim_start();
    while !rest.is_empty() {
        if let Some(symbol) = SYMBOLS.iter().find(|s| rest.starts_with(**s)) {
            tokens.push(Token::Symbol(symbol));
            rest = &rest[symbol.len()..];
        } else if let Some(quoted) = rest.strip_prefix('"') {
            let mut value = String::new();
            let mut chars = quoted.char_indices();
            let end = loop {
                match chars.next() {
                    None => return Err(format!("unterminated string at {:?}", rest)),
                    Some((at, '"')) => break at,
                    Some((_, '\\')) => match chars.next() {
                        Some((_, c @ ('"' | '\\'))) => value.push(c),
                        // Kept as written: a regex's own escapes (\d, \.).
                        Some((_, c)) => {
                            value.push('\\');
                            value.push(c);
                        }
                        None => return Err("unterminated string".to_string()),
                    },
                    Some((_, c)) => value.push(c),
                }
            };
            tokens.push(Token::Text(value));
            rest = &quoted[end + 1..];
        } else {
            let end = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '.' || c == '-'))
                .unwrap_or(rest.len());
            if end == 0 {
                return Err(format!(
                    "unexpected character {:?}",
                    rest.chars().next().unwrap_or(' ')
                ));
            }
            let word = &rest[..end];
            tokens.push(match word.parse::<f64>() {
                Ok(number) => Token::Number(number),
                Err(_) => Token::Ident(word.to_string()),
            });
            rest = &rest[end..];
        }
        rest = rest.trim_start();
    }
    Ok(tokens)
}

struct Parser {
    tokens: Vec<Token>,
    at: usize,
}

impl Parser {
    fn next(&mut self) -> Option<Token> {
        let token = self.tokens.get(self.at).cloned();
        self.at += 1;
        token
    }

    fn eat(&mut self, symbol: &str) -> bool {
        if self.tokens.get(self.at) == Some(&Token::Symbol(symbol_of(symbol))) {
            self.at += 1;
            return true;
        }
        false
    }

    fn expect(&mut self, symbol: &str) -> Result<(), String> {
        if self.eat(symbol) {
            return Ok(());
        }
        Err(match self.tokens.get(self.at) {
            Some(token) => format!("expected {symbol:?}, found {}", token.shown()),
            None => format!("expected {symbol:?} at the end"),
        })
    }

    fn or(&mut self) -> Result<Condition, String> {
        let mut left = self.and()?;
        while self.eat("||") {
            left = Condition::Or(Box::new(left), Box::new(self.and()?));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Condition, String> {
        let mut left = self.not()?;
        while self.eat("&&") {
            left = Condition::And(Box::new(left), Box::new(self.not()?));
        }
        Ok(left)
    }

    fn not(&mut self) -> Result<Condition, String> {
        if self.eat("!") {
            return Ok(Condition::Not(Box::new(self.not()?)));
        }
        if self.eat("(") {
            let inner = self.or()?;
            self.expect(")")?;
            return Ok(inner);
        }
        let name = match self.next() {
            Some(Token::Ident(name)) => name,
            Some(other) => {
                return Err(format!(
                    "expected a field or a function, found {}",
                    other.shown()
                ))
            }
            None => return Err("expected a field or a function at the end".to_string()),
        };
        if self.eat("(") {
            return self.call(&name);
        }
        let field = field(&name)?;
        let op = match self.next() {
            Some(Token::Symbol(symbol)) => op(symbol)
                .ok_or_else(|| format!("expected a comparison after {name}, found {symbol:?}"))?,
            Some(other) => {
                return Err(format!(
                    "expected a comparison after {name}, found {}",
                    other.shown()
                ))
            }
            None => return Err(format!("expected a comparison after {name}")),
        };
        let numeric = NUMERIC.contains(&field);
        let literal = match (self.next(), numeric, op) {
            (Some(Token::Text(text)), false, Op::Match | Op::NotMatch) => {
                Literal::Regex(Regex::new(&format!("^(?:{text})$")).map_err(|err| {
                    format!(
                        "{name} {}: bad regular expression {text:?}: {err}",
                        op_text(op)
                    )
                })?)
            }
            (Some(Token::Text(text)), false, Op::Eq | Op::Ne) => Literal::Text(text),
            (Some(Token::Number(number)), true, Op::Match | Op::NotMatch) => {
                return Err(format!(
                    "{name} holds a number: =~ and !~ take text fields, not {number}"
                ))
            }
            (Some(Token::Number(number)), true, _) => Literal::Number(number),
            (Some(token), true, _) => {
                return Err(format!(
                    "{name} holds a number: compare it with a number, not {}",
                    token.shown()
                ))
            }
            (Some(Token::Text(_)), false, _) => {
                return Err(format!(
                    "{name} holds text: {} compares numbers",
                    op_text(op)
                ))
            }
            (Some(token), false, _) => {
                return Err(format!(
                    "{name} holds text: compare it with a \"string\", not {}",
                    token.shown()
                ))
            }
            (None, _, _) => return Err(format!("expected a value after {name} {}", op_text(op))),
        };
        Ok(Condition::Compare { field, op, literal })
    }

    fn call(&mut self, name: &str) -> Result<Condition, String> {
        let function = match name {
            "is_local" => Function::IsLocal,
            "is_private" => Function::IsPrivate,
            "starts_with" => Function::StartsWith,
            "contains" => Function::Contains,
            _ => {
                return Err(format!(
                "unknown function {name:?}: expected is_local, is_private, starts_with or contains"
            ))
            }
        };
        let field = match self.next() {
            Some(Token::Ident(name)) => field(&name)?,
            _ => return Err(format!("{name}() takes a field first")),
        };
        if NUMERIC.contains(&field) {
            return Err(format!(
                "{name}() takes a text field, and {field} holds a number"
            ));
        }
        let text = match function {
            Function::StartsWith | Function::Contains => {
                self.expect(",")?;
                match self.next() {
                    Some(Token::Text(text)) => text,
                    _ => return Err(format!("{name}() takes a \"string\" second")),
                }
            }
            Function::IsLocal | Function::IsPrivate => String::new(),
        };
        self.expect(")")?;
        Ok(Condition::Call {
            function,
            field,
            text,
        })
    }
}

fn symbol_of(symbol: &str) -> &'static str {
    SYMBOLS.into_iter().find(|s| *s == symbol).unwrap_or("")
}

fn field(name: &str) -> Result<&'static str, String> {
    FIELDS
        .iter()
        .map(|(field, _)| *field)
        .find(|field| *field == name)
        .ok_or_else(|| {
            let known: Vec<&str> = FIELDS.iter().map(|(f, _)| *f).collect();
            format!(
                "unknown field {name:?}: expected one of {}",
                known.join(", ")
            )
        })
}

fn op(symbol: &str) -> Option<Op> {
    Some(match symbol {
        "==" => Op::Eq,
        "!=" => Op::Ne,
        "=~" => Op::Match,
        "!~" => Op::NotMatch,
        "<" => Op::Lt,
        "<=" => Op::Le,
        ">" => Op::Gt,
        ">=" => Op::Ge,
        _ => return None,
    })
}

fn op_text(op: Op) -> &'static str {
    match op {
        Op::Eq => "==",
        Op::Ne => "!=",
        Op::Match => "=~",
        Op::NotMatch => "!~",
        Op::Lt => "<",
        Op::Le => "<=",
        Op::Gt => ">",
        Op::Ge => ">=",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collect::events::tests::event;
    use crate::collect::events::Kind;

    fn holds(text: &str, event: &Event) -> bool {
        Condition::parse(text).unwrap().matches(event)
    }

    #[test]
    fn compares_fields_with_regex_logic_and_functions() {
        let exec = event(Kind::Exec, 7, 1, 0);
        assert!(holds("", &exec));
        assert!(holds(
            r#"exe =~ ".*/(ba)?sh" && parent.comm == "nginx""#,
            &exec
        ));
        assert!(!holds(r#"exe =~ "sh""#, &exec), "anchored");
        assert!(holds(r#"exe !~ ".*python.*" || pid == 0"#, &exec));
        assert!(holds(
            r#"!(pid < 7) && pid >= 7 && unit == "nginx.service""#,
            &exec
        ));
        assert!(holds(
            r#"starts_with(args, "sh -c") && contains(exe, "bin")"#,
            &exec
        ));
        // A field the event lacks: false whatever the operator.
        assert!(!holds("is_local(peer)", &exec));
        assert!(holds("!is_local(peer)", &exec));
        assert!(!holds(r#"peer != "1.2.3.4""#, &exec));
        let connect = event(Kind::Connect, 7, 1, 0);
        assert!(holds(
            "!is_local(peer) && !is_private(peer) && port == 80",
            &connect
        ));
    }

    #[test]
    fn mistakes_are_named() {
        let err = |text: &str| Condition::parse(text).unwrap_err();
        assert!(
            err("exe = \"x\"").contains("unexpected character '='"),
            "{}",
            err("exe = \"x\"")
        );
        assert!(err("nope == 1").contains("unknown field \"nope\""));
        assert!(err("pid == \"1\"").contains("pid holds a number"));
        assert!(err("comm < \"a\"").contains("comm holds text"));
        assert!(err("exe =~ \"(\"").contains("bad regular expression"));
        assert!(err("is_far(peer)").contains("unknown function"));
        assert!(err("comm == \"a\" comm").contains("unexpected \"comm\""));
        assert!(err("(comm == \"a\"").contains("expected \")\""));
        assert!(err("comm == \"a").contains("unterminated"));
    }
}
