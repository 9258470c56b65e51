//! A small, strict JSON (RFC 8259) reader for measurement-log records.
//!
//! Why not `serde_json::Value`: its objects keep the *last* of duplicate
//! keys, while systemd's `sd_json_variant_by_key()` returns the *first*, so
//! a record like `{"pcr":9,"pcr":11,…}` would mean different things to
//! veriroot and to `systemd-pcrlock`. This reader keeps objects as ordered
//! pairs and refuses duplicate keys outright. It also refuses, like
//! systemd's parser (`src/libsystemd/sd-json/sd-json.c`, `json_parse_string`),
//! a raw DEL (0x7F) in a string, and (stricter than systemd, which would cut
//! the C string there) the escape `\u0000`.

use std::collections::HashSet;
use std::fmt;

/// Deeper nesting than this is refused (a record is 3 levels deep).
const MAX_DEPTH: usize = 32;

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Value {
    Null,
    Bool(bool),
    /// The number exactly as written (grammar checked).
    Number(String),
    String(String),
    Array(Vec<Value>),
    /// Members in document order; keys are unique.
    Object(Vec<(String, Value)>),
}

impl Value {
    /// The member `key` of an object (`None` if absent or not an object).
    pub(crate) fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Object(members) => members.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// A non-negative integer written without fraction or exponent.
    pub(crate) fn as_u64(&self) -> Option<u64> {
        match self {
            Value::Number(n) if n.bytes().all(|b| b.is_ascii_digit()) => {
                if n.len() > 1 && n.starts_with('0') {
                    return None; // the grammar already forbids this
                }
                n.parse().ok()
            }
            _ => None,
        }
    }

    pub(crate) fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    pub(crate) fn type_name(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "a boolean",
            Value::Number(_) => "a number",
            Value::String(_) => "a string",
            Value::Array(_) => "an array",
            Value::Object(_) => "an object",
        }
    }
}

/// Where (byte offset into the parsed text) and what.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyntaxError {
    pub offset: usize,
    pub what: String,
}

impl fmt::Display for SyntaxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at byte {}", self.what, self.offset)
    }
}

impl std::error::Error for SyntaxError {}

