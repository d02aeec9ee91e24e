//! Redis glob matching (`stringmatchlen` in Redis 7.0's `util.c`), used by
//! KEYS, SCAN/HSCAN/SSCAN/ZSCAN MATCH, PSUBSCRIBE and CONFIG GET.
//!
//! Binary-safe and faithful to Redis's quirks, because clients rely on
//! them: `*`, `?`, `[abc]`, `[^a]`, `[a-z]` (reversed ranges allowed,
//! bytes >= 0x80 compare as *signed* `char`, like Redis on x86), `\x`
//! escapes (also inside brackets, where they match case-sensitively even in
//! nocase mode), an unterminated `[` matching up to the end of the pattern,
//! and the nesting cap of 1000 recursive `*` that makes abusive patterns
//! return "no match" instead of exhausting the stack. The early
//! `skip_longer_matches` cut makes `a*a*a*...b` linear instead of
//! exponential.

/// Case-sensitive match of `string` against `pattern`.
pub fn glob_match(pattern: &[u8], string: &[u8]) -> bool {
    string_match(pattern, string, false)
}

/// Match with ASCII case folding (Redis's `nocase`).
pub fn glob_match_nocase(pattern: &[u8], string: &[u8]) -> bool {
    string_match(pattern, string, true)
}

/// `stringmatchlen(pattern, string, nocase)`.
pub fn string_match(pattern: &[u8], string: &[u8], nocase: bool) -> bool {
    let mut skip_longer = false;
    match_impl(pattern, string, nocase, &mut skip_longer, 0)
}

/// Redis reads one byte past the pattern end (the sds NUL terminator) in a
/// few places; model that as 0.
fn at(p: &[u8], i: usize) -> u8 {
    p.get(i).copied().unwrap_or(0)
}

/// C `tolower` on a (signed) `char` value in the C locale.
fn lower(c: i32) -> i32 {
    if (i32::from(b'A')..=i32::from(b'Z')).contains(&c) {
        c + 32
    } else {
        c
    }
}

/// A byte as C's signed `char` on x86.
fn sc(b: u8) -> i32 {
    i32::from(b as i8)
}

