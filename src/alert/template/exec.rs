//! Go text/template's execution (Go 1.19): walking the tree, evaluating
//! pipelines, calling functions with Go's argument checks, and reporting
//! errors as `template: NAME:LINE:COL: executing "NAME" at <NODE>: …`.

use std::rc::Rc;

use super::fmt::{print_value, quote};
use super::parse::{Arg, Command, Control, Node, Number, Parsed, Pipe};
use super::value::Value;
use super::{builtins, functions, notification, time, QueryFn};

/// What functions may use beyond their arguments, and which functions
/// there are.
pub struct Env<'a> {
    pub query: QueryFn<'a>,
    pub timestamp_ms: i64,
    pub external_url: &'a str,
    /// The functions beyond Go's own: Prometheus's or Alertmanager's.
    pub functions: &'static [Function],
    /// Actions print as html/template prints them in element content
    /// (escaped unless `safeHtml`), as Alertmanager renders HTML messages.
    pub html: bool,
}

/// A parameter's Go type, which decides how an argument is checked.
#[derive(Clone, Copy)]
pub enum Param {
    Str,
    /// `interface{}` or `reflect.Value`: anything goes.
    Any,
    Samples,
    Sample,
    /// `[]string`.
    Strings,
}

impl Param {
    fn type_name(self) -> &'static str {
        match self {
            Param::Str => "string",
            Param::Any => "interface {}",
            Param::Samples => "template.queryResult",
            Param::Sample => "*template.sample",
            Param::Strings => "[]string",
        }
    }

    /// The zero value an untyped nil becomes, if the type can be nil.
    fn nil_value(self) -> Option<Value> {
        match self {
            Param::Str => None,
            Param::Any => Some(Value::Nil),
            Param::Samples => Some(Value::Samples(Rc::default())),
            Param::Sample => Some(Value::Sample(None)),
            Param::Strings => Some(Value::Strings(Rc::default())),
        }
    }
}

/// A function or method callable from a template.
pub struct Function {
    pub name: &'static str,
    pub params: &'static [Param],
    pub variadic: Option<Param>,
    pub call: fn(&Env, Vec<Value>) -> Result<Value, String>,
}

/// Whether an alert template may call `name` (the parser's question).
pub fn has_function(name: &str) -> bool {
    find_function(functions::FUNCTIONS, name).is_some()
}

