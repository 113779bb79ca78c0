//! Keeping personal data and secrets out of logs: text that came from outside (a
//! provider's error, a failure's description) is logged through [`Redacted`], which
//! replaces e-mail addresses, phone numbers and URLs (whose path or query may hold a
//! secret) with a placeholder.

use std::borrow::Cow;
use std::fmt;
use std::sync::LazyLock;

use regex::{Captures, Regex};

/// URLs first (they may hold an `@`), then e-mail addresses, then runs of digits long
/// enough to be a phone number.
static PERSONAL: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(concat!(
        r#"(?P<url>[A-Za-z][A-Za-z0-9+.-]*://[^\s<>()"']*[^\s<>()"'.,;:])"#,
        r"|(?P<email>[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+)",
        r"|(?P<phone>\+?\(?\d[\d ().-]{5,}\d)",
    ))
    .expect("a valid pattern")
});

/// A phone number has at least this many digits (fewer: an SMTP code like `5.1.1`, an
/// IP address's `127.0.0.1`, a provider's error code).
const PHONE_DIGITS: usize = 8;

/// `text` with e-mail addresses, phone numbers and URLs replaced by `[e-mail]`,
/// `[phone]` and `[url]`.
pub fn personal_data(text: &str) -> Cow<'_, str> {
    PERSONAL.replace_all(text, |c: &Captures<'_>| {
        if c.name("url").is_some() {
            "[url]".to_string()
        } else if c.name("email").is_some() {
            "[e-mail]".to_string()
        } else {
            let run = &c[0];
            if run.chars().filter(char::is_ascii_digit).count() >= PHONE_DIGITS {
                "[phone]".to_string()
            } else {
                run.to_string()
            }
        }
    })
}

/// Displays a value with [`personal_data`] taken out: `error = %Redacted(&e)`.
pub struct Redacted<T>(pub T);

impl<T: fmt::Display> fmt::Display for Redacted<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&personal_data(&self.0.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_numbers_and_urls_are_taken_out_and_codes_stay() {
        let cases = [
            (
                "permanent error (550): 5.1.1 <ada.lovelace+news@example.co.uk>: user unknown",
                "permanent error (550): 5.1.1 <[e-mail]>: user unknown",
            ),
            (
                "400: The 'To' number +39 333 123 4567 is not a valid phone number. (21211)",
                "400: The 'To' number [phone] is not a valid phone number. (21211)",
            ),
            (
                "recipient 393331234567 not on WhatsApp",
                "recipient [phone] not on WhatsApp",
            ),
            (
                "error sending request for url (https://hooks.example/T0/B0/s3cr3t?key=k): timed out",
                "error sending request for url ([url]): timed out",
            ),
            (
                "cannot reach 127.0.0.1:2525 after 3 attempts",
                "cannot reach 127.0.0.1:2525 after 3 attempts",
            ),
            ("(555) 010-9999", "[phone]"),
        ];
        for (text, expected) in cases {
            assert_eq!(personal_data(text), expected, "{text}");
        }
        assert!(matches!(personal_data("nothing here"), Cow::Borrowed(_)));
        assert_eq!(Redacted("to bob@example.com").to_string(), "to [e-mail]");
    }
}
