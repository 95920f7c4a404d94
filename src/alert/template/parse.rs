//! Go text/template's parser (Go 1.19, the Go Prometheus 2.42 is built
//! with): the same tree and the same error texts, and the literal rules
//! (`strconv.Unquote`, Go's number literals) it applies.

use std::collections::HashMap;

use super::fmt::underscores_ok;
use super::lex::{Kind, Lexer, Token};

/// The parsed templates: the top-level one and every `define`/`block`.
pub struct Parsed {
    pub root: Vec<Node>,
    pub defines: HashMap<String, Vec<Node>>,
}

/// A node of a template's list: text or an action.
pub enum Node {
    Text(String),
    Action(Pipe),
    If(Control),
    Range(Control),
    With(Control),
    Template {
        pos: usize,
        name: String,
        pipe: Option<Pipe>,
    },
    Break(usize),
    Continue(usize),
}

/// An `if`, `range` or `with`: its pipeline, its list and its `else` list.
pub struct Control {
    pub pipe: Pipe,
    pub list: Vec<Node>,
    pub else_list: Option<Vec<Node>>,
}

/// `$x := cmd | cmd …`.
pub struct Pipe {
    pub pos: usize,
    pub is_assign: bool,
    pub decl: Vec<String>,
    pub cmds: Vec<Command>,
}

/// One stage of a pipeline: an operand, then its arguments.
pub struct Command {
    pub pos: usize,
    pub args: Vec<Arg>,
}

pub enum Arg {
    /// `.A.B`
    Field {
        pos: usize,
        idents: Vec<String>,
    },
    /// `$x.A.B`: the variable's name is the first ident.
    Variable {
        pos: usize,
        idents: Vec<String>,
    },
    /// `(pipe).A.B`
    Chain {
        pos: usize,
        node: Box<Arg>,
        fields: Vec<String>,
    },
    Identifier {
        pos: usize,
        name: String,
    },
    Dot(usize),
    Nil(usize),
    Bool(usize, bool),
    Number(usize, Number),
    /// The literal as written, and its value.
    Str {
        pos: usize,
        quoted: String,
        text: String,
    },
    Pipe(Box<Pipe>),
}

/// A number literal and the Go types it can be (`parse.NumberNode`).
pub struct Number {
    pub text: String,
    pub int: Option<i64>,
    pub is_uint: bool,
    pub float: Option<f64>,
}

impl Arg {
    pub fn pos(&self) -> usize {
        match self {
            Arg::Field { pos, .. }
            | Arg::Variable { pos, .. }
            | Arg::Chain { pos, .. }
            | Arg::Identifier { pos, .. }
            | Arg::Str { pos, .. }
            | Arg::Dot(pos)
            | Arg::Nil(pos)
            | Arg::Bool(pos, _)
            | Arg::Number(pos, _) => *pos,
            Arg::Pipe(pipe) => pipe.pos,
        }
    }
}

// Go's node String() forms: error messages quote them.

impl std::fmt::Display for Arg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Arg::Field { idents, .. } => write!(f, ".{}", idents.join(".")),
            Arg::Variable { idents, .. } => f.write_str(&idents.join(".")),
            Arg::Chain { node, fields, .. } => {
                match node.as_ref() {
                    Arg::Pipe(pipe) => write!(f, "({pipe})")?,
                    other => write!(f, "{other}")?,
                }
                for field in fields {
                    write!(f, ".{field}")?;
                }
                Ok(())
            }
            Arg::Identifier { name, .. } => f.write_str(name),
            Arg::Dot(_) => f.write_str("."),
            Arg::Nil(_) => f.write_str("nil"),
            Arg::Bool(_, b) => write!(f, "{b}"),
            Arg::Number(_, n) => f.write_str(&n.text),
            Arg::Str { quoted, .. } => f.write_str(quoted),
            Arg::Pipe(pipe) => write!(f, "{pipe}"),
        }
    }
}

impl std::fmt::Display for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, arg) in self.args.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            match arg {
                Arg::Pipe(pipe) => write!(f, "({pipe})")?,
                other => write!(f, "{other}")?,
            }
        }
        Ok(())
    }
}

