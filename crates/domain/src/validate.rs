//! Input rules shared by the API and the CLI, so both refuse the same things with the same words.

/// Why a password was refused. The message is shown to users as is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PasswordError {
    #[error("password must be at least {min} characters long", min = PASSWORD_MIN_CHARS)]
    TooShort,
    #[error("password must be at most {max} characters long", max = PASSWORD_MAX_CHARS)]
    TooLong,
    #[error("password is too common; choose one that is not on breached-password lists")]
    TooCommon,
}

pub const PASSWORD_MIN_CHARS: usize = 12;
pub const PASSWORD_MAX_CHARS: usize = 128;

/// A short list of the most common passwords of 12+ characters (from public breach corpora),
/// so the obvious ones are refused even though they meet the length rule.
const COMMON_LONG_PASSWORDS: &[&str] = &[
    "123456789012",
    "1234567890123",
    "12345678901234",
    "123456789123",
    "qwertyuiopasdfgh",
    "qwertyuiop123",
    "password1234",
    "password12345",
    "password123456",
    "passwordpassword",
    "iloveyou1234",
    "111111111111",
    "000000000000",
    "aaaaaaaaaaaa",
    "abcdefghijkl",
    "abc123abc123",
    "1q2w3e4r5t6y",
    "1qaz2wsx3edc",
    "qazwsxedcrfv",
    "letmein12345",
    "welcome12345",
    "administrator",
    "changeme1234",
];

/// Checks length in characters (not bytes, so non-ASCII passwords are treated fairly)
/// and refuses well-known passwords.
pub fn validate_password(password: &str) -> Result<(), PasswordError> {
    let n_chars = password.chars().count();
    if n_chars < PASSWORD_MIN_CHARS {
        return Err(PasswordError::TooShort);
    }
    if n_chars > PASSWORD_MAX_CHARS {
        return Err(PasswordError::TooLong);
    }
    let lowered = password.to_lowercase();
    if COMMON_LONG_PASSWORDS.contains(&lowered.as_str()) {
        return Err(PasswordError::TooCommon);
    }
    Ok(())
}

/// A pragmatic e-mail check: one `@`, a non-empty local part, a dotted domain of valid labels,
/// no spaces or control characters, at most 254 bytes (RFC 5321's path limit).
pub fn validate_email(email: &str) -> Result<(), &'static str> {
    if email.len() > 254 {
        return Err("email must be at most 254 characters");
    }
    let Some((local, domain)) = email.split_once('@') else {
        return Err("email must contain '@'");
    };
    if local.is_empty() || local.len() > 64 {
        return Err("email local part must be 1 to 64 characters");
    }
    if local.chars().any(|c| c.is_whitespace() || c.is_control() || c == '@') {
        return Err("email local part contains an invalid character");
    }
    let labels: Vec<&str> = domain.split('.').collect();
    if labels.len() < 2 {
        return Err("email domain must contain a dot");
    }
    for label in labels {
        let valid = !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
        if !valid {
            return Err("email domain is not a valid host name");
        }
    }
    Ok(())
}

/// Tenant slugs appear in SIP domains (`<slug>.<base domain>`), so they must be DNS labels:
/// 3 to 40 lowercase letters, digits and inner hyphens.
pub fn validate_slug(slug: &str) -> Result<(), &'static str> {
    let ok_len = (3..=40).contains(&slug.len());
    let ok_chars = slug.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if !ok_len || !ok_chars || slug.starts_with('-') || slug.ends_with('-') {
        return Err("slug must be 3 to 40 characters of a-z, 0-9 and inner '-'");
    }
    Ok(())
}

/// Display names and similar free text: trimmed, 1..=max characters, no control characters.
pub fn validate_name(name: &str, max_chars: usize) -> Result<(), String> {
    let trimmed = name.trim();
    if trimmed.is_empty() {
        return Err("must not be empty".to_owned());
    }
    if trimmed.chars().count() > max_chars {
        return Err(format!("must be at most {max_chars} characters"));
    }
    if trimmed.chars().any(char::is_control) {
        return Err("must not contain control characters".to_owned());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_length_is_counted_in_characters() {
        assert_eq!(validate_password("short"), Err(PasswordError::TooShort));
        assert_eq!(validate_password("ñññññññññññ"), Err(PasswordError::TooShort));
        assert!(validate_password("ñññññññññññx").is_ok());
        assert!(validate_password(&"x".repeat(64)).is_ok());
        assert!(validate_password(&"y".repeat(128)).is_ok());
        assert_eq!(validate_password(&"y".repeat(129)), Err(PasswordError::TooLong));
        assert_eq!(validate_password("Password1234"), Err(PasswordError::TooCommon));
    }

    #[test]
    fn emails() {
        assert!(validate_email("ana@example.com").is_ok());
        assert!(validate_email("a.b+c@sub.example.co").is_ok());
        for bad in ["", "no-at", "@example.com", "a@b", "a@-b.com", "a b@example.com", "a@exa mple.com"] {
            assert!(validate_email(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn slugs() {
        assert!(validate_slug("acme").is_ok());
        assert!(validate_slug("acme-2").is_ok());
        for bad in ["ab", "-acme", "acme-", "Acme", "ac_me", &"a".repeat(41)] {
            assert!(validate_slug(bad).is_err(), "{bad:?} should be refused");
        }
    }
}
