//! The Redis keys and channels of a bus, as DESIGN.md's wire format names
//! them, and the check of every name that becomes part of one.

use crate::error::NameError;

/// Checks a name that becomes part of Redis keys and `PSUBSCRIBE` patterns.
///
/// Glob characters would make a subscription of one tenant match another's
/// channels, braces would move the Redis Cluster hash tag, and `:` would make
/// `ns:tenant:channel:type` ambiguous.
pub(crate) fn check_name(what: &'static str, name: &str) -> Result<(), NameError> {
    let err = |reason: String| NameError {
        what,
        name: name.to_owned(),
        reason,
    };
    if name.is_empty() {
        return Err(err("it is empty".to_owned()));
    }
    if let Some(c) = name.chars().find(|c| {
        matches!(c, '*' | '?' | '[' | ']' | '{' | '}' | ':' | '\\')
            || c.is_whitespace()
            || c.is_control()
    }) {
        return Err(err(format!(
            "it contains {c:?}; glob characters (* ? [ ]), braces, `:`, `\\` and whitespace are not allowed"
        )));
    }
    Ok(())
}

/// Key of a stream: `ns:{stream}`, or `ns:{tenant:stream}` for a tenant.
pub(crate) fn stream_key(ns: &str, tenant: Option<&str>, stream: &str) -> String {
    let mut k = String::with_capacity(ns.len() + stream.len() + 4 + tenant.map_or(0, str::len));
    k.push_str(ns);
    k.push_str(":{");
    if let Some(t) = tenant {
        k.push_str(t);
        k.push(':');
    }
    k.push_str(stream);
    k.push('}');
    k
}

pub(crate) fn channel_key(
    ns: &str,
    tenant: Option<&str>,
    channel: &str,
    type_name: &str,
) -> String {
    let mut k = String::with_capacity(
        ns.len() + channel.len() + type_name.len() + 3 + tenant.map_or(0, str::len),
    );
    k.push_str(ns);
    k.push(':');
    if let Some(t) = tenant {
        k.push_str(t);
        k.push(':');
    }
    k.push_str(channel);
    k.push(':');
    k.push_str(type_name);
    k
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bus::Bus;
    use crate::error::Error;

    #[test]
    fn keys_follow_the_design() {
        assert_eq!(
            stream_key("tidings", None, "contextual"),
            "tidings:{contextual}"
        );
        assert_eq!(
            stream_key("tidings", Some("psychotest"), "contextual"),
            "tidings:{psychotest:contextual}"
        );
        assert_eq!(
            channel_key("tidings", None, "notifications", "gate.opened"),
            "tidings:notifications:gate.opened"
        );
        assert_eq!(
            channel_key(
                "tidings",
                Some("psychotest"),
                "notifications",
                "gate.opened"
            ),
            "tidings:psychotest:notifications:gate.opened"
        );
        let bus = Bus::in_memory();
        assert_eq!(
            bus.dead_letter_key("contextual"),
            "tidings:{contextual}:dlq"
        );
    }

    #[test]
    fn tenant_names_that_break_keys_are_rejected() {
        let bus = Bus::in_memory();
        for bad in [
            "", "a*", "a?", "a[b", "b]", "{x", "x}", "a:b", "a b", "a\tb",
        ] {
            match bus.tenant(bad) {
                Err(Error::InvalidName(e)) => assert_eq!(e.what, "tenant"),
                other => panic!("tenant {bad:?} should be rejected, got {other:?}"),
            }
        }
        assert!(bus.tenant("psychotest").is_ok());
        assert!(bus.tenant("acme-eu_1.x").is_ok());
    }
}