impl std::fmt::Display for Pipe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if !self.decl.is_empty() {
            write!(f, "{} := ", self.decl.join(", "))?;
        }
        for (i, cmd) in self.cmds.iter().enumerate() {
            if i > 0 {
                f.write_str(" | ")?;
            }
            write!(f, "{cmd}")?;
        }
        Ok(())
    }
}

impl std::fmt::Display for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let control = |f: &mut std::fmt::Formatter<'_>, keyword: &str, c: &Control| {
            write!(f, "{{{{{keyword} {}}}}}", c.pipe)?;
            write_list(f, &c.list)?;
            if let Some(else_list) = &c.else_list {
                f.write_str("{{else}}")?;
                write_list(f, else_list)?;
            }
            f.write_str("{{end}}")
        };
        match self {
            Node::Text(text) => f.write_str(text),
            Node::Action(pipe) => write!(f, "{{{{{pipe}}}}}"),
            Node::If(c) => control(f, "if", c),
            Node::Range(c) => control(f, "range", c),
            Node::With(c) => control(f, "with", c),
            Node::Template { name, pipe, .. } => match pipe {
                Some(pipe) => write!(f, "{{{{template {} {pipe}}}}}", super::fmt::quote(name)),
                None => write!(f, "{{{{template {}}}}}", super::fmt::quote(name)),
            },
            Node::Break(_) => f.write_str("{{break}}"),
            Node::Continue(_) => f.write_str("{{continue}}"),
        }
    }
}

fn write_list(f: &mut std::fmt::Formatter<'_>, list: &[Node]) -> std::fmt::Result {
    list.iter().try_for_each(|node| write!(f, "{node}"))
}

/// How deep parentheses and control structures may nest: Go has no limit,
/// but a template from a user's file must not exhaust sonde's stack.
const MAX_NESTING: usize = 100;

/// Parses `text` as Go's `template.New(name).Funcs(…).Parse(text)` does;
/// `has_function` says which identifiers name functions.
pub fn parse(
    name: &str,
    text: &str,
    has_function: &dyn Fn(&str) -> bool,
) -> Result<Parsed, String> {
    let mut parser = Parser {
        name,
        text,
        tokens: Lexer::run(text),
        next: 0,
        furthest: 0,
        vars: vec!["$".to_string()],
        range_depth: 0,
        nesting: 0,
        has_function,
        defines: HashMap::new(),
    };
    let root = parser.parse_top()?;
    // The top-level template is never empty (the alert prefix defines
    // variables), so a `define` of its name is always a second definition.
    if parser.defines.get(name).is_some_and(|d| !is_empty_tree(d)) && !is_empty_tree(&root) {
        return Err(parser.error(&format!(
            "template: multiple definition of template {}",
            super::fmt::quote(name)
        )));
    }
    Ok(Parsed {
        root,
        defines: parser.defines,
    })
}

/// Go's `IsEmptyTree`: nothing but white-space text.
fn is_empty_tree(list: &[Node]) -> bool {
    list.iter().all(|node| match node {
        Node::Text(text) => text.trim().is_empty(),
        _ => false,
    })
}

struct Parser<'a> {
    name: &'a str,
    text: &'a str,
    tokens: Vec<Token>,
    next: usize,
    /// The furthest token read: Go reports its line.
    furthest: usize,
    vars: Vec<String>,
    range_depth: usize,
    nesting: usize,
    has_function: &'a dyn Fn(&str) -> bool,
    defines: HashMap<String, Vec<Node>>,
}

type ParseResult<T> = Result<T, String>;

