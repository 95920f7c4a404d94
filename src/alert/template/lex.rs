//! Go text/template's lexer (Go 1.19): actions between `{{ }}`, trim
//! markers, comments, and Go's lexical error texts.

use super::fmt::quote;

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Kind {
    Error,
    Bool,
    Char,
    CharConstant,
    Complex,
    Assign,
    Declare,
    Eof,
    Field,
    Identifier,
    LeftDelim,
    LeftParen,
    Number,
    Pipe,
    RawString,
    RightDelim,
    RightParen,
    Space,
    String,
    Text,
    Variable,
    // Keywords.
    Block,
    Break,
    Continue,
    Dot,
    Define,
    Else,
    End,
    If,
    Nil,
    Range,
    Template,
    With,
}

impl Kind {
    pub fn is_keyword(self) -> bool {
        matches!(
            self,
            Kind::Block
                | Kind::Break
                | Kind::Continue
                | Kind::Dot
                | Kind::Define
                | Kind::Else
                | Kind::End
                | Kind::If
                | Kind::Nil
                | Kind::Range
                | Kind::Template
                | Kind::With
        )
    }
}

#[derive(Clone, Debug)]
pub struct Token {
    pub kind: Kind,
    pub pos: usize,
    pub val: String,
}

impl std::fmt::Display for Token {
    /// Go's `item.String()`, as parse errors quote tokens.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.kind {
            Kind::Eof => f.write_str("EOF"),
            Kind::Error => f.write_str(&self.val),
            k if k.is_keyword() => write!(f, "<{}>", self.val),
            _ if self.val.chars().count() > 10 => {
                let head: String = self.val.chars().take(10).collect();
                write!(f, "{}...", quote(&head))
            }
            _ => f.write_str(&quote(&self.val)),
        }
    }
}

const SPACE_CHARS: &[char] = &[' ', '\t', '\r', '\n'];

fn is_space(c: char) -> bool {
    SPACE_CHARS.contains(&c)
}

fn is_alphanumeric(c: char) -> bool {
    c == '_' || c.is_alphabetic() || c.is_numeric()
}

/// Go's `%#U`: `U+0023 '#'`.
fn unicode_format(c: char) -> String {
    format!("U+{:04X} '{c}'", c as u32)
}

pub struct Lexer<'a> {
    input: &'a str,
    pos: usize,
    start: usize,
    paren_depth: usize,
    tokens: Vec<Token>,
}

impl<'a> Lexer<'a> {
    /// Every token up to EOF or the first error, which ends the list.
    pub fn run(input: &'a str) -> Vec<Token> {
        let mut lexer = Lexer {
            input,
            pos: 0,
            start: 0,
            paren_depth: 0,
            tokens: Vec::new(),
        };
        if let Err(message) = lexer.lex_all() {
            lexer.tokens.push(Token {
                kind: Kind::Error,
                pos: lexer.start,
                val: message,
            });
        }
        lexer.tokens
    }

    fn rest(&self) -> &'a str {
        &self.input[self.pos..]
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn next(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        Some(c)
    }

    fn emit(&mut self, kind: Kind) {
        self.tokens.push(Token {
            kind,
            pos: self.start,
            val: self.input[self.start..self.pos].to_string(),
        });
        self.start = self.pos;
    }

    fn lex_all(&mut self) -> Result<(), String> {
        loop {
            // Text up to the next action.
            let Some(offset) = self.rest().find("{{") else {
                self.pos = self.input.len();
                if self.pos > self.start {
                    self.emit(Kind::Text);
                }
                self.emit(Kind::Eof);
                return Ok(());
            };
            self.pos += offset;
            let after_delim = &self.input[self.pos + 2..];
            let trim_left = has_left_trim_marker(after_delim);
            if self.pos > self.start {
                let text = &self.input[self.start..self.pos];
                let kept = if trim_left {
                    text.trim_end_matches(SPACE_CHARS)
                } else {
                    text
                };
                if !kept.is_empty() {
                    self.tokens.push(Token {
                        kind: Kind::Text,
                        pos: self.start,
                        val: kept.to_string(),
                    });
                }
            }
            self.start = self.pos;
            self.pos += 2;
            let after_marker = if trim_left { 2 } else { 0 };
            if self.input[self.pos + after_marker..].starts_with("/*") {
                self.pos += after_marker;
                self.start = self.pos;
                self.lex_comment()?;
            } else {
                self.emit(Kind::LeftDelim);
                self.pos += after_marker;
                self.start = self.pos;
                self.paren_depth = 0;
                self.lex_inside_action()?;
            }
        }
    }

