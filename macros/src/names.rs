//! The rule for names that become part of Redis keys and patterns (streams,
//! channels, groups), the same the runtime applies to names given at run time.

/// Characters a name may not hold: Redis glob metacharacters
/// (`PSUBSCRIBE ns:channel:*` must mean what it says), the `:` that separates
/// the parts of a key, and the braces of a hash tag.
const FORBIDDEN: &[char] = &['*', '?', '[', ']', '{', '}', ':', '\\'];

/// Longest name, as the runtime checks it.
const MAX_NAME_LEN: usize = 128;

/// Why `name` cannot be a stream, channel or group name, if it cannot.
pub(crate) fn topic_problem(name: &str) -> Option<String> {
    if name.is_empty() {
        return Some("it is empty".to_owned());
    }
    if name.len() > MAX_NAME_LEN {
        return Some(format!(
            "it is {} bytes long; at most {MAX_NAME_LEN} are allowed",
            name.len()
        ));
    }
    if let Some(c) = name.chars().find(|c| c.is_whitespace() || c.is_control()) {
        return Some(format!(
            "it contains whitespace ({c:?}); use `-`, `_` or `.` between words"
        ));
    }
    if let Some(c) = name.chars().find(|c| FORBIDDEN.contains(c)) {
        return Some(format!(
            "it contains `{c}`, which breaks Redis keys and patterns (`*`, `?`, `[`, `]`, `{{`, `}}`, `:` and `\\` are not allowed)"
        ));
    }
    None
}