impl Parser<'_> {
    fn error(&self, message: &str) -> String {
        let pos = self.tokens.get(self.furthest).map_or(0, |t| t.pos);
        let line = 1 + self.text[..pos.min(self.text.len())].matches('\n').count();
        format!("template: {}:{line}: {message}", self.name)
    }

    fn fail<T>(&self, message: &str) -> ParseResult<T> {
        Err(self.error(message))
    }

    fn next_token(&mut self) -> Token {
        let index = self.next.min(self.tokens.len() - 1);
        self.next = index + 1;
        self.furthest = self.furthest.max(index);
        self.tokens[index].clone()
    }

    fn backup(&mut self) {
        self.next -= 1;
    }

    fn peek(&mut self) -> Token {
        let token = self.next_token();
        self.backup();
        token
    }

    fn next_non_space(&mut self) -> Token {
        loop {
            let token = self.next_token();
            if token.kind != Kind::Space {
                return token;
            }
        }
    }

    fn peek_non_space(&mut self) -> Token {
        let token = self.next_non_space();
        self.backup();
        token
    }

    fn expect(&mut self, kind: Kind, context: &str) -> ParseResult<Token> {
        let token = self.next_non_space();
        if token.kind != kind {
            return self.unexpected(&token, context);
        }
        Ok(token)
    }

    fn unexpected<T>(&self, token: &Token, context: &str) -> ParseResult<T> {
        if token.kind == Kind::Error {
            return self.fail(&token.val);
        }
        self.fail(&format!("unexpected {token} in {context}"))
    }

    fn nest(&mut self) -> ParseResult<()> {
        self.nesting += 1;
        if self.nesting > MAX_NESTING {
            return self.fail(&format!("nesting deeper than {MAX_NESTING}"));
        }
        Ok(())
    }

    fn parse_top(&mut self) -> ParseResult<Vec<Node>> {
        let mut root = Vec::new();
        while self.peek().kind != Kind::Eof {
            if self.peek().kind == Kind::LeftDelim {
                let delim_at = self.next;
                self.next_token();
                if self.next_non_space().kind == Kind::Define {
                    self.parse_definition()?;
                    continue;
                }
                self.next = delim_at;
            }
            match self.text_or_action()? {
                Item::Node(node) => root.push(node),
                Item::End => return self.fail("unexpected {{end}}"),
                Item::Else | Item::ElseIf => return self.fail("unexpected {{else}}"),
            }
        }
        Ok(root)
    }

    fn parse_definition(&mut self) -> ParseResult<()> {
        const CONTEXT: &str = "define clause";
        let token = self.next_non_space();
        let name = self.template_name(&token, CONTEXT)?;
        self.expect(Kind::RightDelim, CONTEXT)?;
        let saved_vars = std::mem::replace(&mut self.vars, vec!["$".to_string()]);
        let (list, end) = self.item_list()?;
        self.vars = saved_vars;
        if !matches!(end, Item::End) {
            return self.fail(&format!("unexpected {} in {CONTEXT}", end.text()));
        }
        self.add_definition(name, list)
    }

    fn add_definition(&mut self, name: String, list: Vec<Node>) -> ParseResult<()> {
        match self.defines.get(&name) {
            Some(existing) if !is_empty_tree(existing) && !is_empty_tree(&list) => {
                self.fail(&format!(
                    "template: multiple definition of template {}",
                    super::fmt::quote(&name)
                ))
            }
            Some(_) if is_empty_tree(&list) => Ok(()),
            _ => {
                self.defines.insert(name, list);
                Ok(())
            }
        }
    }

    fn item_list(&mut self) -> ParseResult<(Vec<Node>, Item)> {
        let mut list = Vec::new();
        while self.peek_non_space().kind != Kind::Eof {
            match self.text_or_action()? {
                Item::Node(node) => list.push(node),
                end => return Ok((list, end)),
            }
        }
        self.fail("unexpected EOF")
    }

    fn text_or_action(&mut self) -> ParseResult<Item> {
        let token = self.next_non_space();
        match token.kind {
            Kind::Text => Ok(Item::Node(Node::Text(token.val))),
            Kind::LeftDelim => self.action(),
            _ => self.unexpected(&token, "input"),
        }
    }

    fn action(&mut self) -> ParseResult<Item> {
        let token = self.next_non_space();
        let node = match token.kind {
            Kind::Block => self.block_control()?,
            Kind::Break => self.loop_control("{{break}}", Node::Break(token.pos))?,
            Kind::Continue => self.loop_control("{{continue}}", Node::Continue(token.pos))?,
            Kind::Else => return self.else_control(),
            Kind::End => {
                self.expect(Kind::RightDelim, "end")?;
                return Ok(Item::End);
            }
            Kind::If => Node::If(self.parse_control(true, "if")?),
            Kind::Range => Node::Range(self.parse_control(false, "range")?),
            Kind::Template => self.template_control()?,
            Kind::With => Node::With(self.parse_control(false, "with")?),
            _ => {
                self.backup();
                Node::Action(self.pipeline("command", Kind::RightDelim)?)
            }
        };
        Ok(Item::Node(node))
    }

    fn loop_control(&mut self, context: &str, node: Node) -> ParseResult<Node> {
        let next = self.next_non_space();
        if next.kind != Kind::RightDelim {
            return self.unexpected(&next, context);
        }
        if self.range_depth == 0 {
            return self.fail(&format!("{} outside {{{{range}}}}", context));
        }
        Ok(node)
    }

    fn else_control(&mut self) -> ParseResult<Item> {
        if self.peek_non_space().kind == Kind::If {
            // `{{else if …}}`: the `if` stays pending for parse_control.
            return Ok(Item::ElseIf);
        }
        self.expect(Kind::RightDelim, "else")?;
        Ok(Item::Else)
    }

    fn parse_control(&mut self, allow_else_if: bool, context: &str) -> ParseResult<Control> {
        self.nest()?;
        let vars = self.vars.len();
        let pipe = self.pipeline(context, Kind::RightDelim)?;
        // `break` and `continue` belong to a range's body, not its else.
        let in_range = usize::from(context == "range");
        self.range_depth += in_range;
        let (list, next) = self.item_list()?;
        self.range_depth -= in_range;
        let else_list = match next {
            Item::End => None,
            Item::ElseIf if allow_else_if => {
                self.next_non_space(); // the `if`
                Some(vec![Node::If(self.parse_control(true, "if")?)])
            }
            Item::Else | Item::ElseIf => {
                if matches!(next, Item::ElseIf) {
                    // Not after `with` or `range`: Go meets the `if` as input.
                    let token = self.next_non_space();
                    return self.unexpected(&token, "input");
                }
                let (else_list, end) = self.item_list()?;
                if !matches!(end, Item::End) {
                    return self.fail(&format!("expected end; found {}", end.text()));
                }
                Some(else_list)
            }
            Item::Node(_) => unreachable!("item_list returns only at end or else"),
        };
        self.vars.truncate(vars);
        self.nesting -= 1;
        Ok(Control {
            pipe,
            list,
            else_list,
        })
    }

    fn block_control(&mut self) -> ParseResult<Node> {
        const CONTEXT: &str = "block clause";
        let token = self.next_non_space();
        let name = self.template_name(&token, CONTEXT)?;
        let pipe = self.pipeline(CONTEXT, Kind::RightDelim)?;
        let saved_vars = std::mem::replace(&mut self.vars, vec!["$".to_string()]);
        let (list, end) = self.item_list()?;
        self.vars = saved_vars;
        if !matches!(end, Item::End) {
            return self.fail(&format!("unexpected {} in {CONTEXT}", end.text()));
        }
        self.add_definition(name.clone(), list)?;
        Ok(Node::Template {
            pos: token.pos,
            name,
            pipe: Some(pipe),
        })
    }

    fn template_control(&mut self) -> ParseResult<Node> {
        const CONTEXT: &str = "template clause";
        let token = self.next_non_space();
        let name = self.template_name(&token, CONTEXT)?;
        let pipe = if self.next_non_space().kind != Kind::RightDelim {
            self.backup();
            Some(self.pipeline(CONTEXT, Kind::RightDelim)?)
        } else {
            None
        };
        Ok(Node::Template {
            pos: token.pos,
            name,
            pipe,
        })
    }

    fn template_name(&self, token: &Token, context: &str) -> ParseResult<String> {
        match token.kind {
            Kind::String | Kind::RawString => unquote(&token.val).map_err(|e| self.error(&e)),
            _ => self.unexpected(token, context),
        }
    }

    /// A pipeline up to and including its `end` token: `}}`, or `)` for a
    /// parenthesized one.
    fn pipeline(&mut self, context: &str, end: Kind) -> ParseResult<Pipe> {
        let pos = self.peek_non_space().pos;
        let mut pipe = Pipe {
            pos,
            is_assign: false,
            decl: Vec::new(),
            cmds: Vec::new(),
        };
        self.declarations(&mut pipe, context)?;
        loop {
            let token = self.next_non_space();
            match token.kind {
                kind if kind == end => {
                    self.check_pipeline(&pipe, context)?;
                    return Ok(pipe);
                }
                Kind::Bool
                | Kind::CharConstant
                | Kind::Complex
                | Kind::Dot
                | Kind::Field
                | Kind::Identifier
                | Kind::Number
                | Kind::Nil
                | Kind::RawString
                | Kind::String
                | Kind::Variable
                | Kind::LeftParen => {
                    self.backup();
                    let cmd = self.command()?;
                    pipe.cmds.push(cmd);
                }
                _ => return self.unexpected(&token, context),
            }
        }
    }

    /// `$x :=`, `$x =`, and range's `$i, $e :=`.
    fn declarations(&mut self, pipe: &mut Pipe, context: &str) -> ParseResult<()> {
        loop {
            let variable = self.peek_non_space();
            if variable.kind != Kind::Variable {
                return Ok(());
            }
            let variable_at = self.next;
            self.next_non_space();
            let next = self.peek_non_space();
            match next.kind {
                Kind::Assign | Kind::Declare => {
                    pipe.is_assign = next.kind == Kind::Assign;
                    self.next_non_space();
                    pipe.decl.push(variable.val.clone());
                    self.vars.push(variable.val);
                    return Ok(());
                }
                Kind::Char if next.val == "," => {
                    self.next_non_space();
                    pipe.decl.push(variable.val.clone());
                    self.vars.push(variable.val);
                    if context == "range" && pipe.decl.len() < 2 {
                        match self.peek_non_space().kind {
                            Kind::Variable | Kind::RightDelim | Kind::RightParen => continue,
                            _ => return self.fail("range can only initialize variables"),
                        }
                    }
                    return self.fail(&format!("too many declarations in {context}"));
                }
                _ => {
                    self.next = variable_at;
                    return Ok(());
                }
            }
        }
    }

    fn check_pipeline(&self, pipe: &Pipe, context: &str) -> ParseResult<()> {
        if pipe.cmds.is_empty() {
            return self.fail(&format!("missing value for {context}"));
        }
        for (i, cmd) in pipe.cmds.iter().enumerate().skip(1) {
            if matches!(
                cmd.args[0],
                Arg::Bool(..) | Arg::Dot(_) | Arg::Nil(_) | Arg::Number(..) | Arg::Str { .. }
            ) {
                return self.fail(&format!(
                    "non executable command in pipeline stage {}",
                    i + 1
                ));
            }
        }
        Ok(())
    }

    fn command(&mut self) -> ParseResult<Command> {
        let pos = self.peek_non_space().pos;
        let mut cmd = Command {
            pos,
            args: Vec::new(),
        };
        loop {
            self.peek_non_space();
            if let Some(operand) = self.operand()? {
                cmd.args.push(operand);
            }
            let token = self.next_token();
            match token.kind {
                Kind::Space => continue,
                Kind::Error => return self.fail(&token.val),
                Kind::RightDelim | Kind::RightParen => self.backup(),
                Kind::Pipe => {}
                _ => return self.fail(&format!("unexpected {token} in operand")),
            }
            break;
        }
        if cmd.args.is_empty() {
            return self.fail("empty command");
        }
        Ok(cmd)
    }

    fn operand(&mut self) -> ParseResult<Option<Arg>> {
        let Some(node) = self.term()? else {
            return Ok(None);
        };
        if self.peek().kind != Kind::Field {
            return Ok(Some(node));
        }
        let chain_pos = self.peek().pos;
        let mut fields = Vec::new();
        while self.peek().kind == Kind::Field {
            fields.push(self.next_token().val[1..].to_string());
        }
        Ok(Some(match node {
            // Go places the merged node where the chain starts.
            Arg::Field { mut idents, .. } => {
                idents.extend(fields);
                Arg::Field {
                    pos: chain_pos,
                    idents,
                }
            }
            Arg::Variable { mut idents, .. } => {
                idents.extend(fields);
                Arg::Variable {
                    pos: chain_pos,
                    idents,
                }
            }
            Arg::Bool(..) | Arg::Str { .. } | Arg::Number(..) | Arg::Nil(_) | Arg::Dot(_) => {
                return self.fail(&format!(
                    "unexpected . after term {}",
                    super::fmt::quote(&node.to_string())
                ));
            }
            other => Arg::Chain {
                pos: chain_pos,
                node: Box::new(other),
                fields,
            },
        }))
    }

    fn term(&mut self) -> ParseResult<Option<Arg>> {
        let token = self.next_non_space();
        let pos = token.pos;
        Ok(Some(match token.kind {
            Kind::Error => return self.fail(&token.val),
            Kind::Identifier => {
                if !(self.has_function)(&token.val) {
                    return self.fail(&format!(
                        "function {} not defined",
                        super::fmt::quote(&token.val)
                    ));
                }
                Arg::Identifier {
                    pos,
                    name: token.val,
                }
            }
            Kind::Dot => Arg::Dot(pos),
            Kind::Nil => Arg::Nil(pos),
            Kind::Variable => {
                let idents: Vec<String> = token.val.split('.').map(str::to_string).collect();
                if !self.vars.iter().any(|v| *v == idents[0]) {
                    return self.fail(&format!(
                        "undefined variable {}",
                        super::fmt::quote(&idents[0])
                    ));
                }
                Arg::Variable { pos, idents }
            }
            Kind::Field => Arg::Field {
                pos,
                idents: token.val[1..].split('.').map(str::to_string).collect(),
            },
            Kind::Bool => Arg::Bool(pos, token.val == "true"),
            Kind::CharConstant | Kind::Complex | Kind::Number => {
                let number = parse_number(&token.val, token.kind).map_err(|e| self.error(&e))?;
                Arg::Number(pos, number)
            }
            Kind::LeftParen => {
                self.nest()?;
                let pipe = self.pipeline("parenthesized pipeline", Kind::RightParen)?;
                self.nesting -= 1;
                Arg::Pipe(Box::new(pipe))
            }
            Kind::String | Kind::RawString => {
                let text = unquote(&token.val).map_err(|e| self.error(&e))?;
                Arg::Str {
                    pos,
                    quoted: token.val,
                    text,
                }
            }
            _ => {
                self.backup();
                return Ok(None);
            }
        }))
    }
}

