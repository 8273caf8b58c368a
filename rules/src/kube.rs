//! How a service is named in Kubernetes: what `pactum manifests` writes and what the generated
//! clients' `for_service` resolve, from one rule.

/// The Kubernetes `Service` name of a contract's service: its name with `_` as `-` (a DNS-1035
/// label allows neither `_` nor leading or trailing `-`).
pub fn service_name(service: &str) -> String {
    service.replace('_', "-").trim_matches('-').to_string()
}

/// Whether `name` is a DNS-1035 label (a `Service` name): 1–63 lower-case letters, digits and
/// `-`, starting with a letter, not ending with `-`.
pub fn is_dns_label(name: &str) -> bool {
    label(name, |first| first.is_ascii_lowercase())
}

/// Whether `name` is a DNS-1123 label (a namespace): as [`is_dns_label`], but it may start
/// with a digit.
pub fn is_namespace(name: &str) -> bool {
    label(name, |first| {
        first.is_ascii_lowercase() || first.is_ascii_digit()
    })
}

/// 1–63 lower-case letters, digits and `-`, not ending with `-`, its first byte as `first`
/// allows.
fn label(name: &str, first: fn(&u8) -> bool) -> bool {
    let b = name.as_bytes();
    b.first().is_some_and(first)
        && b.len() <= 63
        && b.last() != Some(&b'-')
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_dns_rules() {
        assert_eq!(service_name("order_history"), "order-history");
        assert_eq!(service_name("orders_"), "orders");
        assert!(is_dns_label("orders") && is_dns_label("order-history"));
        assert!(
            !is_dns_label("Orders") && !is_dns_label("1orders") && !is_dns_label(&"a".repeat(64))
        );
        assert!(is_namespace("shop") && is_namespace("1shop"));
        assert!(!is_namespace("acme.shop") && !is_namespace("shop_eu") && !is_namespace(""));
    }
}