    /// `(at right delimiter, with a trim marker)`.
    fn at_right_delim(&self) -> (bool, bool) {
        let rest = self.rest();
        if has_right_trim_marker(rest) && rest[2..].starts_with("}}") {
            return (true, true);
        }
        (rest.starts_with("}}"), false)
    }

    fn lex_comment(&mut self) -> Result<(), String> {
        self.pos += 2;
        let Some(end) = self.rest().find("*/") else {
            return Err("unclosed comment".into());
        };
        self.pos += end + 2;
        let (delim, trim) = self.at_right_delim();
        if !delim {
            return Err("comment ends before closing delimiter".into());
        }
        self.close_action(trim);
        Ok(())
    }

    /// Steps over `}}` (or ` -}}` and the white space after it).
    fn close_action(&mut self, trim: bool) {
        if trim {
            self.pos += 2;
        }
        self.pos += 2;
        if trim {
            let rest = self.rest();
            self.pos += rest.len() - rest.trim_start_matches(SPACE_CHARS).len();
        }
        self.start = self.pos;
    }

    fn lex_inside_action(&mut self) -> Result<(), String> {
        loop {
            let (delim, trim) = self.at_right_delim();
            if delim {
                if self.paren_depth != 0 {
                    return Err("unclosed left paren".into());
                }
                if trim {
                    self.pos += 2;
                    self.start = self.pos;
                }
                self.pos += 2;
                self.emit(Kind::RightDelim);
                if trim {
                    let rest = self.rest();
                    self.pos += rest.len() - rest.trim_start_matches(SPACE_CHARS).len();
                    self.start = self.pos;
                }
                return Ok(());
            }
            let Some(c) = self.next() else {
                return Err("unclosed action".into());
            };
            match c {
                _ if is_space(c) => self.lex_space(),
                '=' => self.emit(Kind::Assign),
                ':' => {
                    if self.next() != Some('=') {
                        return Err("expected :=".into());
                    }
                    self.emit(Kind::Declare);
                }
                '|' => self.emit(Kind::Pipe),
                '"' => self.lex_quote()?,
                '`' => self.lex_raw_quote()?,
                '$' => self.lex_variable()?,
                '\'' => self.lex_char()?,
                // At the very end a '.' is lexed as a number, as Go does.
                '.' if self.peek().is_some_and(|d| !d.is_ascii_digit()) => {
                    self.lex_field_or_variable(Kind::Field)?
                }
                '.' | '+' | '-' | '0'..='9' => {
                    self.pos = self.start;
                    self.lex_number()?;
                }
                _ if is_alphanumeric(c) => {
                    self.pos = self.start;
                    self.lex_identifier()?;
                }
                '(' => {
                    self.emit(Kind::LeftParen);
                    self.paren_depth += 1;
                }
                ')' => {
                    self.emit(Kind::RightParen);
                    if self.paren_depth == 0 {
                        return Err(format!("unexpected right paren {}", unicode_format(c)));
                    }
                    self.paren_depth -= 1;
                }
                _ if c.is_ascii() && !c.is_ascii_control() => self.emit(Kind::Char),
                _ => {
                    return Err(format!(
                        "unrecognized character in action: {}",
                        unicode_format(c)
                    ))
                }
            }
        }
    }

    fn lex_space(&mut self) {
        // One space is read; a lone space before `-}}` belongs to the marker.
        self.pos -= 1;
        let mut spaces = 0;
        while self.peek().is_some_and(is_space) {
            self.pos += 1;
            spaces += 1;
        }
        let before_last = &self.input[self.pos - 1..];
        if has_right_trim_marker(before_last) && before_last[2..].starts_with("}}") {
            self.pos -= 1;
            if spaces == 1 {
                return;
            }
        }
        self.emit(Kind::Space);
    }

    fn at_terminator(&self) -> bool {
        match self.peek() {
            None => true,
            Some(c) if is_space(c) => true,
            Some('.' | ',' | '|' | ':' | ')' | '(') => true,
            _ => self.rest().starts_with("}}"),
        }
    }