/// What `text_or_action` finds: a node, or the end of a list.
enum Item {
    Node(Node),
    End,
    Else,
    ElseIf,
}

impl Item {
    fn text(&self) -> String {
        match self {
            Item::Node(node) => node.to_string(),
            Item::End => "{{end}}".into(),
            Item::Else | Item::ElseIf => "{{else}}".into(),
        }
    }
}

/// Go's `parse.NumberNode` rules: a literal is an int, a uint and/or a
/// float according to what it can be read as.
fn parse_number(text: &str, kind: Kind) -> Result<Number, String> {
    let mut number = Number {
        text: text.to_string(),
        int: None,
        is_uint: false,
        float: None,
    };
    if kind == Kind::CharConstant {
        let c = unquote_char(text)?;
        number.int = Some(c as i64);
        number.is_uint = true;
        number.float = Some(c as u32 as f64);
        return Ok(number);
    }
    if kind == Kind::Complex || text.ends_with('i') {
        return Err(format!(
            "complex numbers are not supported: {}",
            super::fmt::quote(text)
        ));
    }
    let as_uint = parse_go_uint(text);
    let as_int = parse_go_int(text);
    if let Some(i) = as_int {
        number.int = Some(i);
        number.is_uint = as_uint.is_some() || i == 0;
        number.float = Some(i as f64);
    } else if let Some(u) = as_uint {
        number.is_uint = true;
        number.float = Some(u as f64);
    } else if let Ok(f) = super::fmt::parse_float(text) {
        if !text.contains(['.', 'e', 'E', 'p', 'P']) {
            return Err(format!("integer overflow: {}", super::fmt::quote(text)));
        }
        number.float = Some(f);
        if f.fract() == 0.0 && f.abs() < 9.2e18 {
            number.int = Some(f as i64);
            number.is_uint = f >= 0.0;
        }
    }
    if number.int.is_none() && !number.is_uint && number.float.is_none() {
        return Err(format!(
            "illegal number syntax: {}",
            super::fmt::quote(text)
        ));
    }
    Ok(number)
}

