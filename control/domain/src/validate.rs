//! Input validation helpers. Each returns the normalised value or an [`Error::Invalid`] naming
//! the field.

use crate::error::Error;

/// Longest accepted e-mail address (RFC 5321 path limit).
pub const MAX_EMAIL_LEN: usize = 254;
/// Longest accepted name (person, tenant, display name), in characters.
pub const MAX_NAME_LEN: usize = 200;
/// Longest accepted channel name.
pub const MAX_CHANNEL_LEN: usize = 32;

/// Validates an e-mail address and returns it trimmed, with the domain lower-cased.
///
/// Accepts `local@domain` where the local part is 1–64 printable ASCII characters without
/// spaces, quotes, `@`, `<`, `>`, `(`, `)`, `,`, `;`, `:`, `\`, `[`, `]`, with no leading,
/// trailing or doubled dots, and the domain has at least two labels of letters, digits and
/// hyphens (no leading/trailing hyphen), each 1–63 long, the last one alphabetic and at least
/// two long. Internationalised addresses are not accepted.
pub fn email(field: &str, input: &str) -> Result<String, Error> {
    let s = input.trim();
    let bad = |m: &str| Err(Error::invalid(field, format!("{m} (got {s:?})")));
    if s.is_empty() {
        return Err(Error::invalid(field, "must not be empty"));
    }
    if s.len() > MAX_EMAIL_LEN {
        return bad(&format!(
            "is not an e-mail address: longer than {MAX_EMAIL_LEN} characters"
        ));
    }
    let Some((local, domain)) = s.rsplit_once('@') else {
        return bad("is not an e-mail address: no '@'");
    };
    if local.is_empty() || local.len() > 64 {
        return bad("is not an e-mail address: the part before '@' must be 1 to 64 characters");
    }
    if local.starts_with('.') || local.ends_with('.') || local.contains("..") {
        return bad("is not an e-mail address: misplaced '.' before '@'");
    }
    if !local
        .chars()
        .all(|c| c.is_ascii_graphic() && !"@<>()[],;:\\\"".contains(c))
    {
        return bad("is not an e-mail address: invalid character before '@'");
    }
    let domain = domain.to_ascii_lowercase();
    let labels: Vec<&str> = domain.split('.').collect();
    if labels.len() < 2 {
        return bad("is not an e-mail address: the domain needs a dot");
    }
    for l in &labels {
        if l.is_empty()
            || l.len() > 63
            || l.starts_with('-')
            || l.ends_with('-')
            || !l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        {
            return bad("is not an e-mail address: invalid domain");
        }
    }
    let tld = labels.last().copied().unwrap_or_default();
    if tld.len() < 2 || !tld.chars().all(|c| c.is_ascii_alphabetic()) {
        return bad("is not an e-mail address: invalid top-level domain");
    }
    Ok(format!("{local}@{domain}"))
}

/// Validates a phone number in E.164 form and returns it normalised (`+` and digits only).
///
/// Spaces, hyphens, dots and parentheses are removed first (`+47 (0)22` is not special-cased:
/// the digits are kept as written). The result must be `+` followed by 7 to 15 digits, the
/// first of which (the country code) is not 0.
pub fn phone_e164(field: &str, input: &str) -> Result<String, Error> {
    let trimmed = input.trim();
    if trimmed.is_empty() {
        return Err(Error::invalid(field, "must not be empty"));
    }
    let s: String = trimmed
        .chars()
        .filter(|c| !matches!(c, ' ' | '-' | '.' | '(' | ')'))
        .collect();
    let bad = |m: &str| {
        Err(Error::invalid(
            field,
            format!("is not an E.164 phone number like +4722334455: {m} (got {trimmed:?})"),
        ))
    };
    let Some(digits) = s.strip_prefix('+') else {
        return bad("must start with '+' and the country code");
    };
    if !digits.chars().all(|c| c.is_ascii_digit()) {
        return bad("only digits may follow '+'");
    }
    if !(7..=15).contains(&digits.len()) {
        return bad("needs 7 to 15 digits");
    }
    if digits.starts_with('0') {
        return bad("a country code does not start with 0");
    }
    Ok(s)
}

/// Validates a name (of a person, a tenant, a user, a document) and returns it trimmed: not
/// empty, at most [`MAX_NAME_LEN`] characters, no control characters.
pub fn name(field: &str, input: &str) -> Result<String, Error> {
    let s = input.trim();
    if s.is_empty() {
        return Err(Error::invalid(field, "must not be empty"));
    }
    let n = s.chars().count();
    if n > MAX_NAME_LEN {
        return Err(Error::invalid(
            field,
            format!("must be at most {MAX_NAME_LEN} characters (got {n})"),
        ));
    }
    if s.chars().any(char::is_control) {
        return Err(Error::invalid(field, "must not contain control characters"));
    }
    Ok(s.to_owned())
}

