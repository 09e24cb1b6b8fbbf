//! Character classes and small scanners shared by the RFC 3261 §25 grammar pieces.
//!
//! Everything here works on already-unfolded header text: line folding is undone by the
//! message parser, so linear white space (LWS) is just spaces and tabs.

/// `token` characters (RFC 3261 §25.1).
pub(crate) fn is_token_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&b)
}

pub(crate) fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(is_token_char)
}

/// `word` characters, used by Call-ID: token characters plus a few separators.
pub(crate) fn is_word_char(b: u8) -> bool {
    is_token_char(b) || b"()<>:\\\"/[]?{}".contains(&b)
}

pub(crate) fn is_lws(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

pub(crate) fn trim_lws(s: &str) -> &str {
    s.trim_matches([' ', '\t'])
}

/// `unreserved` = alphanum / mark.
pub(crate) fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-_.!~*'()".contains(&b)
}

/// Checks that `s` only holds bytes accepted by `allowed` or well-formed `%HH` escapes.
pub(crate) fn is_escaped_text(s: &str, allowed: impl Fn(u8) -> bool) -> bool {
    let bytes = s.as_bytes();
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            let hex = bytes.get(i + 1..i + 3);
            if !hex.is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)) {
                return false;
            }
            i += 3;
        } else if allowed(b) {
            i += 1;
        } else {
            return false;
        }
    }
    true
}

/// Decodes `%HH` escapes; malformed escapes are kept literally (RFC 4475 §3.1.1.5 shows
/// `%` that is not an escape in places where the grammar does not require escaping).
pub(crate) fn unescape(s: &str) -> Vec<u8> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%'
            && let Some(h) = bytes.get(i + 1).and_then(|&c| hex_val(c))
            && let Some(l) = bytes.get(i + 2).and_then(|&c| hex_val(c))
        {
            out.push(h << 4 | l);
            i += 3;
            continue;
        }
        out.push(b);
        i += 1;
    }
    out
}

fn hex_val(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Parses a quoted string starting at `s[0] == '"'`. Returns the unescaped content and the
/// byte length consumed, including both quotes.
pub(crate) fn quoted_string(s: &str) -> Option<(String, usize)> {
    let bytes = s.as_bytes();
    if bytes.first() != Some(&b'"') {
        return None;
    }
    let mut out = Vec::new();
    let mut i = 1;
    loop {
        match *bytes.get(i)? {
            b'"' => return String::from_utf8(out).ok().map(|s| (s, i + 1)),
            b'\\' => {
                // quoted-pair = "\" (%x00-09 / %x0B-0C / %x0E-7F)
                let next = *bytes.get(i + 1)?;
                if next == b'\r' || next == b'\n' || next >= 0x80 {
                    return None;
                }
                out.push(next);
                i += 2;
            }
            b'\r' | b'\n' => return None,
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
}

/// Writes `s` as a quoted string, escaping what qdtext cannot carry.
pub(crate) fn write_quoted(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            // CR and LF cannot be escaped; they can only come from a caller-built value.
            '\r' | '\n' => out.push(' '),
            c if c.is_ascii_control() && c != '\t' => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Byte offset of the first `delim` outside quoted strings and `<...>`, if any.
pub(crate) fn find_top_level(s: &str, delim: u8) -> Option<usize> {
    let bytes = s.as_bytes();
    let mut i = 0;
    let mut in_angle = false;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'"' if !in_angle => {
                let (_, len) = quoted_string(s.get(i..)?)?;
                i += len;
                continue;
            }
            b if b == delim && !in_angle => return Some(i),
            b'<' => in_angle = true,
            b'>' => in_angle = false,
            _ => {}
        }
        i += 1;
    }
    None
}

/// Splits a header value into its comma-separated elements (RFC 3261 §7.3.1), respecting
/// quoted strings and `<...>`. Elements are trimmed; empty elements are kept so that callers
/// can reject `a,,b` where the grammar forbids it. Fails on an unterminated quoted string.
pub(crate) fn split_commas(s: &str) -> Option<Vec<&str>> {
    let mut parts = Vec::new();
    let mut rest = s;
    loop {
        // An unbalanced quote makes `find_top_level` stop early; detect that explicitly.
        match find_top_level(rest, b',') {
            Some(idx) => {
                parts.push(trim_lws(rest.get(..idx)?));
                rest = rest.get(idx + 1..)?;
            }
            None => {
                if has_unterminated_quote(rest) {
                    return None;
                }
                parts.push(trim_lws(rest));
                return Some(parts);
            }
        }
    }
}

fn has_unterminated_quote(s: &str) -> bool {
    let bytes = s.as_bytes();
    let mut i = 0;
    let mut in_angle = false;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'"' if !in_angle => match s.get(i..).and_then(quoted_string) {
                Some((_, len)) => {
                    i += len;
                    continue;
                }
                None => return true,
            },
            b'<' => in_angle = true,
            b'>' => in_angle = false,
            _ => {}
        }
        i += 1;
    }
    false
}

