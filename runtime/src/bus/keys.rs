//! The Redis keys and channels of a bus, as DESIGN.md's wire format names
//! them, and the check of every name that becomes part of one.

use crate::error::NameError;

/// Longest tenant name: it is part of every key and channel of the tenant.
pub(crate) const MAX_TENANT_LEN: usize = 64;

/// Longest stream, channel, group, consumer or namespace name.
pub(crate) const MAX_NAME_LEN: usize = 128;

/// Checks a name that becomes part of Redis keys and `PSUBSCRIBE` patterns.
///
/// Glob characters would make a subscription of one tenant match another's
/// channels, braces would move the Redis Cluster hash tag, and `:` would make
/// `ns:{tenant:stream}` and `ns:{stream}` ambiguous.
pub(crate) fn check_name(what: &'static str, name: &str) -> Result<(), NameError> {
    if what == "tenant" && name == REPLY_SCOPE {
        return Err(NameError {
            what,
            name: name.to_owned(),
            reason: format!(
                "`{REPLY_SCOPE}` is reserved: `ns:{{{REPLY_SCOPE}:<instance>}}` are the reply streams of the buses"
            ),
        });
    }
    let max = if what == "tenant" {
        MAX_TENANT_LEN
    } else {
        MAX_NAME_LEN
    };
    check_chars(
        what,
        name,
        max,
        forbidden_in_name,
        "glob characters (* ? [ ]), braces, `:`, `\\` and whitespace are not allowed",
    )
}

/// Whether `c` may not stand in a name given at run time: glob characters,
/// braces, `:`, `\\`, whitespace and control characters.
pub(crate) fn forbidden_in_name(c: char) -> bool {
    matches!(c, '*' | '?' | '[' | ']' | '{' | '}' | ':' | '\\')
        || c.is_whitespace()
        || c.is_control()
}

/// Checks the type pattern of [`Bus::subscribe_pattern`](crate::Bus::subscribe_pattern):
/// a glob over type names (`gate.*`, `file.[a-z]*`), so `*`, `?`, `[`, `]`
/// and `^` are allowed, but not a `:`, a brace or a `\`: the pattern follows
/// the literal `ns:channel:` (or `ns:{tenant}:channel:`), so whatever it
/// matches stays inside that channel.
pub(crate) fn check_type_pattern(pattern: &str) -> Result<(), NameError> {
    check_chars(
        "type pattern",
        pattern,
        MAX_NAME_LEN,
        |c| matches!(c, '{' | '}' | ':' | '\\'),
        "braces, `:`, `\\` and whitespace are not allowed in a type pattern",
    )
}

fn check_chars(
    what: &'static str,
    name: &str,
    max: usize,
    forbidden: impl Fn(char) -> bool,
    rule: &str,
) -> Result<(), NameError> {
    let reason = if name.is_empty() {
        "it is empty".to_owned()
    } else if name.len() > max {
        format!("it is {} bytes long; at most {max} are allowed", name.len())
    } else if let Some(c) = name
        .chars()
        .find(|&c| forbidden(c) || c.is_whitespace() || c.is_control())
    {
        format!("it contains {c:?}; {rule}")
    } else {
        return Ok(());
    };
    Err(NameError {
        what,
        name: name.to_owned(),
        reason,
    })
}

/// The scope of the reply streams, `ns:{reply:<instance>}`: no tenant may
/// take its name, so that no tenant's stream is a reply stream.
pub(crate) const REPLY_SCOPE: &str = "reply";

/// Checks that `key` is a reply stream of the namespace `ns`:
/// `ns:{reply:<instance>}`, the instance a valid name.
pub(crate) fn check_reply_key(ns: &str, key: &str) -> Result<(), NameError> {
    let instance = key
        .strip_prefix(ns)
        .and_then(|k| k.strip_prefix(":{reply:"))
        .and_then(|k| k.strip_suffix('}'));
    match instance {
        Some(instance) => check_name("reply stream", instance).map(|_| ()),
        None => Err(NameError {
            what: "reply stream",
            name: key.to_owned(),
            reason: format!("a reply stream of this bus is `{ns}:{{reply:<instance>}}`"),
        }),
    }
}

/// The sorted set of a stream's delayed events, `ns:{stream}:delayed`: in
/// the stream's hash slot, beside its dead letters.
pub(crate) fn delayed_key(stream_key: &str) -> String {
    format!("{stream_key}:delayed")
}

/// The retry stream of `group` on the stream (or partition) `stream_key`,
/// `<stream key>:retry:<group>`: in the stream's hash slot, read by that
/// group only. A group name holds no `:`, so no two groups share one.
pub(crate) fn retry_stream_key(stream_key: &str, group: &str) -> String {
    format!("{stream_key}:retry:{group}")
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

/// Channel of an event type: `ns:channel:type`, or `ns:{tenant}:channel:type`
/// for a tenant. A root channel name cannot start with `{`, and a tenant name
/// cannot hold `}`, so no pattern of the root bus or of another tenant,
/// whose literal prefix is `ns:channel:` or `ns:{other}:`, matches a
/// tenant's channels.
pub(crate) fn channel_key(
    ns: &str,
    tenant: Option<&str>,
    channel: &str,
    type_name: &str,
) -> String {
    let mut k = String::with_capacity(
        ns.len() + channel.len() + type_name.len() + 5 + tenant.map_or(0, str::len),
    );
    k.push_str(ns);
    k.push(':');
    if let Some(t) = tenant {
        k.push('{');
        k.push_str(t);
        k.push_str("}:");
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
            "tidings:{psychotest}:notifications:gate.opened"
        );
        let bus = Bus::in_memory();
        assert_eq!(
            bus.dead_letter_key("contextual").unwrap(),
            "tidings:{contextual}:dlq"
        );
    }

    #[test]
    fn tenant_names_that_break_keys_are_rejected() {
        let bus = Bus::in_memory();
        for bad in [
            "", "a*", "a?", "a[b", "b]", "{x", "x}", "a:b", "a b", "a\tb", "reply",
        ] {
            match bus.tenant(bad) {
                Err(Error::InvalidName(e)) => assert_eq!(e.what, "tenant"),
                other => panic!("tenant {bad:?} should be rejected, got {other:?}"),
            }
        }
        assert!(bus.tenant("psychotest").is_ok());
        assert!(bus.tenant("replies").is_ok());
        // Nor through a `Meta`: the reply streams are no tenant's.
        let meta = crate::Meta::default().tenant("reply");
        assert!(bus.effective_tenant(Some(&meta)).is_err());
        assert!(bus.tenant("acme-eu_1.x").is_ok());
    }
}