/// Validates a channel name: 1 to [`MAX_CHANNEL_LEN`] characters, a lowercase ASCII letter
/// first, then lowercase letters, digits, `_` or `-` (e.g. `web`, `print`, `social`,
/// `internal`, `out-of-home`).
pub fn channel(field: &str, input: &str) -> Result<(), Error> {
    if input.is_empty() {
        return Err(Error::invalid(field, "a channel name must not be empty"));
    }
    if input.len() > MAX_CHANNEL_LEN {
        return Err(Error::invalid(
            field,
            format!("channel {input:?} is longer than {MAX_CHANNEL_LEN} characters"),
        ));
    }
    let mut chars = input.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_lowercase());
    if !first_ok
        || !chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
    {
        return Err(Error::invalid(
            field,
            format!(
                "channel {input:?} must start with a lowercase letter and contain only a-z, 0-9, '_' and '-'"
            ),
        ));
    }
    Ok(())
}

/// Validates a list of channel names: each valid ([`channel`]), no duplicates, not empty.
pub fn channels(field: &str, input: &[String]) -> Result<(), Error> {
    if input.is_empty() {
        return Err(Error::invalid(field, "must list at least one channel"));
    }
    for (i, c) in input.iter().enumerate() {
        channel(&format!("{field}[{i}]"), c)?;
        if input[..i].contains(c) {
            return Err(Error::invalid(
                format!("{field}[{i}]"),
                format!("channel {c:?} is listed twice"),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails() {
        for ok in [
            "a@b.no",
            "Ola.Nordmann+tag@Example.COM",
            "x_y-z@sub.domain-1.org",
            "  padded@x.io ",
        ] {
            assert!(email("email", ok).is_ok(), "{ok}");
        }
        assert_eq!(
            email("email", " Ola@Example.COM ").unwrap(),
            "Ola@example.com"
        );
        for bad in [
            "",
            "plain",
            "@x.no",
            "a@",
            "a@b",
            "a@b.c",
            "a@b.12",
            "a b@c.no",
            "a@-b.no",
            "a@b-.no",
            "a@b..no",
            ".a@b.no",
            "a..b@c.no",
            "a\"b@c.no",
            "æ@b.no",
        ] {
            let e = email("contact.email", bad).unwrap_err();
            assert_eq!(e.field(), Some("contact.email"), "{bad}");
        }
        let long = format!("{}@x.no", "a".repeat(65));
        assert!(email("email", &long).is_err());
    }

    #[test]
    fn phones() {
        assert_eq!(
            phone_e164("phone", "+47 22 33 44 55").unwrap(),
            "+4722334455"
        );
        assert_eq!(
            phone_e164("phone", "+1 (415) 555-0100").unwrap(),
            "+14155550100"
        );
        assert_eq!(phone_e164("phone", "+1234567").unwrap(), "+1234567");
        assert_eq!(
            phone_e164("phone", "+123456789012345").unwrap(),
            "+123456789012345"
        );
        for bad in [
            "",
            "22334455",
            "+",
            "+123456",
            "+1234567890123456",
            "+0471234567",
            "+47 22a33",
            "++4722334455",
        ] {
            let e = phone_e164("phone", bad).unwrap_err();
            assert_eq!(e.field(), Some("phone"), "{bad}");
            assert!(e.to_string().contains("phone"), "{e}");
        }
    }

    #[test]
    fn names() {
        assert_eq!(name("name", "  Kari  ").unwrap(), "Kari");
        assert!(name("name", "   ").is_err());
        assert!(name("name", "a\u{0}b").is_err());
        assert!(name("name", &"ø".repeat(MAX_NAME_LEN)).is_ok());
        let e = name("name", &"ø".repeat(MAX_NAME_LEN + 1)).unwrap_err();
        assert!(e.to_string().contains("201"), "{e}");
    }

    #[test]
    fn channel_names() {
        for ok in ["web", "print", "out-of-home", "tv_2", "x"] {
            assert!(channel("channel", ok).is_ok(), "{ok}");
        }
        for bad in ["", "Web", "1web", "-web", "we b", "wéb", &"a".repeat(33)] {
            assert!(channel("channel", bad).is_err(), "{bad}");
        }
        let list = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(channels("channels", &list(&["web", "print"])).is_ok());
        assert!(channels("channels", &[]).is_err());
        let e = channels("channels", &list(&["web", "print", "web"])).unwrap_err();
        assert_eq!(e.field(), Some("channels[2]"));
        let e = channels("channels", &list(&["web", "Print"])).unwrap_err();
        assert_eq!(e.field(), Some("channels[1]"));
    }
}
