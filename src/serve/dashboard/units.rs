//! Numbers as people read them: bytes in KiB/MiB/GiB, rates per second with
//! k/M prefixes, percent, and the scale an axis uses so that its ticks are
//! round numbers of one unit ("0, 256, 512 MiB" rather than raw bytes).

use super::charts::Unit;

/// An axis' unit: values are divided by `divisor` and the axis is labelled
/// `label`.
#[derive(Clone, Debug, PartialEq)]
pub struct Scale {
    pub divisor: f64,
    pub label: String,
}

const BINARY: &[&str] = &["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
const DECIMAL: &[&str] = &["", "k", "M", "G", "T"];

/// The largest prefix of `base` that keeps `value` at 1 or more.
fn prefix(value: f64, base: f64, names: &'static [&'static str]) -> (f64, &'static str) {
    let mut divisor = 1.0;
    let mut name = names[0];
    for &next in &names[1..] {
        if value.abs() < divisor * base {
            break;
        }
        divisor *= base;
        name = next;
    }
    (divisor, name)
}

impl Unit {
    /// The scale of an axis whose largest value is `max`.
    pub fn scale(self, max: f64) -> Scale {
        let (divisor, label) = match self {
            Unit::Percent => (1.0, "%".to_string()),
            Unit::Number => (1.0, String::new()),
            Unit::Bytes => {
                let (divisor, name) = prefix(max, 1024.0, BINARY);
                (divisor, name.to_string())
            }
            Unit::BytesPerSecond => {
                let (divisor, name) = prefix(max, 1024.0, BINARY);
                (divisor, format!("{name}/s"))
            }
            Unit::PerSecond(noun) => {
                let (divisor, name) = prefix(max, 1000.0, DECIMAL);
                let space = if name.is_empty() { "" } else { " " };
                (divisor, format!("{name}{space}{noun}/s"))
            }
        };
        Scale { divisor, label }
    }

    /// One value with its unit, three significant digits or so.
    pub fn format(self, value: f64) -> String {
        match self {
            Unit::Percent => format!("{}%", digits(value)),
            Unit::Number => digits(value),
            Unit::Bytes | Unit::BytesPerSecond => {
                let (divisor, name) = prefix(value, 1024.0, BINARY);
                let per = if self == Unit::BytesPerSecond {
                    "/s"
                } else {
                    ""
                };
                format!("{} {name}{per}", digits(value / divisor))
            }
            Unit::PerSecond(_) => {
                let (divisor, name) = prefix(value, 1000.0, DECIMAL);
                format!("{}{name}/s", digits(value / divisor))
            }
        }
    }
}

/// Three significant digits for the usual magnitudes, no trailing noise.
pub fn digits(value: f64) -> String {
    let magnitude = value.abs();
    let decimals = if magnitude >= 100.0 || magnitude == 0.0 {
        0
    } else if magnitude >= 10.0 {
        1
    } else if magnitude >= 0.01 {
        2
    } else {
        return format!("{value:.1e}");
    };
    let text = format!("{value:.decimals$}");
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        text
    }
}

/// The smallest "round" number (1, 2, 2.5 or 5 times a power of ten) at or
/// above `value`: a pleasant top for an axis.
pub fn round_up(value: f64) -> f64 {
    if !value.is_finite() || value <= 0.0 {
        return 1.0;
    }
    let power = 10f64.powf(value.log10().floor());
    [1.0, 2.0, 2.5, 5.0, 10.0]
        .into_iter()
        .map(|m| m * power)
        .find(|&top| top >= value * (1.0 - 1e-12))
        .unwrap_or(10.0 * power)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_use_binary_prefixes() {
        assert_eq!(Unit::Bytes.format(512.0), "512 B");
        assert_eq!(Unit::Bytes.format(1536.0), "1.5 KiB");
        assert_eq!(Unit::Bytes.format(8.0 * 1024.0 * 1024.0 * 1024.0), "8 GiB");
        assert_eq!(
            Unit::BytesPerSecond.format(10.0 * 1024.0 * 1024.0),
            "10 MiB/s"
        );
        assert_eq!(Unit::Bytes.scale(3e9).label, "GiB");
        assert_eq!(Unit::BytesPerSecond.scale(100.0).label, "B/s");
    }

    #[test]
    fn rates_and_percent() {
        assert_eq!(Unit::PerSecond("syscalls").format(10.0), "10/s");
        assert_eq!(Unit::PerSecond("syscalls").format(12_345.0), "12.3k/s");
        assert_eq!(Unit::PerSecond("syscalls").scale(2e6).label, "M syscalls/s");
        assert_eq!(Unit::PerSecond("syscalls").scale(20.0).label, "syscalls/s");
        assert_eq!(Unit::Percent.format(12.345), "12.3%");
        assert_eq!(Unit::Number.format(0.5), "0.5");
        assert_eq!(Unit::Number.format(0.0), "0");
    }

    #[test]
    fn axis_tops_are_round() {
        assert_eq!(round_up(0.0), 1.0);
        assert_eq!(round_up(0.7), 1.0);
        assert_eq!(round_up(1.2), 2.0);
        assert_eq!(round_up(2.2), 2.5);
        assert_eq!(round_up(2.5), 2.5);
        assert_eq!(round_up(730.0), 1000.0);
        assert_eq!(round_up(f64::NAN), 1.0);
    }
}
