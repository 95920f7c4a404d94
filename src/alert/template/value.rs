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

/// A `*time.Time` as `toTime` returns it, or a `time.Time` of a
/// notification: nanoseconds since the epoch, UTC (wide enough for Go's
/// zero time, year 1, the end of a firing alert).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Time {
    pub unix_nanos: i128,
}

impl Time {
    /// Go's zero `time.Time`: 0001-01-01 00:00:00 UTC.
    pub const ZERO: Time = Time {
        unix_nanos: -62_135_596_800 * 1_000_000_000,
    };

    pub fn from_millis(ms: i64) -> Time {
        Time {
            unix_nanos: i128::from(ms) * 1_000_000,
        }
    }
}

/// The dot of a notification template: Alertmanager's `template.Data`.
#[derive(Debug)]
pub struct NotificationData {
    pub receiver: String,
    pub status: String,
    pub alerts: Rc<Vec<Rc<NotifiedAlert>>>,
    pub group_labels: Rc<StrMap>,
    pub common_labels: Rc<StrMap>,
    pub common_annotations: Rc<StrMap>,
    pub external_url: String,
}

/// One alert of a notification: Alertmanager's `template.Alert`.
#[derive(Debug)]
pub struct NotifiedAlert {
    pub status: String,
    pub labels: Rc<StrMap>,
    pub annotations: Rc<StrMap>,
    pub starts_at: Time,
    pub ends_at: Time,
    pub generator_url: String,
    pub fingerprint: String,
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
    /// Alertmanager's `template.KV`: a `map[string]string` with methods
    /// (`SortedPairs`, `Remove`, `Names`, `Values`).
    Kv(Rc<StrMap>),
    /// `[]string`.
    Strings(Rc<Vec<String>>),
    /// Alertmanager's `template.Pairs` (methods `Names`, `Values`).
    Pairs(Rc<Vec<(String, String)>>),
    /// Alertmanager's `template.Pair`: `Name` and `Value`.
    Pair(Rc<(String, String)>),
    Notification(Rc<NotificationData>),
    /// Alertmanager's `template.Alerts` when `named` (methods `Firing` and
    /// `Resolved`), else the `[]template.Alert` those return.
    Alerts {
        list: Rc<Vec<Rc<NotifiedAlert>>>,
        named: bool,
    },
    NotifiedAlert(Rc<NotifiedAlert>),
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
            Value::Kv(_) => "template.KV",
            Value::Strings(_) => "[]string",
            Value::Pairs(_) => "template.Pairs",
            Value::Pair(_) => "template.Pair",
            Value::Notification(_) => "*template.Data",
            Value::Alerts { named: true, .. } => "template.Alerts",
            Value::Alerts { named: false, .. } => "[]template.Alert",
            Value::NotifiedAlert(_) => "template.Alert",
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
            Value::Kv(m) => !m.is_empty(),
            Value::Strings(v) => !v.is_empty(),
            Value::Pairs(v) => !v.is_empty(),
            Value::Alerts { list, .. } => !list.is_empty(),
            Value::Time(_)
            | Value::Alert(_)
            | Value::Pair(_)
            | Value::Notification(_)
            | Value::NotifiedAlert(_) => true,
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