/// Parse exactly one JSON value, with optional whitespace around it.
pub(crate) fn parse(text: &str) -> Result<Value, SyntaxError> {
    let mut p = Parser {
        s: text.as_bytes(),
        i: 0,
    };
    p.ws();
    let v = p.value(0)?;
    p.ws();
    if p.i != p.s.len() {
        return Err(p.err("trailing data after the JSON value"));
    }
    Ok(v)
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn err(&self, what: impl Into<String>) -> SyntaxError {
        SyntaxError {
            offset: self.i,
            what: what.into(),
        }
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.i += 1;
        }
    }

    fn eat(&mut self, b: u8) -> bool {
        if self.peek() == Some(b) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    fn literal(&mut self, word: &str, v: Value) -> Result<Value, SyntaxError> {
        if self.s[self.i..].starts_with(word.as_bytes()) {
            self.i += word.len();
            Ok(v)
        } else {
            Err(self.err("invalid literal"))
        }
    }

    fn value(&mut self, depth: usize) -> Result<Value, SyntaxError> {
        match self.peek() {
            None => Err(self.err("unexpected end of input")),
            Some(b'{') => self.object(depth + 1),
            Some(b'[') => self.array(depth + 1),
            Some(b'"') => Ok(Value::String(self.string()?)),
            Some(b't') => self.literal("true", Value::Bool(true)),
            Some(b'f') => self.literal("false", Value::Bool(false)),
            Some(b'n') => self.literal("null", Value::Null),
            Some(b'-' | b'0'..=b'9') => self.number(),
            Some(_) => Err(self.err("unexpected character")),
        }
    }

    fn object(&mut self, depth: usize) -> Result<Value, SyntaxError> {
        if depth > MAX_DEPTH {
            return Err(self.err("nested too deeply"));
        }
        self.i += 1; // '{'
        let mut members: Vec<(String, Value)> = Vec::new();
        // The keys seen so far: checking each new key against `members`
        // one by one made an object of n keys cost n² comparisons.
        let mut seen: HashSet<String> = HashSet::new();
        self.ws();
        if self.eat(b'}') {
            return Ok(Value::Object(members));
        }
        loop {
            self.ws();
            if self.peek() != Some(b'"') {
                return Err(self.err("expected a string key"));
            }
            let key_at = self.i;
            let key = self.string()?;
            if !seen.insert(key.clone()) {
                return Err(SyntaxError {
                    offset: key_at,
                    what: format!("duplicate key \"{key}\""),
                });
            }
            self.ws();
            if !self.eat(b':') {
                return Err(self.err("expected ':'"));
            }
            self.ws();
            let v = self.value(depth)?;
            members.push((key, v));
            self.ws();
            if self.eat(b',') {
                continue;
            }
            if self.eat(b'}') {
                return Ok(Value::Object(members));
            }
            return Err(self.err("expected ',' or '}'"));
        }
    }

    fn array(&mut self, depth: usize) -> Result<Value, SyntaxError> {
        if depth > MAX_DEPTH {
            return Err(self.err("nested too deeply"));
        }
        self.i += 1; // '['
        let mut items = Vec::new();
        self.ws();
        if self.eat(b']') {
            return Ok(Value::Array(items));
        }
        loop {
            self.ws();
            items.push(self.value(depth)?);
            self.ws();
            if self.eat(b',') {
                continue;
            }
            if self.eat(b']') {
                return Ok(Value::Array(items));
            }
            return Err(self.err("expected ',' or ']'"));
        }
    }

    fn number(&mut self) -> Result<Value, SyntaxError> {
        let start = self.i;
        self.eat(b'-');
        match self.peek() {
            Some(b'0') => self.i += 1,
            Some(b'1'..=b'9') => self.digits(),
            _ => return Err(self.err("invalid number")),
        }
        if self.eat(b'.') {
            if !matches!(self.peek(), Some(b'0'..=b'9')) {
                return Err(self.err("invalid number"));
            }
            self.digits();
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.i += 1;
            if !self.eat(b'+') {
                self.eat(b'-');
            }
            if !matches!(self.peek(), Some(b'0'..=b'9')) {
                return Err(self.err("invalid number"));
            }
            self.digits();
        }
        // Only ASCII was consumed, so this slice is valid UTF-8.
        let raw = String::from_utf8_lossy(&self.s[start..self.i]).into_owned();
        Ok(Value::Number(raw))
    }

    fn digits(&mut self) {
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.i += 1;
        }
    }

    fn hex4(&mut self) -> Result<u16, SyntaxError> {
        let mut v: u16 = 0;
        for _ in 0..4 {
            let d = match self.peek() {
                Some(c @ b'0'..=b'9') => c - b'0',
                Some(c @ b'a'..=b'f') => c - b'a' + 10,
                Some(c @ b'A'..=b'F') => c - b'A' + 10,
                _ => return Err(self.err("invalid \\u escape")),
            };
            v = v << 4 | u16::from(d);
            self.i += 1;
        }
        Ok(v)
    }

    fn string(&mut self) -> Result<String, SyntaxError> {
        self.i += 1; // '"'
        let mut out = String::new();
        loop {
            let Some(c) = self.peek() else {
                return Err(self.err("unterminated string"));
            };
            match c {
                b'"' => {
                    self.i += 1;
                    return Ok(out);
                }
                0x00..=0x1f => return Err(self.err("raw control character in string")),
                0x7f => return Err(self.err("raw DEL character in string")),
                b'\\' => {
                    let esc_at = self.i;
                    self.i += 1;
                    let e = self.peek();
                    self.i += 1;
                    let ch = match e {
                        Some(b'"') => '"',
                        Some(b'\\') => '\\',
                        Some(b'/') => '/',
                        Some(b'b') => '\u{8}',
                        Some(b'f') => '\u{c}',
                        Some(b'n') => '\n',
                        Some(b'r') => '\r',
                        Some(b't') => '\t',
                        Some(b'u') => {
                            let hi = self.hex4()?;
                            let cp = match hi {
                                0xd800..=0xdbff => {
                                    if !(self.eat(b'\\') && self.eat(b'u')) {
                                        return Err(self.err("unpaired surrogate in \\u escape"));
                                    }
                                    let lo = self.hex4()?;
                                    if !(0xdc00..=0xdfff).contains(&lo) {
                                        return Err(self.err("unpaired surrogate in \\u escape"));
                                    }
                                    0x10000
                                        + ((u32::from(hi) - 0xd800) << 10)
                                        + (u32::from(lo) - 0xdc00)
                                }
                                0xdc00..=0xdfff => {
                                    return Err(self.err("unpaired surrogate in \\u escape"))
                                }
                                _ => u32::from(hi),
                            };
                            if cp == 0 {
                                return Err(SyntaxError {
                                    offset: esc_at,
                                    what: "\\u0000 in string".into(),
                                });
                            }
                            // Surrogates were handled above, so this is a scalar value.
                            char::from_u32(cp).ok_or_else(|| self.err("invalid \\u escape"))?
                        }
                        _ => {
                            return Err(SyntaxError {
                                offset: esc_at,
                                what: "invalid escape in string".into(),
                            })
                        }
                    };
                    out.push(ch);
                }
                _ => {
                    // Copy a run of plain bytes. The input is a &str, and the
                    // run stops only at ASCII bytes, so it is whole characters.
                    let start = self.i;
                    while matches!(self.peek(), Some(b) if b != b'"' && b != b'\\' && b >= 0x20 && b != 0x7f)
                    {
                        self.i += 1;
                    }
                    out.push_str(&String::from_utf8_lossy(&self.s[start..self.i]));
                }
            }
        }
    }
}