/// Parses a run of decimal digits into a `u64`, rejecting empty input, signs and overflow.
pub(crate) fn parse_u64(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

pub(crate) fn parse_u32(s: &str) -> Option<u32> {
    parse_u64(s).and_then(|v| u32::try_from(v).ok())
}

/// A forward-only cursor over header text, for the structured header grammars.
pub(crate) struct Cursor<'a> {
    s: &'a str,
    pos: usize,
}

impl<'a> Cursor<'a> {
    pub(crate) fn new(s: &'a str) -> Self {
        Self { s, pos: 0 }
    }

    pub(crate) fn rest(&self) -> &'a str {
        self.s.get(self.pos..).unwrap_or("")
    }

    pub(crate) fn peek(&self) -> Option<u8> {
        self.s.as_bytes().get(self.pos).copied()
    }

    /// Skips spaces and tabs; returns whether any were skipped.
    pub(crate) fn skip_lws(&mut self) -> bool {
        let n = self.rest().bytes().take_while(|&b| is_lws(b)).count();
        self.pos += n;
        n > 0
    }

    /// Consumes `c` if it is next, after optional LWS on both sides.
    pub(crate) fn eat_sep(&mut self, c: u8) -> bool {
        let save = self.pos;
        self.skip_lws();
        if self.peek() == Some(c) {
            self.pos += 1;
            self.skip_lws();
            true
        } else {
            self.pos = save;
            false
        }
    }

    pub(crate) fn take_while(&mut self, f: impl Fn(u8) -> bool) -> &'a str {
        let n = self.rest().bytes().take_while(|&b| f(b)).count();
        let out = self.s.get(self.pos..self.pos + n).unwrap_or("");
        self.pos += n;
        out
    }

    pub(crate) fn take_n(&mut self, n: usize) -> &'a str {
        let out = self.s.get(self.pos..self.pos + n).unwrap_or("");
        self.pos += out.len();
        out
    }

    pub(crate) fn token(&mut self) -> Option<&'a str> {
        let t = self.take_while(is_token_char);
        (!t.is_empty()).then_some(t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_commas_respects_quotes_and_brackets() {
        let parts = split_commas(r#""a, b" <sip:x@y;p=1,2>, <sip:z>;q=1"#).unwrap();
        assert_eq!(parts, vec![r#""a, b" <sip:x@y;p=1,2>"#, "<sip:z>;q=1"]);
    }

    #[test]
    fn split_commas_rejects_unterminated_quote() {
        assert!(split_commas(r#""abc <sip:x>"#).is_none());
    }

    #[test]
    fn quoted_string_unescapes_pairs() {
        let (s, len) = quoted_string(r#""J Rosenberg \\\"" rest"#).unwrap();
        assert_eq!(s, r#"J Rosenberg \""#);
        assert_eq!(len, 18);
    }

    #[test]
    fn unescape_keeps_malformed_percent() {
        assert_eq!(unescape("%Z%45%4"), b"%ZE%4".to_vec());
    }

    #[test]
    fn parse_u64_rejects_signs_and_overflow() {
        assert_eq!(parse_u64("0009"), Some(9));
        assert_eq!(parse_u64("-1"), None);
        assert_eq!(parse_u64("+1"), None);
        assert_eq!(parse_u64("36893488147419103232"), None);
    }
}
