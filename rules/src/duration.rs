//! The duration syntax of contracts and of `#[pactum::deadline("…")]`.

/// Parses a duration: one or more `<integer><unit>` pairs, units `ns us ms s m h`
/// (`300ms`, `2s`, `1m30s`). Returns nanoseconds.
pub fn parse(text: &str) -> Result<u128, String> {
    let t = text.trim();
    if t.is_empty() {
        return Err("empty duration".into());
    }
    let bytes = t.as_bytes();
    let mut i = 0;
    let mut total: u128 = 0;
    while i < bytes.len() {
        let start = i;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
        if start == i || i - start > 12 {
            return Err(format!("`{t}` is not a duration"));
        }
        let n: u128 = t[start..i]
            .parse()
            .map_err(|_| format!("`{t}` is not a duration"))?;
        let ustart = i;
        while i < bytes.len() && bytes[i].is_ascii_alphabetic() {
            i += 1;
        }
        let unit: u128 = match &t[ustart..i] {
            "ns" => 1,
            "us" | "µs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            "" => return Err(format!("`{t}` needs a unit: ns, us, ms, s, m or h")),
            other => {
                return Err(format!(
                    "unknown duration unit `{other}`; use ns, us, ms, s, m or h"
                ))
            }
        };
        total = total.saturating_add(n.saturating_mul(unit));
    }
    Ok(total)
}

/// The budget of a call whose contract and caller give none: the clients' default timeout,
/// and what the static budget check assumes for an operation without a deadline.
pub const DEFAULT_CALL_TIMEOUT_NS: u64 = 30_000_000_000;

/// Writes `ns` in the contract syntax, in the largest unit that is exact (`2s`, `1650ms`,
/// `15us`), so a figure in a diagnostic can be pasted back into a contract.
pub fn format(ns: u64) -> String {
    const UNITS: [(u64, &str); 3] = [(1_000_000_000, "s"), (1_000_000, "ms"), (1_000, "us")];
    for (size, unit) in UNITS {
        if ns != 0 && ns.is_multiple_of(size) {
            return format!("{}{unit}", ns / size);
        }
    }
    format!("{ns}ns")
}

#[cfg(test)]
mod tests {
    use super::{format, parse};

    #[test]
    fn pairs_add_up_and_mistakes_are_named() {
        assert_eq!(parse("1m30s"), Ok(90_000_000_000));
        assert_eq!(parse(" 250ms "), Ok(250_000_000));
        assert!(parse("").unwrap_err().contains("empty"));
        assert!(parse("5").unwrap_err().contains("needs a unit"));
        assert!(parse("5d")
            .unwrap_err()
            .contains("unknown duration unit `d`"));
        assert!(parse("ms").unwrap_err().contains("not a duration"));
    }

    #[test]
    fn formatted_durations_parse_back() {
        for (ns, text) in [
            (2_000_000_000, "2s"),
            (1_650_000_000, "1650ms"),
            (15_000, "15us"),
            (7, "7ns"),
            (0, "0ns"),
        ] {
            assert_eq!(format(ns), text);
            assert_eq!(parse(text), Ok(u128::from(ns)));
        }
    }
}
