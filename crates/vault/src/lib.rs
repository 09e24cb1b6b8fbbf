//! Secrets at rest: AES-256-GCM under one master key, and a `Secret` wrapper that never prints.
//!
//! Chosen over a hand-written scheme because AEAD from RustCrypto is audited and misuse-resistant
//! enough for "encrypt a short string with a random nonce". Ciphertexts are versioned
//! (`v1:<base64(nonce || ciphertext)>`) so the key or algorithm can be rotated later.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use rand::RngCore;

const VERSION_PREFIX: &str = "v1:";
const NONCE_LEN: usize = 12;

#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    #[error("master key must be 32 bytes encoded as base64 ({0})")]
    BadKey(String),
    #[error("ciphertext is malformed")]
    Malformed,
    #[error("ciphertext failed authentication (wrong key or tampered data)")]
    Unauthentic,
    #[error("cannot read or write the key file {path}: {source}")]
    KeyFile { path: String, source: std::io::Error },
}

/// A value that must not reach logs: `Debug` and `Display` print `[redacted]`.
#[derive(Clone, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(transparent)]
pub struct Secret<T>(T);

impl<T> Secret<T> {
    pub fn new(value: T) -> Self {
        Self(value)
    }
    /// The only way to read the value; grep for it when auditing secret handling.
    pub fn expose(&self) -> &T {
        &self.0
    }
}

impl<T> std::fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

impl<T> std::fmt::Display for Secret<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

impl<T> serde::Serialize for Secret<T> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str("[redacted]")
    }
}

/// The master key. Cloning is cheap; the key bytes live inside the cipher.
#[derive(Clone)]
pub struct Vault {
    cipher: Aes256Gcm,
    /// Root of derived keys (HMAC keys for signed URLs and the like), itself derived from the
    /// master key so the master key is never used for two purposes.
    derivation: [u8; 32],
}

impl std::fmt::Debug for Vault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Vault([redacted])")
    }
}

impl Vault {
    pub fn from_base64(encoded: &str) -> Result<Self, VaultError> {
        let bytes = B64.decode(encoded.trim()).map_err(|e| VaultError::BadKey(e.to_string()))?;
        let key: [u8; 32] =
            bytes.try_into().map_err(|b: Vec<u8>| VaultError::BadKey(format!("got {} bytes", b.len())))?;
        Ok(Self::from_bytes(&key))
    }

    pub fn from_bytes(key: &[u8; 32]) -> Self {
        use sha2::Digest as _;
        let mut root = sha2::Sha256::new();
        root.update(b"sivo-vault-derivation-root\0");
        root.update(key);
        Self { cipher: Aes256Gcm::new(key.into()), derivation: root.finalize().into() }
    }

    /// A 32-byte key for one `purpose` (e.g. "recording-urls"), stable for a given master key
    /// and independent of every other purpose's key: HMAC-SHA256(root, purpose).
    pub fn derive_key(&self, purpose: &str) -> Secret<[u8; 32]> {
        use hmac::Mac as _;
        let mut mac = <hmac::Hmac<sha2::Sha256> as hmac::Mac>::new_from_slice(&self.derivation)
            .expect("HMAC takes keys of any length");
        mac.update(purpose.as_bytes());
        Secret::new(mac.finalize().into_bytes().into())
    }

