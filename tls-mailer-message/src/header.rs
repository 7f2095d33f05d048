//! The one rule for what a header value may contain.
//!
//! On the wire a bare CR is a line end (the SMTP encoders turn it into
//! CRLF), so any CR or LF inside a value would start a new header field.
//! Other control characters have no place in a header either: NUL breaks
//! parsers, and ESC or BEL sequences drive the terminal of whoever reads
//! the message. The rule is checked when a value enters an [`Email`]
//! (builder or import) and again on export, so a value cannot escape it
//! however it was built.
//!
//! [`Email`]: crate::Email

use crate::error::MessageError;

/// A header value may hold any text but control characters: no CR, LF,
/// NUL or other C0 control except HTAB, no DEL, no C1 control.
pub(crate) fn is_header_text(value: &str) -> bool {
    !value.chars().any(|c| c.is_control() && c != '\t')
}

/// [`is_header_text`], as an error naming the header.
pub(crate) fn check_header_value(header: &str, value: &str) -> Result<(), MessageError> {
    if is_header_text(value) {
        Ok(())
    } else {
        Err(MessageError::HeaderInjection {
            name: header.to_string(),
        })
    }
}

/// A field name (RFC 5322 2.2: printable ASCII but `:`) and a value by
/// [`is_header_text`].
pub(crate) fn check_header(name: &str, value: &str) -> Result<(), MessageError> {
    let name_ok = !name.is_empty() && name.bytes().all(|b| (33..=126).contains(&b) && b != b':');
    if name_ok {
        check_header_value(name, value)
    } else {
        Err(MessageError::HeaderInjection {
            name: name.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_text_refuses_every_control_but_tab() {
        assert!(is_header_text("plain text, ünïcödé, \t tabs"));
        assert!(is_header_text(""));
        for control in (0u32..0x20).chain(0x7f..0xa0).filter(|&c| c != 0x09) {
            let c = char::from_u32(control).unwrap();
            assert!(!is_header_text(&format!("a{c}b")), "U+{control:04X}");
        }
    }

    #[test]
    fn header_names_are_printable_ascii_without_colon() {
        assert!(check_header("X-Campaign", "spring").is_ok());
        for bad in ["", "X A", "X:A", "X-Ä", "X\r\nBcc"] {
            assert!(
                matches!(check_header(bad, "v"), Err(MessageError::HeaderInjection { name }) if name == bad),
                "{bad:?}"
            );
        }
        assert!(matches!(
            check_header("X-A", "v\u{1b}]0;x\u{7}"),
            Err(MessageError::HeaderInjection { name }) if name == "X-A"
        ));
    }
}