/// Digits of a Go integer literal with base prefix 0x, 0o, 0b or 0 (octal).
fn split_int_literal(text: &str) -> Option<(bool, u32, String)> {
    let (negative, body) = match text.as_bytes().first()? {
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, text),
    };
    if !underscores_ok(body) {
        return None;
    }
    let lower = body.to_ascii_lowercase().replace('_', "");
    let (radix, digits) = if let Some(d) = lower.strip_prefix("0x") {
        (16, d)
    } else if let Some(d) = lower.strip_prefix("0o") {
        (8, d)
    } else if let Some(d) = lower.strip_prefix("0b") {
        (2, d)
    } else if lower.len() > 1 && lower.starts_with('0') {
        (8, &lower[1..])
    } else {
        (10, lower.as_str())
    };
    if digits.is_empty() {
        return None;
    }
    Some((negative, radix, digits.to_string()))
}

fn parse_go_uint(text: &str) -> Option<u64> {
    let (negative, radix, digits) = split_int_literal(text)?;
    if negative || text.starts_with('+') {
        return None;
    }
    u64::from_str_radix(&digits, radix).ok()
}

fn parse_go_int(text: &str) -> Option<i64> {
    let (negative, radix, digits) = split_int_literal(text)?;
    let magnitude = u64::from_str_radix(&digits, radix).ok()?;
    if negative {
        0i64.checked_sub_unsigned(magnitude)
    } else {
        i64::try_from(magnitude).ok()
    }
}