    /// A fresh random key, base64-encoded, for first start.
    pub fn generate_key_base64() -> String {
        let mut key = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut key);
        B64.encode(key)
    }

    /// Loads the key file, creating it (mode 0600) with a random key if it does not exist.
    pub fn load_or_create(path: &std::path::Path) -> Result<Self, VaultError> {
        let io_err = |source| VaultError::KeyFile { path: path.display().to_string(), source };
        match std::fs::read_to_string(path) {
            Ok(text) => Self::from_base64(&text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                use std::io::Write as _;
                use std::os::unix::fs::OpenOptionsExt as _;
                let encoded = Self::generate_key_base64();
                let mut file = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(path)
                    .map_err(io_err)?;
                file.write_all(encoded.as_bytes()).map_err(io_err)?;
                file.sync_all().map_err(io_err)?;
                Self::from_base64(&encoded)
            }
            Err(e) => Err(io_err(e)),
        }
    }

    /// Encrypts `plaintext`, binding it to `context` (e.g. "user-totp:<user id>") so a ciphertext
    /// copied into another row or column does not decrypt.
    pub fn encrypt(&self, plaintext: &[u8], context: &str) -> String {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let ciphertext = self
            .cipher
            .encrypt(Nonce::from_slice(&nonce), Payload { msg: plaintext, aad: context.as_bytes() })
            .expect("AES-GCM encryption cannot fail for inputs under 64 GiB");
        let mut out = Vec::with_capacity(NONCE_LEN + ciphertext.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ciphertext);
        format!("{VERSION_PREFIX}{}", B64.encode(out))
    }

    pub fn decrypt(&self, encoded: &str, context: &str) -> Result<Vec<u8>, VaultError> {
        let body = encoded.strip_prefix(VERSION_PREFIX).ok_or(VaultError::Malformed)?;
        let bytes = B64.decode(body).map_err(|_| VaultError::Malformed)?;
        if bytes.len() < NONCE_LEN + 16 {
            return Err(VaultError::Malformed);
        }
        let (nonce, ciphertext) = bytes.split_at(NONCE_LEN);
        self.cipher
            .decrypt(Nonce::from_slice(nonce), Payload { msg: ciphertext, aad: context.as_bytes() })
            .map_err(|_| VaultError::Unauthentic)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_keys_are_stable_per_purpose_and_master_key() {
        let a = Vault::from_bytes(&[1u8; 32]);
        let b = Vault::from_bytes(&[2u8; 32]);
        assert_eq!(
            a.derive_key("recording-urls").expose(),
            Vault::from_bytes(&[1u8; 32]).derive_key("recording-urls").expose()
        );
        assert_ne!(a.derive_key("recording-urls").expose(), a.derive_key("other").expose());
        assert_ne!(a.derive_key("recording-urls").expose(), b.derive_key("recording-urls").expose());
        assert_ne!(a.derive_key("recording-urls").expose(), &[1u8; 32]);
    }

    #[test]
    fn round_trip_and_context_binding() {
        let vault = Vault::from_base64(&Vault::generate_key_base64()).unwrap();
        let sealed = vault.encrypt(b"JBSWY3DPEHPK3PXP", "user-totp:1");
        assert!(sealed.starts_with("v1:"));
        assert!(!sealed.contains("JBSWY3DPEHPK3PXP"));
        assert_eq!(vault.decrypt(&sealed, "user-totp:1").unwrap(), b"JBSWY3DPEHPK3PXP");
        assert!(matches!(vault.decrypt(&sealed, "user-totp:2"), Err(VaultError::Unauthentic)));
        let other = Vault::from_base64(&Vault::generate_key_base64()).unwrap();
        assert!(matches!(other.decrypt(&sealed, "user-totp:1"), Err(VaultError::Unauthentic)));
        assert!(matches!(vault.decrypt("v1:AAAA", "x"), Err(VaultError::Malformed)));
        assert!(matches!(vault.decrypt("garbage", "x"), Err(VaultError::Malformed)));
    }

    #[test]
    fn secrets_never_print() {
        let s = Secret::new("hunter2-hunter2".to_owned());
        assert_eq!(format!("{s:?} {s}"), "[redacted] [redacted]");
        assert_eq!(serde_json::to_string(&s).unwrap(), "\"[redacted]\"");
    }

    #[test]
    fn bad_keys_are_explained() {
        let err = Vault::from_base64("c2hvcnQ=").unwrap_err().to_string();
        assert!(err.contains("32 bytes"), "{err}");
    }
}