    fn lex_identifier(&mut self) -> Result<(), String> {
        while self.peek().is_some_and(is_alphanumeric) {
            self.next();
        }
        if !self.at_terminator() {
            return Err(format!(
                "bad character {}",
                unicode_format(self.peek().unwrap_or('\u{fffd}'))
            ));
        }
        let kind = match &self.input[self.start..self.pos] {
            "block" => Kind::Block,
            "break" => Kind::Break,
            "continue" => Kind::Continue,
            "define" => Kind::Define,
            "else" => Kind::Else,
            "end" => Kind::End,
            "if" => Kind::If,
            "range" => Kind::Range,
            "nil" => Kind::Nil,
            "template" => Kind::Template,
            "with" => Kind::With,
            "true" | "false" => Kind::Bool,
            _ => Kind::Identifier,
        };
        self.emit(kind);
        Ok(())
    }

    fn lex_variable(&mut self) -> Result<(), String> {
        if self.at_terminator() {
            self.emit(Kind::Variable);
            return Ok(());
        }
        self.lex_field_or_variable(Kind::Variable)
    }

    fn lex_field_or_variable(&mut self, kind: Kind) -> Result<(), String> {
        if self.at_terminator() {
            self.emit(if kind == Kind::Variable {
                Kind::Variable
            } else {
                Kind::Dot
            });
            return Ok(());
        }
        while self.peek().is_some_and(is_alphanumeric) {
            self.next();
        }
        if !self.at_terminator() {
            return Err(format!(
                "bad character {}",
                unicode_format(self.peek().unwrap_or('\u{fffd}'))
            ));
        }
        self.emit(kind);
        Ok(())
    }

    fn lex_char(&mut self) -> Result<(), String> {
        loop {
            match self.next() {
                Some('\\') => match self.next() {
                    Some('\n') | None => return Err("unterminated character constant".into()),
                    _ => {}
                },
                Some('\n') | None => return Err("unterminated character constant".into()),
                Some('\'') => break,
                _ => {}
            }
        }
        self.emit(Kind::CharConstant);
        Ok(())
    }

    fn lex_number(&mut self) -> Result<(), String> {
        if !self.scan_number() {
            return Err(format!(
                "bad number syntax: {}",
                quote(&self.input[self.start..self.pos])
            ));
        }
        if matches!(self.peek(), Some('+' | '-')) {
            if !self.scan_number() || !self.input[..self.pos].ends_with('i') {
                return Err(format!(
                    "bad number syntax: {}",
                    quote(&self.input[self.start..self.pos])
                ));
            }
            self.emit(Kind::Complex);
        } else {
            self.emit(Kind::Number);
        }
        Ok(())
    }

    fn accept(&mut self, valid: &str) -> bool {
        match self.peek() {
            Some(c) if valid.contains(c) => {
                self.next();
                true
            }
            _ => false,
        }
    }

    fn accept_run(&mut self, valid: &str) {
        while self.accept(valid) {}
    }

    fn scan_number(&mut self) -> bool {
        self.accept("+-");
        let mut digits = "0123456789_";
        if self.accept("0") {
            if self.accept("xX") {
                digits = "0123456789abcdefABCDEF_";
            } else if self.accept("oO") {
                digits = "01234567_";
            } else if self.accept("bB") {
                digits = "01_";
            }
        }
        self.accept_run(digits);
        if self.accept(".") {
            self.accept_run(digits);
        }
        if digits.len() == 11 && self.accept("eE") {
            self.accept("+-");
            self.accept_run("0123456789_");
        }
        if digits.len() == 23 && self.accept("pP") {
            self.accept("+-");
            self.accept_run("0123456789_");
        }
        self.accept("i");
        if self.peek().is_some_and(is_alphanumeric) {
            self.next();
            return false;
        }
        true
    }

    fn lex_quote(&mut self) -> Result<(), String> {
        loop {
            match self.next() {
                Some('\\') => match self.next() {
                    Some('\n') | None => return Err("unterminated quoted string".into()),
                    _ => {}
                },
                Some('\n') | None => return Err("unterminated quoted string".into()),
                Some('"') => break,
                _ => {}
            }
        }
        self.emit(Kind::String);
        Ok(())
    }

    fn lex_raw_quote(&mut self) -> Result<(), String> {
        loop {
            match self.next() {
                None => return Err("unterminated raw quoted string".into()),
                Some('`') => break,
                _ => {}
            }
        }
        self.emit(Kind::RawString);
        Ok(())
    }
}

fn has_left_trim_marker(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 2 && b[0] == b'-' && is_space(b[1] as char)
}

fn has_right_trim_marker(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 2 && is_space(b[0] as char) && b[1] == b'-'
}
