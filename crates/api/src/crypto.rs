//! Password hashing (Argon2id), tokens and key hashing, TOTP (RFC 6238) and recovery codes.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use rand::{Rng as _, RngCore as _};
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

/// OWASP's minimum for Argon2id: 19 MiB, 2 passes, 1 lane.
pub const ARGON2_M_KIB: u32 = 19 * 1024;
pub const ARGON2_T: u32 = 2;
pub const ARGON2_P: u32 = 1;

fn argon2() -> Argon2<'static> {
    let params =
        Params::new(ARGON2_M_KIB, ARGON2_T, ARGON2_P, None).expect("constant Argon2 parameters are valid");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Hashes a password into a PHC string (`$argon2id$v=19$m=19456,t=2,p=1$…`). CPU-heavy: call from
/// a blocking thread.
pub fn hash_password(password: &str) -> String {
    let salt = SaltString::generate(&mut rand::rngs::OsRng);
    argon2()
        .hash_password(password.as_bytes(), &salt)
        .expect("Argon2 hashing cannot fail with valid params")
        .to_string()
}

/// Verifies against a stored PHC string using the parameters recorded in it. CPU-heavy.
pub fn verify_password(password: &str, phc: &str) -> bool {
    match PasswordHash::new(phc) {
        Ok(parsed) => argon2().verify_password(password.as_bytes(), &parsed).is_ok(),
        Err(_) => false,
    }
}

pub fn sha256(bytes: &[u8]) -> Vec<u8> {
    Sha256::digest(bytes).to_vec()
}

pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

/// 256 random bits, URL-safe: session tokens and the secret half of API keys.
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    B64URL.encode(bytes)
}

const KEY_ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyz23456789";

fn random_from_alphabet(n: usize) -> String {
    let mut rng = rand::rngs::OsRng;
    (0..n).map(|_| KEY_ALPHABET[rng.gen_range(0..KEY_ALPHABET.len())] as char).collect()
}

/// A new API key: `sivo_<prefix>_<secret>`. The prefix is public (it finds the row); the whole
/// key is hashed for storage.
pub fn new_api_key() -> (String, String) {
    let prefix = random_from_alphabet(12);
    let key = format!("sivo_{prefix}_{}", random_token());
    (prefix, key)
}

/// Splits an API key into its prefix, or None if it is not shaped like one.
pub fn api_key_prefix(key: &str) -> Option<&str> {
    let rest = key.strip_prefix("sivo_")?;
    let (prefix, secret) = rest.split_once('_')?;
    (prefix.len() == 12 && !secret.is_empty()).then_some(prefix)
}

/// Ten one-time recovery codes like `k7m2p-x9qra`.
pub fn new_recovery_codes() -> Vec<String> {
    (0..10).map(|_| format!("{}-{}", random_from_alphabet(5), random_from_alphabet(5))).collect()
}

/// Normalises what a user typed (case, spaces, missing dash) before hashing.
pub fn normalize_recovery_code(code: &str) -> String {
    let compact: String =
        code.chars().filter(|c| c.is_ascii_alphanumeric()).collect::<String>().to_lowercase();
    if compact.len() == 10 { format!("{}-{}", &compact[..5], &compact[5..]) } else { compact }
}

pub mod totp {
    //! RFC 6238 TOTP over `totp-rs`'s HOTP core; we add the step bookkeeping that makes a code
    //! single-use.

    use totp_rs::{Algorithm, TOTP};

    pub const STEP_SECONDS: u64 = 30;
    pub const DIGITS: usize = 6;

    /// A new 160-bit secret (RFC 4226 recommends the HMAC-SHA1 output size).
    pub fn new_secret() -> Vec<u8> {
        use rand::RngCore as _;
        let mut secret = vec![0u8; 20];
        rand::rngs::OsRng.fill_bytes(&mut secret);
        secret
    }

    fn totp(secret: &[u8], algorithm: Algorithm, digits: usize, issuer: &str, account: &str) -> TOTP {
        TOTP::new_unchecked(
            algorithm,
            digits,
            1,
            STEP_SECONDS,
            secret.to_vec(),
            Some(issuer.to_owned()),
            account.to_owned(),
        )
    }

    /// The code for a Unix time, with any algorithm and digit count (for the RFC vectors).
    pub fn code_at(secret: &[u8], algorithm: Algorithm, digits: usize, unix_time: u64) -> String {
        totp(secret, algorithm, digits, "x", "x").generate(unix_time)
    }

