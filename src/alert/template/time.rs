//! Go's `time.Time` as `toTime` returns it (always UTC): its `String()`,
//! `Format` with Go's reference-time layouts, and the methods templates call.

use super::exec::{Function, Param};
use super::value::{Time, Value};

/// A method of `*time.Time` without arguments: `body` maps the receiver.
macro_rules! method {
    ($name:literal, |$t:ident| $body:expr) => {
        Function {
            name: $name,
            params: &[],
            variadic: None,
            call: |_, args| {
                let $t = receiver(&args[0]);
                Ok($body)
            },
        }
    };
}

/// The methods of `*time.Time` a template can call; the receiver comes first.
static TIME_METHODS: &[Function] = &[
    method!("Unix", |t| Value::Int(
        t.unix_nanos.div_euclid(1_000_000_000) as i64
    )),
    method!("UnixMilli", |t| Value::Int(
        t.unix_nanos.div_euclid(1_000_000) as i64
    )),
    method!("UnixMicro", |t| Value::Int(
        t.unix_nanos.div_euclid(1_000) as i64
    )),
    // Go's result is undefined beyond int64, as this wrap.
    method!("UnixNano", |t| Value::Int(t.unix_nanos as i64)),
    method!("String", |t| Value::Str(time_string(t))),
    method!("UTC", |t| Value::Time(t)),
    method!("Year", |t| Value::Int(Civil::of(t).year)),
    method!("Month", |t| Value::Str(
        MONTHS[Civil::of(t).month as usize - 1].into()
    )),
    method!("Day", |t| Value::Int(Civil::of(t).day.into())),
    method!("Hour", |t| Value::Int(Civil::of(t).hour.into())),
    method!("Minute", |t| Value::Int(Civil::of(t).minute.into())),
    method!("Second", |t| Value::Int(Civil::of(t).second.into())),
    method!("Nanosecond", |t| Value::Int(Civil::of(t).nanos.into())),
    method!("YearDay", |t| Value::Int(Civil::of(t).year_day.into())),
    method!("Weekday", |t| Value::Str(
        WEEKDAYS[Civil::of(t).weekday as usize].into()
    )),
    Function {
        name: "Format",
        params: &[Param::Str],
        variadic: None,
        call: |_, args| {
            Ok(Value::Str(format(
                receiver(&args[0]),
                args[1].as_str().unwrap_or_default(),
            )))
        },
    },
];

/// A method of `*time.Time`; its call gets the receiver first.
pub fn time_method(name: &str) -> Option<&'static Function> {
    TIME_METHODS.iter().find(|m| m.name == name)
}

fn receiver(value: &Value) -> Time {
    match value {
        Value::Time(t) => *t,
        _ => Time { unix_nanos: 0 },
    }
}

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const WEEKDAYS: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];

/// A time's calendar fields in UTC.
struct Civil {
    year: i64,
    month: u32,
    day: u32,
    hour: u32,
    minute: u32,
    second: u32,
    nanos: u32,
    year_day: u32,
    weekday: u32,
}

impl Civil {
    fn of(t: Time) -> Civil {
        let secs = t.unix_nanos.div_euclid(1_000_000_000) as i64;
        let days = secs.div_euclid(86_400);
        let of_day = secs.rem_euclid(86_400) as u32;
        let (year, month, day) = crate::civil::civil_from_days(days);
        let (month, day) = (month as u32, day as u32);
        let year_day = (days - crate::civil::days_from_civil(year, 1, 1)) as u32 + 1;
        Civil {
            year,
            month,
            day,
            hour: of_day / 3600,
            minute: of_day / 60 % 60,
            second: of_day % 60,
            nanos: t.unix_nanos.rem_euclid(1_000_000_000) as u32,
            year_day,
            // 1970-01-01 was a Thursday.
            weekday: (days + 4).rem_euclid(7) as u32,
        }
    }
}

/// `time.Time.String()`: `2006-01-02 15:04:05.999999999 -0700 MST`.
pub fn time_string(t: Time) -> String {
    format(t, "2006-01-02 15:04:05.999999999 -0700 MST")
}