/// Append `s` as a JSON string the way systemd's `json_format_string()`
/// (`src/libsystemd/sd-json/sd-json.c`) writes it: `"` and `\` escaped,
/// `\b \f \n \r \t` by name, other bytes below 0x20 as `\u00xx` (lowercase
/// hex), everything else (`/`, non-ASCII UTF-8) raw.
///
/// One deliberate difference: DEL (0x7F) is written as `\u007f`. systemd
/// writes it raw, but its own parser refuses a raw DEL in a string, so such
/// a record would make `systemd-pcrlock` fail on the whole log.
pub(crate) fn write_string(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    for &b in s.as_bytes() {
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            0x08 => out.extend_from_slice(b"\\b"),
            0x0c => out.extend_from_slice(b"\\f"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0x00..=0x1f | 0x7f => out.extend_from_slice(format!("\\u{b:04x}").as_bytes()),
            _ => out.push(b),
        }
    }
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(pairs: &[(&str, Value)]) -> Value {
        Value::Object(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
        )
    }

    #[test]
    fn parses_values() {
        assert_eq!(
            parse(" {\"a\":[1,-2.5e+3,true,false,null],\"b\":\"x\"}\n").unwrap(),
            obj(&[
                (
                    "a",
                    Value::Array(vec![
                        Value::Number("1".into()),
                        Value::Number("-2.5e+3".into()),
                        Value::Bool(true),
                        Value::Bool(false),
                        Value::Null,
                    ])
                ),
                ("b", Value::String("x".into())),
            ])
        );
        assert_eq!(parse("{}").unwrap(), Value::Object(vec![]));
        assert_eq!(parse("[]").unwrap(), Value::Array(vec![]));
    }

    #[test]
    fn numbers() {
        assert_eq!(parse("0").unwrap().as_u64(), Some(0));
        assert_eq!(
            parse("18446744073709551615").unwrap().as_u64(),
            Some(u64::MAX)
        );
        assert_eq!(parse("18446744073709551616").unwrap().as_u64(), None);
        assert_eq!(parse("11.0").unwrap().as_u64(), None);
        assert_eq!(parse("1e1").unwrap().as_u64(), None);
        assert_eq!(parse("-1").unwrap().as_u64(), None);
        for bad in ["01", "1.", ".5", "-", "1e", "+1", "0x10"] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn strings_and_escapes() {
        let v = parse(r#""a\"b\\c\/d\b\f\n\r\t\u00e9\ud83d\ude00""#).unwrap();
        assert_eq!(v.as_str(), Some("a\"b\\c/d\u{8}\u{c}\n\r\té😀"));
        assert_eq!(parse("\"ü\"").unwrap().as_str(), Some("ü"));
        for bad in [
            "\"\u{1}\"",
            "\"\t\"",
            "\"\u{7f}\"",
            r#""\u0000""#,
            r#""\ud83d""#,
            r#""\ude00""#,
            r#""\ud83dx""#,
            r#""\x41""#,
            r#""\u12""#,
            "\"abc",
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn structure_errors() {
        let e = parse(r#"{"pcr":9,"pcr":11}"#).unwrap_err();
        assert_eq!(e.offset, 9);
        assert!(e.what.contains("duplicate key \"pcr\""));
        for bad in [
            "",
            " ",
            "{",
            "{\"a\"}",
            "{\"a\":1,}",
            "[1,]",
            "[1 2]",
            "{} {}",
            "nul",
            "{a:1}",
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
        let deep = "[".repeat(40) + &"]".repeat(40);
        assert!(parse(&deep).unwrap_err().what.contains("deeply"));
    }

    /// An object of ~1 MB of distinct keys, as one measurement-log record.
    fn many_keys(bytes: usize) -> String {
        let mut text = String::with_capacity(bytes + 16);
        text.push('{');
        let mut i = 0u64;
        while text.len() < bytes {
            if i > 0 {
                text.push(',');
            }
            text.push_str(&format!("\"k{i}\":{i}"));
            i += 1;
        }
        text.push('}');
        text
    }

    /// Issue 13: the duplicate-key check compared each key with every
    /// earlier one, so a 1 MB record (~100,000 keys) took 38 s in
    /// `veriroot log` (quadratic; this test took 140 s in a debug build).
    /// Linear now: 0.3-0.45 s in a debug build on a loaded 2-core machine;
    /// the bound is > 20x that, and 14x below the quadratic time.
    #[test]
    fn a_megabyte_of_keys_parses_in_linear_time() {
        let text = many_keys(1 << 20);
        let started = std::time::Instant::now();
        let Value::Object(members) = parse(&text).unwrap() else {
            panic!("not an object");
        };
        let took = started.elapsed();
        assert!(members.len() > 50_000, "{}", members.len());
        assert!(
            took < std::time::Duration::from_secs(10),
            "1 MB of keys took {took:?}"
        );
        // Still refused: a duplicate at the very end.
        let dup = format!("{},\"k0\":1}}", &text[..text.len() - 1]);
        let e = parse(&dup).unwrap_err();
        assert!(e.what.contains("duplicate key \"k0\""), "{e}");
        assert_eq!(e.offset, text.len());
    }

    #[test]
    fn writes_strings_like_sd_json() {
        let mut out = Vec::new();
        write_string(&mut out, "q\"b\\s\tt \u{1}\u{1f}/ü\u{7f}\u{8}\u{c}\n\r");
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "\"q\\\"b\\\\s\\tt \\u0001\\u001f/ü\\u007f\\b\\f\\n\\r\""
        );
    }

    #[test]
    fn written_strings_parse_back() {
        let s = "any \"thing\" \\ with\tcontrol \u{2}\u{7f} and ünïcode 😀 /";
        let mut out = Vec::new();
        write_string(&mut out, s);
        let text = String::from_utf8(out).unwrap();
        assert_eq!(parse(&text).unwrap().as_str(), Some(s));
    }
}
