//! The values a template handles, one variant per Go type that Prometheus's
//! templates can meet, each knowing its Go type name and Go truthiness.

use std::collections::BTreeMap;
use std::rc::Rc;

/// Go's `map[string]string`; a `BTreeMap` iterates in the byte order Go's
/// `range` and `fmt` sort map keys in.
pub type StrMap = BTreeMap<String, String>;

/// One element of a `query` result: Prometheus's `*template.sample`.
#[derive(Debug, PartialEq)]
pub struct Sample {
    pub labels: Rc<StrMap>,
    pub value: f64,
}

/// The dot of an alert template: Prometheus's anonymous struct with
/// `Labels`, `ExternalLabels`, `ExternalURL` and `Value`.
#[derive(Debug)]
pub struct AlertFields {
    pub labels: Rc<StrMap>,
    pub external_labels: Rc<StrMap>,
    pub external_url: String,
    pub value: f64,
}

/// A `*time.Time` as `toTime` returns it: nanoseconds since the epoch, UTC.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Time {
    pub unix_nanos: i64,
}

#[derive(Clone, Debug)]
pub enum Value {
    /// Go's invalid `reflect.Value`: an untyped nil.
    Nil,
    /// A nil `interface{}` read from a `map[string]interface{}` (a missing
    /// `args` key). Only a field chain or an argument meets it: a pipeline
    /// stage's result is unwrapped to `Nil`, as Go does.
    NilInterface,
    Bool(bool),
    Int(i64),
    /// A byte from indexing a string (`uint8`).
    Byte(u8),
    Float(f64),
    Str(String),
    /// `html/template.HTML`, what `safeHtml` returns: a string of another type.
    Html(String),
    StrMap(Rc<StrMap>),
    /// `map[string]interface{}`, what `args` returns.
    AnyMap(Rc<BTreeMap<String, Value>>),
    /// `template.queryResult`, a slice of `*template.sample`.
    Samples(Rc<Vec<Rc<Sample>>>),
    /// `*template.sample`; `None` is a nil pointer.
    Sample(Option<Rc<Sample>>),
    /// `*time.Time`.
    Time(Time),
    Alert(Rc<AlertFields>),
}

impl Value {
    /// The Go type's name as `%T` and reflect print it.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Nil => "<nil>",
            Value::NilInterface => "interface {}",
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::Byte(_) => "uint8",
            Value::Float(_) => "float64",
            Value::Str(_) => "string",
            Value::Html(_) => "template.HTML",
            Value::StrMap(_) => "map[string]string",
            Value::AnyMap(_) => "map[string]interface {}",
            Value::Samples(_) => "template.queryResult",
            Value::Sample(_) => "*template.sample",
            Value::Time(_) => "*time.Time",
            Value::Alert(_) => {
                "struct { Labels map[string]string; ExternalLabels map[string]string; ExternalURL string; Value float64 }"
            }
        }
    }

    /// Go's truth for `if`, `with`, `and`, `or` and `not`: not the zero
    /// value of its type (any struct and any non-nil pointer is true).
    pub fn is_true(&self) -> bool {
        match self {
            Value::Nil | Value::NilInterface => false,
            Value::Bool(b) => *b,
            Value::Int(i) => *i != 0,
            Value::Byte(b) => *b != 0,
            Value::Float(f) => *f != 0.0,
            Value::Str(s) | Value::Html(s) => !s.is_empty(),
            Value::StrMap(m) => !m.is_empty(),
            Value::AnyMap(m) => !m.is_empty(),
            Value::Samples(v) => !v.is_empty(),
            Value::Sample(s) => s.is_some(),
            Value::Time(_) | Value::Alert(_) => true,
        }
    }

    /// The string inside a value of a string kind (`string`, `template.HTML`).
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) | Value::Html(s) => Some(s),
            _ => None,
        }
    }
}