/// The layout elements of Go's reference time `Mon Jan 2 15:04:05 MST 2006`,
/// longest first where one is a prefix of another.
const ELEMENTS: &[&str] = &[
    "January",
    "Jan",
    "Monday",
    "Mon",
    "MST",
    "2006",
    "002",
    "01",
    "02",
    "03",
    "04",
    "05",
    "06",
    "15",
    "1",
    "2",
    "__2",
    "_2",
    "3",
    "4",
    "5",
    "PM",
    "pm",
    "-07:00:00",
    "-070000",
    "-07:00",
    "-0700",
    "-07",
    "Z07:00:00",
    "Z070000",
    "Z07:00",
    "Z0700",
    "Z07",
];

/// `time.Time.Format(layout)` for a UTC time.
pub fn format(t: Time, layout: &str) -> String {
    let c = Civil::of(t);
    let mut out = String::new();
    let mut rest = layout;
    while let Some(first) = rest.chars().next() {
        if let Some((digits, len)) = fraction_element(rest) {
            let fraction = format!("{:09}", c.nanos);
            let shown = &fraction[..len.min(9)];
            if digits == '9' {
                let trimmed = shown.trim_end_matches('0');
                if !trimmed.is_empty() {
                    out.push(first);
                    out.push_str(trimmed);
                }
            } else {
                out.push(first);
                out.push_str(shown);
            }
            rest = &rest[len + 1..];
            continue;
        }
        let Some(element) = ELEMENTS.iter().find(|e| rest.starts_with(*e)) else {
            out.push(first);
            rest = &rest[first.len_utf8()..];
            continue;
        };
        // "_2006" is an underscore then the year, not a padded day; "Jan"
        // and "Mon" before a lower-case letter are words, not elements.
        let word = matches!(*element, "Jan" | "Mon")
            && rest[3..].starts_with(|c: char| c.is_ascii_lowercase());
        if word || (*element == "_2" && rest.starts_with("_2006")) {
            out.push(first);
            rest = &rest[1..];
            continue;
        }
        let hour12 = if c.hour.is_multiple_of(12) {
            12
        } else {
            c.hour % 12
        };
        let text = match *element {
            "January" => MONTHS[c.month as usize - 1].to_string(),
            "Jan" => MONTHS[c.month as usize - 1][..3].to_string(),
            "Monday" => WEEKDAYS[c.weekday as usize].to_string(),
            "Mon" => WEEKDAYS[c.weekday as usize][..3].to_string(),
            "MST" => "UTC".to_string(),
            "2006" => format!("{:04}", c.year),
            "06" => format!("{:02}", c.year.rem_euclid(100)),
            "002" => format!("{:03}", c.year_day),
            "__2" => format!("{:>3}", c.year_day),
            "01" => format!("{:02}", c.month),
            "1" => c.month.to_string(),
            "02" => format!("{:02}", c.day),
            "_2" => format!("{:>2}", c.day),
            "2" => c.day.to_string(),
            "15" => format!("{:02}", c.hour),
            "03" => format!("{hour12:02}"),
            "3" => hour12.to_string(),
            "04" => format!("{:02}", c.minute),
            "4" => c.minute.to_string(),
            "05" => format!("{:02}", c.second),
            "5" => c.second.to_string(),
            "PM" => if c.hour >= 12 { "PM" } else { "AM" }.to_string(),
            "pm" => if c.hour >= 12 { "pm" } else { "am" }.to_string(),
            "-07:00:00" => "+00:00:00".to_string(),
            "-070000" => "+000000".to_string(),
            "-07:00" => "+00:00".to_string(),
            "-0700" => "+0000".to_string(),
            "-07" => "+00".to_string(),
            _ => "Z".to_string(), // the Z07… forms, UTC being Z
        };
        out.push_str(&text);
        rest = &rest[element.len()..];
    }
    out
}

/// `.000` or `.999` (or with a comma): fractional seconds, unless a digit
/// follows the run. Returns the digit repeated and the run's length.
fn fraction_element(rest: &str) -> Option<(char, usize)> {
    let bytes = rest.as_bytes();
    if !matches!(bytes.first(), Some(b'.' | b',')) {
        return None;
    }
    let digit = *bytes.get(1)?;
    if digit != b'0' && digit != b'9' {
        return None;
    }
    let len = bytes[1..].iter().take_while(|b| **b == digit).count();
    if bytes.get(1 + len).is_some_and(u8::is_ascii_digit) {
        return None;
    }
    Some((digit as char, len))
}