    /// If `code` is valid within ±1 step of `unix_time`, the time step it belongs to.
    pub fn verify(secret: &[u8], code: &str, unix_time: u64) -> Option<u64> {
        let code = code.trim();
        if code.len() != DIGITS || !code.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let current = unix_time / STEP_SECONDS;
        let mut found = None;
        // Check all three steps without early exit, so timing does not reveal which matched.
        for step in [current.saturating_sub(1), current, current + 1] {
            let expected = code_at(secret, Algorithm::SHA1, DIGITS, step * STEP_SECONDS);
            if super::constant_time_eq(expected.as_bytes(), code.as_bytes()) {
                found = Some(step);
            }
        }
        found
    }

    pub fn secret_base32(secret: &[u8]) -> String {
        totp(secret, Algorithm::SHA1, DIGITS, "x", "x").get_secret_base32()
    }

    /// `otpauth://totp/Issuer:account?secret=…&issuer=Issuer` for authenticator apps.
    pub fn otpauth_uri(secret: &[u8], issuer: &str, account: &str) -> String {
        totp(secret, Algorithm::SHA1, DIGITS, issuer, account).get_url()
    }

    /// The URI as an SVG QR code, for the enrolment screen.
    pub fn qr_svg(uri: &str) -> String {
        match qrcode::QrCode::new(uri.as_bytes()) {
            Ok(code) => code.render::<qrcode::render::svg::Color<'_>>().min_dimensions(200, 200).build(),
            Err(_) => String::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use totp_rs::Algorithm;

    #[test]
    fn rfc6238_appendix_b_vectors() {
        let sha1 = b"12345678901234567890";
        let sha256 = b"12345678901234567890123456789012";
        let sha512 = b"1234567890123456789012345678901234567890123456789012345678901234";
        let table: [(u64, &str, &str, &str); 6] = [
            (59, "94287082", "46119246", "90693936"),
            (1111111109, "07081804", "68084774", "25091201"),
            (1111111111, "14050471", "67062674", "99943326"),
            (1234567890, "89005924", "91819424", "93441116"),
            (2000000000, "69279037", "90698825", "38618901"),
            (20000000000, "65353130", "77737706", "47863826"),
        ];
        for (t, c1, c256, c512) in table {
            assert_eq!(totp::code_at(sha1, Algorithm::SHA1, 8, t), c1, "SHA1 at {t}");
            assert_eq!(totp::code_at(sha256, Algorithm::SHA256, 8, t), c256, "SHA256 at {t}");
            assert_eq!(totp::code_at(sha512, Algorithm::SHA512, 8, t), c512, "SHA512 at {t}");
        }
    }

    #[test]
    fn totp_window_is_plus_minus_one_step() {
        let secret = totp::new_secret();
        let t = 1_700_000_000u64;
        let step = t / 30;
        for (offset, accepted) in [(-2i64, false), (-1, true), (0, true), (1, true), (2, false)] {
            let at = ((step as i64 + offset) as u64) * 30;
            let code = totp::code_at(&secret, Algorithm::SHA1, 6, at);
            let got = totp::verify(&secret, &code, t);
            assert_eq!(got.is_some(), accepted, "offset {offset}");
            if accepted {
                assert_eq!(got, Some((step as i64 + offset) as u64));
            }
        }
        assert_eq!(totp::verify(&secret, "12345", t), None);
        assert_eq!(totp::verify(&secret, "abcdef", t), None);
    }

    #[test]
    fn argon2id_uses_owasp_parameters() {
        let phc = hash_password("correct horse battery staple");
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
        assert!(verify_password("correct horse battery staple", &phc));
        assert!(!verify_password("correct horse battery stapler", &phc));
        assert!(!verify_password("x", "not a phc string"));
        assert_ne!(phc, hash_password("correct horse battery staple"), "salts must differ");
    }

    #[test]
    fn api_keys_and_recovery_codes_have_the_documented_shape() {
        let (prefix, key) = new_api_key();
        assert_eq!(api_key_prefix(&key), Some(prefix.as_str()));
        assert_eq!(api_key_prefix("sivo_short_x"), None);
        assert_eq!(api_key_prefix("Bearer abc"), None);
        let codes = new_recovery_codes();
        assert_eq!(codes.len(), 10);
        assert_eq!(normalize_recovery_code(&codes[0].to_uppercase().replace('-', " ")), codes[0]);
    }
}
