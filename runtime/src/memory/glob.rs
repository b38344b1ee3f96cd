//! Glob matching with the rules of Redis `PSUBSCRIBE` (`stringmatchlen`):
//! `*`, `?`, `[abc]`, `[^abc]`, `[a-z]`, and `\` to escape.

/// Whether `text` matches the Redis glob `pattern`.
pub(crate) fn matches(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0usize, 0usize);
    // Position after the last `*` in the pattern, and the text position it
    // was tried at, for backtracking.
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() {
            match pattern[p] {
                b'*' => {
                    star = Some((p + 1, t));
                    p += 1;
                    continue;
                }
                b'?' => {
                    p += 1;
                    t += 1;
                    continue;
                }
                b'[' => {
                    if let Some((ok, next)) = class(pattern, p, text[t]) {
                        if ok {
                            p = next;
                            t += 1;
                            continue;
                        }
                    }
                }
                b'\\' if p + 1 < pattern.len() => {
                    if pattern[p + 1] == text[t] {
                        p += 2;
                        t += 1;
                        continue;
                    }
                }
                c => {
                    if c == text[t] {
                        p += 1;
                        t += 1;
                        continue;
                    }
                }
            }
        }
        match star {
            Some((sp, st)) => {
                p = sp;
                t = st + 1;
                star = Some((sp, st + 1));
            }
            None => return false,
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

/// Matches `c` against the class opening at `pattern[start] == b'['`;
/// returns whether it matched and the pattern position after the class.
fn class(pattern: &[u8], start: usize, c: u8) -> Option<(bool, usize)> {
    let mut i = start + 1;
    let negate = pattern.get(i) == Some(&b'^');
    if negate {
        i += 1;
    }
    let mut matched = false;
    loop {
        let cur = *pattern.get(i)?;
        if cur == b']' {
            break;
        }
        if cur == b'\\' && i + 1 < pattern.len() {
            if pattern[i + 1] == c {
                matched = true;
            }
            i += 2;
        } else if pattern.get(i + 1) == Some(&b'-')
            && i + 2 < pattern.len()
            && pattern[i + 2] != b']'
        {
            let (lo, hi) = (cur.min(pattern[i + 2]), cur.max(pattern[i + 2]));
            if (lo..=hi).contains(&c) {
                matched = true;
            }
            i += 3;
        } else {
            if cur == c {
                matched = true;
            }
            i += 1;
        }
    }
    Some((matched != negate, i + 1))
}

#[cfg(test)]
mod tests {
    use super::matches;

    #[test]
    fn glob_follows_redis_psubscribe_rules() {
        let yes = [
            ("t:n:gate.*", "t:n:gate.opened"),
            ("t:n:gate.*", "t:n:gate."),
            ("*", ""),
            ("h?llo", "hello"),
            ("h[ae]llo", "hallo"),
            ("h[^e]llo", "hallo"),
            ("h[a-b]llo", "hbllo"),
            ("a*b*c", "aXXbYYc"),
            ("a\\*", "a*"),
        ];
        for (p, t) in yes {
            assert!(matches(p.as_bytes(), t.as_bytes()), "{p} should match {t}");
        }
        let no = [
            ("t:n:gate.*", "t:n:door.opened"),
            ("t:n:gate.*", "t:psy:n:gate.opened"),
            ("h?llo", "hllo"),
            ("h[^e]llo", "hello"),
            ("h[a-b]llo", "hcllo"),
            ("a\\*", "ab"),
            ("abc", "abcd"),
        ];
        for (p, t) in no {
            assert!(
                !matches(p.as_bytes(), t.as_bytes()),
                "{p} should not match {t}"
            );
        }
    }
}