/// Go's function `name`, or one of `functions`.
pub fn find_function(functions: &'static [Function], name: &str) -> Option<&'static Function> {
    builtins::BUILTINS
        .iter()
        .chain(functions)
        .find(|f| f.name == name)
}

/// How deep templates, control structures and pipelines may nest while
/// executing: a recursive `template` must end in an error, not a crash.
const MAX_DEPTH: usize = 100;
/// Nodes walked and commands evaluated before execution gives up.
const MAX_STEPS: usize = 1_000_000;
/// The most output one expansion may produce.
pub const MAX_OUTPUT: usize = 4 << 20;
/// The most text function calls may produce in one expansion, kept or not:
/// it bounds the time a template can spend building strings it drops.
const MAX_PRODUCED: usize = 64 << 20;

/// Executes the parsed template `name` (whose source is `source`) on `dot`.
pub fn execute(
    name: &str,
    source: &str,
    parsed: &Parsed,
    dot: Value,
    env: &Env,
) -> Result<String, String> {
    let mut state = State {
        parse_name: name,
        source,
        parsed,
        env,
        template: name.to_string(),
        vars: vec![("$".to_string(), dot.clone())],
        out: String::new(),
        at: At::Nothing,
        depth: 0,
        steps: 0,
        produced: 0,
    };
    state.walk_list(&dot, &parsed.root)?;
    Ok(state.out)
}

/// The node being evaluated, which errors name.
#[derive(Clone, Copy)]
enum At<'a> {
    Nothing,
    Arg(&'a Arg),
    Command(&'a Command),
    Pipe(&'a Pipe),
    Node(&'a Node),
}

impl At<'_> {
    fn position_and_text(&self) -> Option<(usize, String)> {
        match self {
            At::Nothing => None,
            At::Arg(arg) => Some((arg.pos(), arg.to_string())),
            At::Command(cmd) => Some((cmd.pos, cmd.to_string())),
            At::Pipe(pipe) => Some((pipe.pos, pipe.to_string())),
            At::Node(node) => {
                let pos = match node {
                    Node::Action(pipe) => pipe.pos,
                    Node::If(c) | Node::Range(c) | Node::With(c) => c.pipe.pos,
                    Node::Template { pos, .. } | Node::Break(pos) | Node::Continue(pos) => *pos,
                    Node::Text(_) => 0,
                };
                Some((pos, node.to_string()))
            }
        }
    }
}

/// What a walk tells the enclosing `range`.
#[derive(PartialEq)]
enum Flow {
    Normal,
    Break,
    Continue,
}

type Exec<T> = Result<T, String>;

struct State<'a> {
    parse_name: &'a str,
    source: &'a str,
    parsed: &'a Parsed,
    env: &'a Env<'a>,
    /// The template executing now: the top-level one or a `define`d one.
    template: String,
    vars: Vec<(String, Value)>,
    out: String,
    at: At<'a>,
    depth: usize,
    steps: usize,
    produced: usize,
}

impl<'a> State<'a> {
    fn error(&self, message: &str) -> String {
        match self.at.position_and_text() {
            None => format!("template: {}: {message}", self.template),
            Some((pos, text)) => {
                let before = &self.source[..pos.min(self.source.len())];
                let line = 1 + before.matches('\n').count();
                let column = before.rfind('\n').map_or(pos, |nl| pos - nl - 1);
                format!(
                    "template: {}:{line}:{column}: executing {} at <{text}>: {message}",
                    self.parse_name,
                    quote(&self.template)
                )
            }
        }
    }

    fn fail<T>(&self, message: &str) -> Exec<T> {
        Err(self.error(message))
    }

    fn step(&mut self) -> Exec<()> {
        self.steps += 1;
        if self.steps > MAX_STEPS {
            return self.fail(&format!("execution exceeded {MAX_STEPS} steps"));
        }
        Ok(())
    }

    fn descend(&mut self) -> Exec<()> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return self.fail(&format!("exceeded maximum template depth ({MAX_DEPTH})"));
        }
        Ok(())
    }

    fn write(&mut self, text: &str) -> Exec<()> {
        if self.out.len() + text.len() > MAX_OUTPUT {
            return self.fail(&format!("output exceeds {MAX_OUTPUT} bytes"));
        }
        self.out.push_str(text);
        Ok(())
    }

    fn walk_list(&mut self, dot: &Value, list: &'a [Node]) -> Exec<Flow> {
        for node in list {
            let flow = self.walk(dot, node)?;
            if flow != Flow::Normal {
                return Ok(flow);
            }
        }
        Ok(Flow::Normal)
    }

    fn walk(&mut self, dot: &Value, node: &'a Node) -> Exec<Flow> {
        self.step()?;
        self.at = At::Node(node);
        match node {
            Node::Text(text) => self.write(text)?,
            Node::Action(pipe) => {
                let value = self.eval_pipeline(dot, pipe)?;
                if pipe.decl.is_empty() {
                    self.at = At::Node(node);
                    let text = print_value(&value);
                    if self.env.html && !matches!(value, Value::Html(_)) {
                        self.write(&notification::escape_html(&text))?;
                    } else {
                        self.write(&text)?;
                    }
                }
            }
            Node::If(control) => return self.walk_if_or_with(false, dot, control),
            Node::With(control) => return self.walk_if_or_with(true, dot, control),
            Node::Range(control) => return self.walk_range(dot, node, control),
            Node::Template { name, pipe, .. } => {
                self.walk_template(dot, node, name, pipe.as_ref())?
            }
            Node::Break(_) => return Ok(Flow::Break),
            Node::Continue(_) => return Ok(Flow::Continue),
        }
        Ok(Flow::Normal)
    }

    fn walk_if_or_with(&mut self, is_with: bool, dot: &Value, control: &'a Control) -> Exec<Flow> {
        self.descend()?;
        let mark = self.vars.len();
        let value = self.eval_pipeline(dot, &control.pipe)?;
        let flow = if value.is_true() {
            self.walk_list(if is_with { &value } else { dot }, &control.list)?
        } else if let Some(else_list) = &control.else_list {
            self.walk_list(dot, else_list)?
        } else {
            Flow::Normal
        };
        self.vars.truncate(mark);
        self.depth -= 1;
        Ok(flow)
    }

    fn walk_range(&mut self, dot: &Value, node: &'a Node, control: &'a Control) -> Exec<Flow> {
        self.descend()?;
        self.at = At::Node(node);
        let outer_mark = self.vars.len();
        let value = self.eval_pipeline(dot, &control.pipe)?;
        let mark = self.vars.len();
        let items: Vec<(Value, Value)> = match &value {
            Value::Samples(samples) => samples
                .iter()
                .enumerate()
                .map(|(i, s)| (Value::Int(i as i64), Value::Sample(Some(s.clone()))))
                .collect(),
            Value::StrMap(map) | Value::Kv(map) => map
                .iter()
                .map(|(k, v)| (Value::Str(k.clone()), Value::Str(v.clone())))
                .collect(),
            Value::Strings(items) => indexed(items.iter().map(|s| Value::Str(s.clone()))),
            Value::Pairs(pairs) => indexed(pairs.iter().map(|p| Value::Pair(Rc::new(p.clone())))),
            Value::Alerts { list, .. } => {
                indexed(list.iter().map(|a| Value::NotifiedAlert(a.clone())))
            }
            Value::AnyMap(map) => map
                .iter()
                .map(|(k, v)| (Value::Str(k.clone()), v.clone()))
                .collect(),
            Value::Nil => Vec::new(),
            other => {
                return self.fail(&format!("range can't iterate over {}", print_value(other)));
            }
        };
        if items.is_empty() {
            if let Some(else_list) = &control.else_list {
                self.walk_list(dot, else_list)?;
            }
        }
        let declared = control.pipe.decl.len();
        for (index, element) in items {
            self.step()?;
            if declared > 0 {
                self.vars[mark - 1].1 = element.clone();
            }
            if declared > 1 {
                self.vars[mark - 2].1 = index;
            }
            let flow = self.walk_list(&element, &control.list)?;
            self.vars.truncate(mark);
            if flow == Flow::Break {
                break;
            }
        }
        self.vars.truncate(outer_mark);
        self.depth -= 1;
        Ok(Flow::Normal)
    }

    fn walk_template(
        &mut self,
        dot: &Value,
        node: &'a Node,
        name: &str,
        pipe: Option<&'a Pipe>,
    ) -> Exec<()> {
        self.at = At::Node(node);
        let Some(list) = self.parsed.defines.get(name) else {
            return self.fail(&format!("template {} not defined", quote(name)));
        };
        self.descend()?;
        let new_dot = match pipe {
            Some(pipe) => self.eval_pipeline(dot, pipe)?,
            None => Value::Nil,
        };
        // No dynamic scoping: a template sees only its own `$`.
        let vars = std::mem::replace(&mut self.vars, vec![("$".to_string(), new_dot.clone())]);
        let template = std::mem::replace(&mut self.template, name.to_string());
        let result = self.walk_list(&new_dot, list);
        self.vars = vars;
        self.template = template;
        result?;
        self.depth -= 1;
        Ok(())
    }

    fn eval_pipeline(&mut self, dot: &Value, pipe: &'a Pipe) -> Exec<Value> {
        self.descend()?;
        self.at = At::Pipe(pipe);
        let mut value = None;
        for cmd in &pipe.cmds {
            value = Some(match self.eval_command(dot, cmd, value)? {
                Value::NilInterface => Value::Nil,
                other => other,
            });
        }
        let value = value.unwrap_or(Value::Nil);
        for variable in &pipe.decl {
            if pipe.is_assign {
                match self
                    .vars
                    .iter_mut()
                    .rev()
                    .find(|(name, _)| name == variable)
                {
                    Some(slot) => slot.1 = value.clone(),
                    None => return self.fail(&format!("undefined variable: {variable}")),
                }
            } else {
                self.vars.push((variable.clone(), value.clone()));
            }
        }
        self.depth -= 1;
        Ok(value)
    }

    fn not_a_function(&self, args: &[Arg], final_value: &Option<Value>) -> Exec<()> {
        if args.len() > 1 || final_value.is_some() {
            return self.fail(&format!("can't give argument to non-function {}", args[0]));
        }
        Ok(())
    }

    fn eval_command(
        &mut self,
        dot: &Value,
        cmd: &'a Command,
        final_value: Option<Value>,
    ) -> Exec<Value> {
        self.step()?;
        let first = &cmd.args[0];
        match first {
            Arg::Field { idents, .. } => {
                self.at = At::Arg(first);
                return self.eval_field_chain(
                    dot,
                    dot.clone(),
                    first,
                    idents,
                    &cmd.args,
                    final_value,
                );
            }
            Arg::Chain { .. } => return self.eval_chain(dot, first, &cmd.args, final_value),
            Arg::Identifier { name, .. } => {
                return self.eval_function(
                    dot,
                    first,
                    At::Command(cmd),
                    name,
                    &cmd.args,
                    final_value,
                );
            }
            Arg::Pipe(pipe) => {
                self.not_a_function(&cmd.args, &final_value)?;
                return self.eval_pipeline(dot, pipe);
            }
            Arg::Variable { .. } => return self.eval_variable(dot, first, &cmd.args, final_value),
            _ => {}
        }
        self.at = At::Arg(first);
        self.not_a_function(&cmd.args, &final_value)?;
        match first {
            Arg::Bool(_, b) => Ok(Value::Bool(*b)),
            Arg::Dot(_) => Ok(dot.clone()),
            Arg::Nil(_) => self.fail("nil is not a command"),
            Arg::Number(_, number) => self.ideal_constant(first, number),
            Arg::Str { text, .. } => Ok(Value::Str(text.clone())),
            _ => self.fail(&format!(
                "can't evaluate command {}",
                quote(&first.to_string())
            )),
        }
    }

    /// A number literal where no type is expected: its syntax picks the type.
    fn ideal_constant(&mut self, arg: &'a Arg, number: &Number) -> Exec<Value> {
        self.at = At::Arg(arg);
        let text = &number.text;
        let is_hex_int = text.len() > 2
            && text.starts_with('0')
            && matches!(text.as_bytes()[1], b'x' | b'X')
            && !text.contains(['p', 'P']);
        let looks_float =
            !is_hex_int && !text.starts_with('\'') && text.contains(['.', 'e', 'E', 'p', 'P']);
        match (number.float, number.int) {
            (Some(f), _) if looks_float => Ok(Value::Float(f)),
            (_, Some(i)) => Ok(Value::Int(i)),
            _ if number.is_uint => self.fail(&format!("{text} overflows int")),
            _ => Ok(Value::Nil),
        }
    }

    fn eval_chain(
        &mut self,
        dot: &Value,
        chain: &'a Arg,
        args: &'a [Arg],
        final_value: Option<Value>,
    ) -> Exec<Value> {
        let Arg::Chain { node, fields, .. } = chain else {
            unreachable!("eval_chain takes chains")
        };
        self.at = At::Arg(chain);
        // Go leaves errors on the chain's fields pointing at the last node
        // evaluated inside its receiver.
        let receiver = self.eval_arg(dot, Param::Any, node)?;
        self.eval_field_chain(dot, receiver, chain, fields, args, final_value)
    }

    fn eval_variable(
        &mut self,
        dot: &Value,
        variable: &'a Arg,
        args: &'a [Arg],
        final_value: Option<Value>,
    ) -> Exec<Value> {
        let Arg::Variable { idents, .. } = variable else {
            unreachable!("eval_variable takes variables")
        };
        self.at = At::Arg(variable);
        let Some(value) = self
            .vars
            .iter()
            .rev()
            .find(|(n, _)| *n == idents[0])
            .map(|(_, v)| v.clone())
        else {
            return self.fail(&format!("undefined variable: {}", idents[0]));
        };
        if idents.len() == 1 {
            self.not_a_function(args, &final_value)?;
            return Ok(value);
        }
        self.eval_field_chain(dot, value, variable, &idents[1..], args, final_value)
    }

    fn eval_field_chain(
        &mut self,
        dot: &Value,
        mut receiver: Value,
        node: &'a Arg,
        idents: &[String],
        args: &'a [Arg],
        final_value: Option<Value>,
    ) -> Exec<Value> {
        let (last, leading) = idents.split_last().expect("a field chain has fields");
        for ident in leading {
            receiver = self.eval_field(dot, ident, node, &[], None, receiver)?;
        }
        self.eval_field(dot, last, node, args, final_value, receiver)
    }

    fn eval_field(
        &mut self,
        dot: &Value,
        name: &str,
        node: &'a Arg,
        args: &'a [Arg],
        final_value: Option<Value>,
        receiver: Value,
    ) -> Exec<Value> {
        // Go looks for a method first, then a field or a map key.
        let method = match &receiver {
            Value::Time(_) => time::time_method(name),
            other => notification::method(other, name),
        };
        if let Some(method) = method {
            return self.eval_call(
                dot,
                method,
                Some(receiver),
                At::Arg(node),
                name,
                args,
                final_value,
            );
        }
        let has_args = args.len() > 1 || final_value.is_some();
        let struct_field = |value: Option<Value>| -> Exec<Value> {
            match value {
                Some(_) if has_args => self.fail(&format!(
                    "{name} has arguments but cannot be invoked as function"
                )),
                Some(value) => Ok(value),
                None => self.fail(&format!(
                    "can't evaluate field {name} in type {}",
                    receiver.type_name()
                )),
            }
        };
        match &receiver {
            Value::Nil => Ok(Value::Nil),
            Value::Alert(alert) => struct_field(match name {
                "Labels" => Some(Value::StrMap(alert.labels.clone())),
                "ExternalLabels" => Some(Value::StrMap(alert.external_labels.clone())),
                "ExternalURL" => Some(Value::Str(alert.external_url.clone())),
                "Value" => Some(Value::Float(alert.value)),
                _ => None,
            }),
            Value::Sample(Some(sample)) => struct_field(match name {
                "Labels" => Some(Value::StrMap(sample.labels.clone())),
                "Value" => Some(Value::Float(sample.value)),
                _ => None,
            }),
            Value::Sample(None) if matches!(name, "Labels" | "Value") => {
                self.fail(&format!("nil pointer evaluating *template.sample.{name}"))
            }
            Value::Notification(data) => struct_field(notification::data_field(data, name)),
            Value::NotifiedAlert(alert) => struct_field(notification::alert_field(alert, name)),
            Value::Pair(pair) => struct_field(match name {
                "Name" => Some(Value::Str(pair.0.clone())),
                "Value" => Some(Value::Str(pair.1.clone())),
                _ => None,
            }),
            Value::StrMap(_) | Value::AnyMap(_) | Value::Kv(_) if has_args => {
                self.fail(&format!("{name} is not a method but has arguments"))
            }
            Value::StrMap(map) | Value::Kv(map) => {
                Ok(Value::Str(map.get(name).cloned().unwrap_or_default()))
            }
            Value::AnyMap(map) => Ok(match map.get(name) {
                None | Some(Value::Nil) => Value::NilInterface,
                Some(value) => value.clone(),
            }),
            Value::NilInterface => {
                self.fail(&format!("nil pointer evaluating interface {{}}.{name}"))
            }
            other => self.fail(&format!(
                "can't evaluate field {name} in type {}",
                other.type_name()
            )),
        }
    }

    fn eval_function(
        &mut self,
        dot: &Value,
        identifier: &'a Arg,
        call_node: At<'a>,
        name: &str,
        args: &'a [Arg],
        final_value: Option<Value>,
    ) -> Exec<Value> {
        self.at = At::Arg(identifier);
        let Some(function) = find_function(self.env.functions, name) else {
            return self.fail(&format!("{} is not a defined function", quote(name)));
        };
        self.eval_call(dot, function, None, call_node, name, args, final_value)
    }

    /// Calls a function (or a method, with its receiver) as Go's `evalCall`
    /// does: argument count, then each argument checked against its type,
    /// the pipeline's value last.
    #[allow(clippy::too_many_arguments)]
    fn eval_call(
        &mut self,
        dot: &Value,
        function: &'static Function,
        receiver: Option<Value>,
        call_node: At<'a>,
        name: &str,
        args: &'a [Arg],
        final_value: Option<Value>,
    ) -> Exec<Value> {
        let args = args.get(1..).unwrap_or(&[]);
        let count = args.len() + usize::from(final_value.is_some());
        let fixed = function.params.len();
        match function.variadic {
            Some(_) if count < fixed => {
                return self.fail(&format!(
                    "wrong number of args for {name}: want at least {fixed} got {}",
                    args.len()
                ));
            }
            None if count != fixed => {
                return self.fail(&format!(
                    "wrong number of args for {name}: want {fixed} got {count}"
                ));
            }
            _ => {}
        }
        if matches!(function.name, "and" | "or") && receiver.is_none() {
            return self.and_or(dot, function.name == "or", args, final_value);
        }
        let param = |i: usize| {
            function
                .params
                .get(i)
                .copied()
                .or(function.variadic)
                .unwrap_or(Param::Any)
        };
        let mut argv: Vec<Value> = receiver.into_iter().collect();
        for (i, arg) in args.iter().enumerate() {
            argv.push(self.eval_arg(dot, param(i), arg)?);
        }
        if let Some(value) = final_value {
            argv.push(self.validate(value, param(count - 1))?);
        }
        match (function.call)(self.env, argv) {
            Ok(value) => {
                self.produced += value.as_str().map_or(0, str::len);
                if self.produced > MAX_PRODUCED {
                    self.at = call_node;
                    return self.fail(&format!("function results exceed {MAX_PRODUCED} bytes"));
                }
                Ok(value)
            }
            Err(error) => {
                self.at = call_node;
                self.fail(&format!("error calling {name}: {error}"))
            }
        }
    }

    /// `and` and `or` stop at the first argument that settles the answer.
    fn and_or(
        &mut self,
        dot: &Value,
        is_or: bool,
        args: &'a [Arg],
        final_value: Option<Value>,
    ) -> Exec<Value> {
        let mut value = Value::Nil;
        for arg in args {
            value = self.eval_arg(dot, Param::Any, arg)?;
            if value.is_true() == is_or {
                return Ok(value);
            }
        }
        Ok(final_value.unwrap_or(value))
    }

    /// Go's `validateType`: an argument's value must have the parameter's type.
    fn validate(&self, value: Value, param: Param) -> Exec<Value> {
        let fits = match (param, &value) {
            (Param::Any, Value::NilInterface) => return Ok(Value::Nil),
            (Param::Any, _) => true,
            (_, Value::Nil) => {
                return match param.nil_value() {
                    Some(zero) => Ok(zero),
                    None => self.fail(&format!("invalid value; expected {}", param.type_name())),
                };
            }
            (Param::Str, Value::Str(_)) => true,
            (Param::Samples, Value::Samples(_)) => true,
            (Param::Sample, Value::Sample(_)) => true,
            (Param::Strings, Value::Strings(_)) => true,
            _ => false,
        };
        if !fits {
            return self.fail(&format!(
                "wrong type for value; expected {}; got {}",
                param.type_name(),
                value.type_name()
            ));
        }
        Ok(value)
    }

    fn eval_arg(&mut self, dot: &Value, param: Param, arg: &'a Arg) -> Exec<Value> {
        self.at = At::Arg(arg);
        let value = match arg {
            Arg::Dot(_) => dot.clone(),
            Arg::Nil(_) => {
                return match param.nil_value() {
                    Some(zero) => Ok(zero),
                    None => self.fail(&format!("cannot assign nil to {}", param.type_name())),
                };
            }
            Arg::Field { idents, .. } => self.eval_field_chain(
                dot,
                dot.clone(),
                arg,
                idents,
                std::slice::from_ref(arg),
                None,
            )?,
            Arg::Variable { .. } => self.eval_variable(dot, arg, &[], None)?,
            Arg::Pipe(pipe) => self.eval_pipeline(dot, pipe)?,
            Arg::Identifier { name, .. } => {
                self.eval_function(dot, arg, At::Arg(arg), name, &[], None)?
            }
            Arg::Chain { .. } => self.eval_chain(dot, arg, &[], None)?,
            Arg::Bool(_, b) => match param {
                Param::Any => Value::Bool(*b),
                Param::Str => return self.fail(&format!("expected string; found {arg}")),
                _ => return self.cannot_handle(arg, param),
            },
            Arg::Number(_, number) => match param {
                Param::Any => self.ideal_constant(arg, number)?,
                Param::Str => return self.fail(&format!("expected string; found {arg}")),
                _ => return self.cannot_handle(arg, param),
            },
            Arg::Str { text, .. } => match param {
                Param::Any | Param::Str => Value::Str(text.clone()),
                _ => return self.cannot_handle(arg, param),
            },
        };
        self.validate(value, param)
    }

    fn cannot_handle<T>(&self, arg: &Arg, param: Param) -> Exec<T> {
        self.fail(&format!(
            "can't handle {arg} for arg of type {}",
            param.type_name()
        ))
    }
}

/// A slice's elements as `range` sees them: index and element.
fn indexed(items: impl Iterator<Item = Value>) -> Vec<(Value, Value)> {
    items
        .enumerate()
        .map(|(i, item)| (Value::Int(i as i64), item))
        .collect()
}
