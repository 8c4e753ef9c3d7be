//! The text rules every stored or keyed string obeys, checked before any backend sees it: no
//! NUL and no control characters (PostgreSQL refuses NUL, Redis keys and logs must not carry
//! them), and a length in characters. The server, gRPC and an embedder get the same answer
//! from every backend.

use crate::{Error, Result};

/// Whether `c` may appear in one-line text (names, titles, usernames, phones).
fn one_line(c: char) -> bool {
    !c.is_control()
}

/// Whether `c` may appear in free text (descriptions): one-line text, newlines and tabs.
fn multi_line(c: char) -> bool {
    !c.is_control() || c == '\n' || c == '\t'
}

/// A one-line text field: `min..=max` characters, not blank when `min > 0`, no control
/// characters. The error names the field.
pub fn check_line(field: &str, value: &str, min: usize, max: usize) -> Result<()> {
    check(field, value, min, max, one_line)
}

/// A free-text field: up to `max` characters, newlines and tabs allowed, no other control
/// characters.
pub fn check_free_text(field: &str, value: &str, max: usize) -> Result<()> {
    check(field, value, 0, max, multi_line)
}

fn check(
    field: &str,
    value: &str,
    min: usize,
    max: usize,
    allowed: fn(char) -> bool,
) -> Result<()> {
    if let Some(c) = value.chars().find(|c| !allowed(*c)) {
        return Err(Error::invalid(format!(
            "{field}: control character U+{:04X} is not allowed",
            u32::from(c)
        )));
    }
    let n = value.chars().count();
    if n < min || n > max || (min > 0 && value.trim().is_empty()) {
        return Err(Error::invalid(if min > 0 {
            format!("{field}: {min} to {max} characters")
        } else {
            format!("{field}: at most {max} characters")
        }));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_nul_controls_blank_and_lengths() {
        assert!(check_line("name", "周杰伦 演唱会", 1, 200).is_ok());
        for bad in ["", "   ", "a\0b", "a\nb", "\u{1b}[31m", &"x".repeat(201)] {
            let e = check_line("name", bad, 1, 200).unwrap_err();
            assert!(e.to_string().contains("name:"), "{bad:?}: {e}");
        }
        // Length counts characters, not bytes.
        assert!(check_line("name", &"票".repeat(200), 1, 200).is_ok());
        assert!(check_free_text("description", "line 1\nline 2\tend", 2000).is_ok());
        assert!(check_free_text("description", "", 2000).is_ok());
        assert!(check_free_text("description", "a\0", 2000).is_err());
        assert!(check_free_text("description", "a\r", 2000).is_err());
    }
}
