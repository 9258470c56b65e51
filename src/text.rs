//! Text from outside (the disk, an appended command line) on its way to
//! the console and the journal: control characters escaped, length capped,
//! so that it cannot rewrite the screen, forge log lines or flood them.

/// Longest text shown from outside, in characters.
pub const MAX_SHOWN: usize = 200;

/// `s` with every control character (and the backslash) escaped as
/// `\n`, `\x1b`, `\u{85}`…, cut at [`MAX_SHOWN`] characters with `…`.
pub fn escape(s: &str) -> String {
    escape_capped(s, MAX_SHOWN)
}

/// [`escape`] with another cap, for records that keep a whole message.
pub fn escape_capped(s: &str, max: usize) -> String {
    let mut out = String::with_capacity(s.len().min(max));
    for (i, c) in s.chars().enumerate() {
        if i == max {
            out.push('…');
            break;
        }
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c if c.is_control() => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_cannot_reach_the_console() {
        assert_eq!(escape("fsverity-sha256-12"), "fsverity-sha256-12");
        assert_eq!(
            escape("x\u{1b}[2J\nveriroot: measured\r\u{85}\\"),
            "x\\x1b[2J\\nveriroot: measured\\r\\u{85}\\\\"
        );
        let long = "a".repeat(1000);
        let shown = escape(&long);
        assert_eq!(shown.chars().count(), MAX_SHOWN + 1);
        assert!(shown.ends_with('…'));
    }
}