fn match_impl(
    pattern: &[u8],
    string: &[u8],
    nocase: bool,
    skip_longer: &mut bool,
    nesting: u32,
) -> bool {
    // Protection against abusive patterns.
    if nesting > 1000 {
        return false;
    }
    let mut p = 0usize; // index into pattern; pattern_len = pattern.len() - p
    let mut s = 0usize;
    while p < pattern.len() && s < string.len() {
        match pattern[p] {
            b'*' => {
                while p + 1 < pattern.len() && pattern[p + 1] == b'*' {
                    p += 1;
                }
                if pattern.len() - p == 1 {
                    return true;
                }
                while s < string.len() {
                    if match_impl(
                        &pattern[p + 1..],
                        &string[s..],
                        nocase,
                        skip_longer,
                        nesting + 1,
                    ) {
                        return true;
                    }
                    if *skip_longer {
                        return false;
                    }
                    s += 1;
                }
                // No match for the rest of the pattern from anywhere in the
                // rest of the string: earlier stars cannot help either.
                *skip_longer = true;
                return false;
            }
            b'?' => {
                s += 1;
            }
            b'[' => {
                p += 1;
                let not = at(pattern, p) == b'^';
                if not {
                    p += 1;
                }
                let mut matched = false;
                let c0 = string[s];
                loop {
                    let plen = pattern.len().saturating_sub(p);
                    if at(pattern, p) == b'\\' && plen >= 2 {
                        p += 1;
                        if pattern[p] == c0 {
                            matched = true;
                        }
                    } else if at(pattern, p) == b']' {
                        break;
                    } else if plen == 0 {
                        // Unterminated class: step back so the shared
                        // `p += 1` below lands on the end.
                        p -= 1;
                        break;
                    } else if plen >= 3 && pattern[p + 1] == b'-' {
                        let (mut start, mut end) = (sc(pattern[p]), sc(pattern[p + 2]));
                        let mut c = sc(c0);
                        if start > end {
                            std::mem::swap(&mut start, &mut end);
                        }
                        if nocase {
                            start = lower(start);
                            end = lower(end);
                            c = lower(c);
                        }
                        p += 2;
                        if c >= start && c <= end {
                            matched = true;
                        }
                    } else if !nocase {
                        if pattern[p] == c0 {
                            matched = true;
                        }
                    } else if lower(sc(pattern[p])) == lower(sc(c0)) {
                        matched = true;
                    }
                    p += 1;
                }
                if not {
                    matched = !matched;
                }
                if !matched {
                    return false;
                }
                s += 1;
            }
            first => {
                let mut pc = first;
                if first == b'\\' && pattern.len() - p >= 2 {
                    p += 1;
                    pc = pattern[p];
                }
                let equal = if nocase {
                    lower(sc(pc)) == lower(sc(string[s]))
                } else {
                    pc == string[s]
                };
                if !equal {
                    return false;
                }
                s += 1;
            }
        }
        p += 1;
        if s == string.len() {
            while at(pattern, p) == b'*' {
                p += 1;
            }
            break;
        }
    }
    p >= pattern.len() && s == string.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(p: &str, s: &str) -> bool {
        glob_match(p.as_bytes(), s.as_bytes())
    }

    #[test]
    fn basics() {
        assert!(
            !m("*", ""),
            "Redis quirk: nothing matches the empty string but the empty pattern"
        );
        assert!(m("*", "anything"));
        assert!(m("h?llo", "hello"));
        assert!(m("h?llo", "hallo"));
        assert!(!m("h?llo", "hllo"));
        assert!(m("h*llo", "hllo"));
        assert!(m("h*llo", "heeeello"));
        assert!(m("h[ae]llo", "hello"));
        assert!(!m("h[ae]llo", "hillo"));
        assert!(m("h[^e]llo", "hallo"));
        assert!(!m("h[^e]llo", "hello"));
        assert!(m("h[a-b]llo", "hbllo"));
        assert!(!m("h[a-b]llo", "hcllo"));
        assert!(m("h[b-a]llo", "hallo"), "reversed range");
        assert!(m("\\*", "*"));
        assert!(!m("\\*", "a"));
        assert!(m("a\\", "a\\"), "trailing backslash is literal");
        assert!(m("[\\]]", "]"));
        assert!(m("[a-]", "a"));
        assert!(m("", ""));
        assert!(!m("", "a"));
        assert!(!m("a", ""));
        assert!(m("a**", "a"));
        assert!(m("*a*", "bab"));
        assert!(!m("*a*", "bbb"));
        assert!(m("user:*:name", "user:1000:name"));
    }

    #[test]
    fn unterminated_class_matches_like_redis() {
        // "[abc" behaves as "[abc]" that also ends the pattern.
        assert!(m("[abc", "a"));
        assert!(!m("[abc", "d"));
        assert!(!m("[abc", "ab"));
        assert!(
            !m("x[", "x\0"),
            "an empty unterminated class matches nothing"
        );
    }

    #[test]
    fn nocase() {
        assert!(glob_match_nocase(b"HELLO*", b"hello world"));
        assert!(glob_match_nocase(b"[A-C]x", b"bX"));
        assert!(glob_match_nocase(b"[^a]", b"B"));
        assert!(!glob_match_nocase(b"[^a]", b"A"));
        // Escapes inside a class compare exactly even in nocase mode.
        assert!(!glob_match_nocase(b"[\\A]", b"a"));
    }

    #[test]
    fn binary_and_signed_ranges() {
        assert!(glob_match(b"a\x00b", b"a\x00b"));
        assert!(glob_match(b"?", b"\xff"));
        // 0xff is -1 as a signed char: [a-\xff] is the range [-1, 'a'].
        assert!(glob_match(b"[a-\xff]", b"\xff"));
        assert!(glob_match(b"[a-\xff]", b"0"));
        assert!(!glob_match(b"[a-\xff]", b"b"));
    }

    #[test]
    fn pathological_patterns_are_fast() {
        let pattern = "a*".repeat(40) + "b";
        let string = "a".repeat(200);
        let start = std::time::Instant::now();
        assert!(!m(&pattern, &string));
        assert!(start.elapsed() < std::time::Duration::from_secs(2));
        // Deep nesting is cut at 1000 levels instead of overflowing.
        let pattern = "*?".repeat(2000);
        let string = "x".repeat(2000);
        let _ = m(&pattern, &string);
    }

    fn unhex(h: &str) -> Vec<u8> {
        if h == "-" {
            return Vec::new();
        }
        (0..h.len() / 2)
            .map(|i| u8::from_str_radix(&h[2 * i..2 * i + 2], 16).expect("hex"))
            .collect()
    }

    /// Differential test against Redis's own C implementation (see the
    /// header of the data file for how it was produced).
    #[test]
    fn matches_redis_oracle_vectors() {
        let data = include_str!("../tests/data/glob_vectors.txt");
        let mut n = 0;
        for line in data
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
        {
            let f: Vec<&str> = line.split(' ').collect();
            let (p, s, nocase, want) = (unhex(f[0]), unhex(f[1]), f[2] == "1", f[3] == "1");
            assert_eq!(
                string_match(&p, &s, nocase),
                want,
                "pattern {:?} string {:?} nocase {nocase}",
                f[0],
                f[1]
            );
            n += 1;
        }
        assert_eq!(n, 4000);
    }
}
