//! Header encodings from the wire conventions. Every parser here takes untrusted input: it
//! returns `None` for anything malformed or hostile and never panics.

use std::time::Duration;

use opentelemetry::trace::{SpanContext, SpanId, TraceFlags, TraceId, TraceState};

/// HTTP header carrying the caller's remaining budget, in `grpc-timeout` format.
pub const TIMEOUT_HEADER: &str = "pactum-timeout";
/// gRPC's own deadline header.
pub const GRPC_TIMEOUT_HEADER: &str = "grpc-timeout";
/// IETF `Idempotency-Key` header (lower case, as `http` stores names).
pub const IDEMPOTENCY_KEY_HEADER: &str = "idempotency-key";
/// Request id header, echoed in responses.
pub const REQUEST_ID_HEADER: &str = "x-request-id";
/// Longest idempotency key or request id accepted.
pub const MAX_ID_LEN: usize = 255;

/// Parses a `grpc-timeout` value: 1–8 ASCII digits and a unit (`H M S m u n`).
pub fn parse_timeout(value: &str) -> Option<Duration> {
    let bytes = value.as_bytes();
    let (digits, unit) = bytes.split_at(bytes.len().checked_sub(1)?);
    if digits.is_empty() || digits.len() > 8 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let n: u64 = std::str::from_utf8(digits).ok()?.parse().ok()?;
    Some(match unit[0] {
        b'H' => Duration::from_secs(n * 3600),
        b'M' => Duration::from_secs(n * 60),
        b'S' => Duration::from_secs(n),
        b'm' => Duration::from_millis(n),
        b'u' => Duration::from_micros(n),
        b'n' => Duration::from_nanos(n),
        _ => return None,
    })
}

/// Encodes a budget in `grpc-timeout` format, rounded down (the receiver never believes it
/// has more time than the sender had) to the coarsest unit that still gives at least four
/// digits, so the error stays under 0.1 % of the budget.
///
/// Why not the finest unit that fits in 8 digits: a 30 s budget in microseconds is a new
/// header value on every call, which HTTP/2's HPACK must send literally, insert into its
/// table and evict again, on both peers. In milliseconds the value changes once per
/// millisecond and repeats are sent as one-byte table references.
pub fn format_timeout(budget: Duration) -> String {
    const MAX: u128 = 99_999_999;
    const UNITS: [(char, u128); 5] = [
        ('n', 1),
        ('u', 1_000),
        ('m', 1_000_000),
        ('S', 1_000_000_000),
        ('M', 60_000_000_000),
    ];
    let nanos = budget.as_nanos();
    // Coarsest first: the first unit with four digits (or the finest, for tiny budgets).
    let pick = UNITS
        .iter()
        .rev()
        .find(|(_, per)| nanos / per >= 1_000 && nanos / per <= MAX)
        .or_else(|| UNITS.iter().find(|(_, per)| nanos / per <= MAX));
    let (value, unit) = match pick {
        Some(&(unit, per)) => (nanos / per, unit),
        None => ((nanos / 3_600_000_000_000).min(MAX), 'H'),
    };
    // At most 8 digits and a unit; written by hand because this runs on every call and
    // `format!` costs more than the rest of the function.
    let mut digits = [0u8; 8];
    let mut i = digits.len();
    let mut v = value;
    loop {
        i -= 1;
        digits[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    let mut out = String::with_capacity(9);
    out.extend(digits[i..].iter().map(|&d| char::from(d)));
    out.push(unit);
    out
}

/// Parses an RFC 8941 structured-field String (`"…"`, with `\"` and `\\` escapes, printable
/// ASCII only), as the IETF Idempotency-Key draft requires. Empty and over-long keys are
/// refused.
pub fn parse_sf_string(value: &str) -> Option<String> {
    let inner = value.trim().strip_prefix('"')?.strip_suffix('"')?;
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next()? {
                e @ ('"' | '\\') => out.push(e),
                _ => return None,
            },
            '"' => return None,
            ' '..='~' => out.push(c),
            _ => return None,
        }
    }
    (!out.is_empty() && out.len() <= MAX_ID_LEN).then_some(out)
}