/// `strconv.Unquote` of a double-quoted or raw Go string literal.
pub fn unquote(literal: &str) -> Result<String, String> {
    const INVALID: &str = "invalid syntax";
    if let Some(raw) = literal.strip_prefix('`') {
        let body = raw.strip_suffix('`').ok_or(INVALID)?;
        return Ok(body.replace('\r', ""));
    }
    let body = literal
        .strip_prefix('"')
        .and_then(|s| s.strip_suffix('"'))
        .ok_or(INVALID)?;
    let mut bytes = Vec::with_capacity(body.len());
    let mut chars = body.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            if c == '"' || c == '\n' {
                return Err(INVALID.into());
            }
            let mut buf = [0u8; 4];
            bytes.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            continue;
        }
        unescape(&mut chars, '"', &mut bytes).ok_or(INVALID)?;
    }
    Ok(String::from_utf8(bytes)
        .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()))
}

/// One escape after a backslash, appended as bytes (`\xff` may not be UTF-8).
fn unescape(chars: &mut std::str::Chars, quote: char, out: &mut Vec<u8>) -> Option<()> {
    let simple = |c: char| -> Option<u8> {
        Some(match c {
            'a' => 7,
            'b' => 8,
            'f' => 12,
            'n' => b'\n',
            'r' => b'\r',
            't' => b'\t',
            'v' => 11,
            '\\' => b'\\',
            _ => return None,
        })
    };
    let c = chars.next()?;
    if let Some(b) = simple(c) {
        out.push(b);
        return Some(());
    }
    if c == quote {
        out.push(c as u8);
        return Some(());
    }
    let take_hex = |chars: &mut std::str::Chars, n: usize| -> Option<u32> {
        let digits: String = chars.take(n).collect();
        if digits.len() != n {
            return None;
        }
        u32::from_str_radix(&digits, 16).ok()
    };
    match c {
        'x' => out.push(take_hex(chars, 2)? as u8),
        'u' | 'U' => {
            let code = take_hex(chars, if c == 'u' { 4 } else { 8 })?;
            let ch = char::from_u32(code)?;
            let mut buf = [0u8; 4];
            out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
        }
        '0'..='7' => {
            let rest: String = chars.take(2).collect();
            let code = u32::from_str_radix(&format!("{c}{rest}"), 8).ok()?;
            if rest.len() != 2 || code > 255 {
                return None;
            }
            out.push(code as u8);
        }
        _ => return None,
    }
    Some(())
}

/// The rune of a Go character literal such as `'a'` or `'\n'`.
fn unquote_char(literal: &str) -> Result<char, String> {
    let malformed = || format!("malformed character constant: {literal}");
    let body = literal
        .strip_prefix('\'')
        .and_then(|s| s.strip_suffix('\''))
        .ok_or_else(malformed)?;
    let mut chars = body.chars();
    let c = match chars.next() {
        Some('\\') => {
            let mut bytes = Vec::new();
            unescape(&mut chars, '\'', &mut bytes).ok_or_else(malformed)?;
            let text = String::from_utf8(bytes).map_err(|_| malformed())?;
            text.chars().next().ok_or_else(malformed)?
        }
        Some(c) => c,
        None => return Err(malformed()),
    };
    if chars.next().is_some() {
        return Err(malformed());
    }
    Ok(c)
}