/// The `Idempotency-Key` pattern both sides agree on, as the OpenAPI documents state it:
/// an RFC 8941 sf-string of 1–255 printable ASCII characters (what the IETF draft sends;
/// `"` and `\\` escaped), or a bare token of 1–255 visible ASCII characters without `"`
/// (what Stripe-style clients send).
pub const IDEMPOTENCY_KEY_PATTERN: &str =
    r#"^(?:"(?:[ !#-\[\]-~]|\\["\\]){1,255}"|[!#-~]{1,255})$"#;

/// Longest `Idempotency-Key` header value accepted: a quoted key of 255 escaped characters.
pub const MAX_IDEMPOTENCY_HEADER_LEN: usize = 2 + 2 * MAX_ID_LEN;

/// Parses an `Idempotency-Key` value: an sf-string (`"8e03978e-…"`) or a bare token
/// (`8e03978e-…`, as Stripe's clients send), per [`IDEMPOTENCY_KEY_PATTERN`]. Both forms name
/// the same key: `"abc"` and `abc` are one key. Empty, over-long, non-ASCII and control
/// characters are refused.
pub fn parse_idempotency_key(value: &str) -> Option<String> {
    if value.len() > MAX_IDEMPOTENCY_HEADER_LEN {
        return None;
    }
    if value.starts_with('"') {
        return parse_sf_string(value);
    }
    let ok = !value.is_empty()
        && value.len() <= MAX_ID_LEN
        && value.bytes().all(|b| b.is_ascii_graphic() && b != b'"');
    ok.then(|| value.to_string())
}

/// Serializes a structured-field String. Characters outside printable ASCII are dropped (the
/// keys Pactum generates are UUIDs, so nothing is lost in practice).
pub fn format_sf_string(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars().filter(|c| (' '..='~').contains(c)) {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// W3C Trace Context: the header naming the caller's trace and span.
pub const TRACEPARENT_HEADER: &str = "traceparent";
/// W3C Trace Context: vendor-specific trace state that travels with `traceparent`.
pub const TRACESTATE_HEADER: &str = "tracestate";

/// Parses a W3C Trace Context `traceparent` (and the `tracestate` beside it) into a remote
/// span context, as the specification's receiving rules ask: lower-case hex fields of exactly
/// 2, 32, 16 and 2 digits, version `ff` refused, ids not all zeros, version `00` exactly 55
/// characters, and a later version read by its first four fields when what follows them is
/// `-`. Only the sampled flag is kept. A `tracestate` that does not parse is dropped, not the
/// trace.
///
/// Why not `opentelemetry_sdk`'s `TraceContextPropagator`: these two functions were all this
/// crate used the SDK for, and it brought `rand` with a ChaCha generator into every service's
/// build. The id and state types and their parsers are the `opentelemetry` API crate's; the
/// unit tests run the SDK's propagator beside this code on the same headers.
pub fn parse_traceparent(traceparent: &str, tracestate: Option<&str>) -> Option<SpanContext> {
    let value = traceparent.trim_matches(|c: char| c == ' ' || c == '\t');
    let b = value.as_bytes();
    if b.len() < 55 || b[2] != b'-' || b[35] != b'-' || b[52] != b'-' {
        return None;
    }
    let lower_hex = |field: &[u8]| {
        field
            .iter()
            .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(c))
    };
    let (version, trace, span, flags) = (&b[0..2], &b[3..35], &b[36..52], &b[53..55]);
    if ![version, trace, span, flags].into_iter().all(lower_hex) || version == b"ff" {
        return None;
    }
    // Version 00 is exactly 55 characters; a later version may append fields after a `-`.
    let exact = b.len() == 55;
    if !(exact || version != b"00" && b[55] == b'-') {
        return None;
    }
    // Every field is checked lower-case hex of its width, so these parse; `?` keeps the
    // function total all the same.
    let trace_id = TraceId::from_hex(&value[3..35]).ok()?;
    let span_id = SpanId::from_hex(&value[36..52]).ok()?;
    let flags = TraceFlags::new(u8::from_str_radix(&value[53..55], 16).ok()?) & TraceFlags::SAMPLED;
    let state = tracestate
        .and_then(|s| s.parse::<TraceState>().ok())
        .unwrap_or_default();
    let span = SpanContext::new(trace_id, span_id, flags, true, state);
    span.is_valid().then_some(span)
}

/// Writes `span` as a version-00 `traceparent` value, with only the sampled flag.
pub fn format_traceparent(span: &SpanContext) -> String {
    format!(
        "00-{}-{}-{:02x}",
        span.trace_id(),
        span.span_id(),
        span.trace_flags() & TraceFlags::SAMPLED
    )
}

/// A request id is kept when it is 1–255 visible ASCII characters; otherwise a fresh one is
/// made, so a hostile value never reaches logs.
pub fn accept_request_id(value: &str) -> Option<String> {
    let ok = !value.is_empty()
        && value.len() <= MAX_ID_LEN
        && value.bytes().all(|b| b.is_ascii_graphic());
    ok.then(|| value.to_string())
}

/// The longest header value a message carries; longer ones (a downstream's HTML error page in
/// a dead-letter reason) are cut, with an ellipsis, on a character boundary.
pub const MAX_HEADER_VALUE_LEN: usize = 1024;

/// `value` made safe for any message header: control characters (CR and LF above all, which
/// would end the header and which the NATS client refuses by panicking) become spaces, runs of
/// whitespace shrink to one, and the result is at most [`MAX_HEADER_VALUE_LEN`] bytes. Text
/// that reaches headers from remote parties (handler errors, response bodies) goes through
/// this before it is published.
pub fn sanitize_header_value(value: &str) -> std::borrow::Cow<'_, str> {
    let clean = value.len() <= MAX_HEADER_VALUE_LEN
        && !value.chars().any(char::is_control)
        && !value.contains("  ");
    if clean {
        return std::borrow::Cow::Borrowed(value);
    }
    let mut out = String::with_capacity(value.len().min(MAX_HEADER_VALUE_LEN));
    for c in value.chars() {
        let c = if c.is_control() || c.is_whitespace() {
            ' '
        } else {
            c
        };
        if c == ' ' && (out.is_empty() || out.ends_with(' ')) {
            continue;
        }
        if out.len() + c.len_utf8() > MAX_HEADER_VALUE_LEN - '…'.len_utf8() {
            out.push('…');
            break;
        }
        out.push(c);
    }
    std::borrow::Cow::Owned(out.trim_end().to_string())
}

/// `name` if it is a valid header name (visible ASCII but `:`), for transports that refuse
/// others; `None` means the header is dropped.
pub fn valid_header_name(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_graphic() && b != b':')
}

/// Parses `Retry-After`: delta-seconds, or an HTTP-date relative to `now`.
pub fn parse_retry_after(value: &str, now: std::time::SystemTime) -> Option<Duration> {
    let v = value.trim();
    if !v.is_empty() && v.len() <= 10 && v.bytes().all(|b| b.is_ascii_digit()) {
        return v.parse().ok().map(Duration::from_secs);
    }
    let at = chrono::DateTime::parse_from_rfc2822(v).ok()?;
    let at = std::time::SystemTime::from(at);
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_timeout_round_trips_and_refuses_junk() {
        assert_eq!(parse_timeout("500m"), Some(Duration::from_millis(500)));
        assert_eq!(parse_timeout("2S"), Some(Duration::from_secs(2)));
        assert_eq!(
            parse_timeout("99999999H"),
            Some(Duration::from_secs(99_999_999 * 3600))
        );
        for bad in [
            "",
            "m",
            "5",
            "123456789m",
            "5x",
            "-5m",
            "5 m",
            "５m",
            "1.5S",
            "m5",
        ] {
            assert_eq!(parse_timeout(bad), None, "{bad:?}");
        }
        assert_eq!(format_timeout(Duration::from_millis(250)), "250000u");
        assert_eq!(format_timeout(Duration::from_nanos(1)), "1n");
        assert_eq!(format_timeout(Duration::from_nanos(999)), "999n");
        assert_eq!(format_timeout(Duration::from_micros(1_500)), "1500u");
        // Four digits are enough: a 30 s budget repeats for a whole millisecond.
        assert_eq!(
            format_timeout(Duration::from_nanos(29_999_876_543)),
            "29999m"
        );
        assert_eq!(format_timeout(Duration::from_secs(3600 * 24)), "1440M");
        assert_eq!(
            format_timeout(Duration::from_secs(3600 * 24 * 365)),
            "525600M"
        );
        for d in [
            Duration::from_millis(1),
            Duration::from_secs(7),
            Duration::from_nanos(123_456_789_012),
        ] {
            let back = parse_timeout(&format_timeout(d)).unwrap();
            assert!(back <= d && (d - back) * 1000 <= d, "{d:?} -> {back:?}");
        }
        assert_eq!(format_timeout(Duration::MAX).len(), 9);
    }

    #[test]
    fn idempotency_keys_are_sf_strings() {
        assert_eq!(parse_sf_string("\"abc-123\""), Some("abc-123".into()));
        assert_eq!(parse_sf_string(r#""a\"b\\c""#), Some(r#"a"b\c"#.into()));
        for bad in [
            "abc",
            "\"\"",
            "\"a\"b\"",
            "\"a\\x\"",
            "\"é\"",
            "\"a",
            "\"tab\there\"",
        ] {
            assert_eq!(parse_sf_string(bad), None, "{bad:?}");
        }
        assert_eq!(parse_sf_string(&format!("\"{}\"", "k".repeat(256))), None);
        let key = "8e03978e-40d5-43e8-bc93-6894a57f9324";
        assert_eq!(
            parse_sf_string(&format_sf_string(key)).as_deref(),
            Some(key)
        );
        assert_eq!(format_sf_string(r#"a"b"#), r#""a\"b""#);
    }

    #[test]
    fn idempotency_keys_are_sf_strings_or_bare_tokens() {
        let pattern = regex::Regex::new(IDEMPOTENCY_KEY_PATTERN).unwrap();
        let good = [
            ("\"abc-123\"", "abc-123"),
            ("abc-123", "abc-123"),
            (r#""a\"b\\c""#, r#"a"b\c"#),
            ("\"with space\"", "with space"),
            ("a\\b", "a\\b"),
        ];
        for (header, key) in good {
            assert_eq!(
                parse_idempotency_key(header).as_deref(),
                Some(key),
                "{header:?}"
            );
            assert!(pattern.is_match(header), "the pattern refuses {header:?}");
        }
        let long = "k".repeat(256);
        let bad = [
            String::new(),
            "\"\"".into(),
            "a b".into(),
            "a\"b".into(),
            "\"a".into(),
            "é".into(),
            "tab\there".into(),
            long.clone(),
            format!("\"{long}\""),
        ];
        for header in bad {
            assert_eq!(parse_idempotency_key(&header), None, "{header:?}");
            assert!(!pattern.is_match(&header), "the pattern accepts {header:?}");
        }
        let max = "k".repeat(255);
        assert!(parse_idempotency_key(&max).is_some() && pattern.is_match(&max));
        let escaped = format!("\"{}\"", "\\\"".repeat(255));
        assert_eq!(parse_idempotency_key(&escaped).map(|k| k.len()), Some(255));
        assert!(pattern.is_match(&escaped));
    }

    #[test]
    fn retry_after_takes_seconds_or_dates() {
        let now = std::time::UNIX_EPOCH + Duration::from_secs(1_445_412_480); // 2015-10-21 07:28:00Z
        assert_eq!(
            parse_retry_after("120", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:30 GMT", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("99999999999999999999", now), None);
    }

    #[test]
    fn header_values_lose_line_breaks_and_length() {
        assert_eq!(sanitize_header_value("failed 3 times"), "failed 3 times");
        let page = "<html>\r\n<body>\n  502 Bad Gateway\r\n</body>\x00</html>";
        let clean = sanitize_header_value(page);
        assert_eq!(clean, "<html> <body> 502 Bad Gateway </body> </html>");
        let long = "é".repeat(2 * MAX_HEADER_VALUE_LEN);
        let cut = sanitize_header_value(&long);
        assert!(cut.len() <= MAX_HEADER_VALUE_LEN, "{}", cut.len());
        assert!(cut.ends_with('…'));
        assert!(
            valid_header_name("ce-id") && !valid_header_name("a:b") && !valid_header_name("a b")
        );
    }

    #[test]
    fn request_ids_must_be_visible_ascii() {
        assert_eq!(accept_request_id("req-1"), Some("req-1".into()));
        assert_eq!(accept_request_id("a b"), None);
        assert_eq!(accept_request_id("\u{1b}[31m"), None);
        assert_eq!(accept_request_id(&"x".repeat(300)), None);
    }

    /// What the SDK's propagator (a dev-dependency only) reads from the same headers.
    fn sdk_reads(parent: &str, state: Option<&str>) -> Option<SpanContext> {
        use opentelemetry::propagation::TextMapPropagator;
        use opentelemetry::trace::TraceContextExt;
        let mut headers = std::collections::HashMap::new();
        headers.insert(TRACEPARENT_HEADER.to_string(), parent.to_string());
        if let Some(state) = state {
            headers.insert(TRACESTATE_HEADER.to_string(), state.to_string());
        }
        let cx = opentelemetry_sdk::propagation::TraceContextPropagator::new().extract(&headers);
        let span = cx.span().span_context().clone();
        span.is_valid().then_some(span)
    }

    const ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7";

    #[test]
    fn traceparent_reads_what_the_sdk_reads_where_the_specification_allows_it() {
        // Valid by the W3C receiving rules: both read the same span context.
        let valid = [
            (format!("00-{ID}-01"), Some("vendor=abc,other=x")),
            (format!("00-{ID}-00"), None),
            (format!("00-{ID}-03"), Some("foo=bar")),
            (format!("00-{ID}-09"), Some("not a list member")),
            (format!("02-{ID}-09"), None),
            (format!("02-{ID}-08-XYZxsf09"), Some("foo=bar")),
            (format!("cc-{ID}-01-what-the-future-will-be-like"), None),
            (format!(" 00-{ID}-01\t"), None),
        ];
        for (parent, state) in &valid {
            let ours = parse_traceparent(parent, *state);
            assert!(ours.is_some(), "refused valid {parent:?}");
            assert_eq!(ours, sdk_reads(parent, *state), "{parent:?} {state:?}");
        }
        let read = parse_traceparent(&valid[0].0, valid[0].1).unwrap();
        assert_eq!(
            read.trace_id().to_string(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert!(read.is_sampled() && read.is_remote());
        assert_eq!(read.trace_state().get("vendor"), Some("abc"));
        assert!(!parse_traceparent(&valid[1].0, None).unwrap().is_sampled());

        // Refused by both.
        let refused_by_both = [
            String::new(),
            "garbage".to_string(),
            format!("ff-{ID}-01"),
            format!("00-{}-00f067aa0ba902b7-01", "0".repeat(32)),
            format!("00-4bf92f3577b34da6a3ce929d0e0e4736-{}-01", "0".repeat(16)),
            format!("00-{}-01", ID.to_uppercase()),
            format!("00-{ID}-0G"),
            format!("00-{ID}-01-extra"),
            format!("00-{ID}-0100"),
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7é-01".to_string(),
        ];
        for parent in &refused_by_both {
            assert_eq!(parse_traceparent(parent, None), None, "read {parent:?}");
            assert_eq!(sdk_reads(parent, None), None, "sdk read {parent:?}");
        }

        // The SDK reads these; the specification says to restart the trace (fields of the
        // wrong width, version 00 longer than 55 characters, a later version whose fourth
        // field runs on without a `-`, a version of four digits), so this codec does.
        let stricter = [
            "00-4bf92f3577b34da6-00f067aa0ba902b7-01".to_string(),
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa-01".to_string(),
            format!("00-{ID}-1"),
            format!("00-{ID}-01-"),
            format!("02-{ID}-01zz"),
            format!("0000-{ID}-01"),
        ];
        for parent in &stricter {
            assert_eq!(parse_traceparent(parent, None), None, "read {parent:?}");
        }
        assert!(sdk_reads(&stricter[0], None).is_some() && sdk_reads(&stricter[3], None).is_some());
    }

    #[test]
    fn traceparent_is_written_as_the_sdk_writes_it_and_read_back() {
        use opentelemetry::propagation::TextMapPropagator;
        use opentelemetry::trace::TraceContextExt;
        for parent in [
            format!("00-{ID}-01"),
            format!("00-{ID}-00"),
            format!("02-{ID}-09"),
        ] {
            let span = parse_traceparent(&parent, Some("a=1")).unwrap();
            let mut sdk = std::collections::HashMap::new();
            let cx = opentelemetry::Context::new().with_remote_span_context(span.clone());
            opentelemetry_sdk::propagation::TraceContextPropagator::new()
                .inject_context(&cx, &mut sdk);
            assert_eq!(
                Some(&format_traceparent(&span)),
                sdk.get(TRACEPARENT_HEADER)
            );
            assert_eq!(
                parse_traceparent(&format_traceparent(&span), Some("a=1")),
                Some(span)
            );
        }
    }
}
