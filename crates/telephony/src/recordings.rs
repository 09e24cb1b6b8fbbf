//! Pre-signed, expiring recording download URLs: `/recordings/<tenant>/<call>.wav?expires=<unix
//! seconds>&signature=<hex HMAC-SHA256>`. Anyone holding the URL may download until it
//! expires (that is what pre-signed means: a CRM or player can fetch it without a session);
//! a changed tenant, call or expiry breaks the signature, and the server answers 404 either
//! way so a probe learns nothing.

use chrono::{DateTime, Utc};
use domain::{CallId, TenantId};
use hmac::Mac as _;

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

/// Signs and checks recording URLs with a key derived from the master key.
#[derive(Clone)]
pub struct RecordingUrls {
    key: vault::Secret<[u8; 32]>,
}

impl std::fmt::Debug for RecordingUrls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RecordingUrls([redacted])")
    }
}

impl RecordingUrls {
    pub fn new(vault: &vault::Vault) -> Self {
        Self { key: vault.derive_key("recording-urls") }
    }

    fn mac(&self, tenant: TenantId, call: CallId, expires: i64) -> HmacSha256 {
        let mut mac = HmacSha256::new_from_slice(self.key.expose()).expect("HMAC takes keys of any length");
        mac.update(format!("{tenant}/{call}/{expires}").as_bytes());
        mac
    }

    /// The path and query of a URL valid until `expires`.
    pub fn path(&self, tenant: TenantId, call: CallId, expires: DateTime<Utc>) -> String {
        let expires = expires.timestamp();
        let signature = hex(&self.mac(tenant, call, expires).finalize().into_bytes());
        format!("/recordings/{tenant}/{call}.wav?expires={expires}&signature={signature}")
    }

    /// Whether the URL's parts are authentic and unexpired at `now` (constant-time compare).
    pub fn verify(
        &self,
        tenant: TenantId,
        call: CallId,
        expires: i64,
        signature: &str,
        now: DateTime<Utc>,
    ) -> bool {
        if expires < now.timestamp() {
            return false;
        }
        let Some(bytes) = unhex(signature) else { return false };
        self.mac(tenant, call, expires).verify_slice(&bytes).is_ok()
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if s.len() != 64 {
        return None;
    }
    (0..s.len()).step_by(2).map(|i| s.get(i..i + 2).and_then(|h| u8::from_str_radix(h, 16).ok())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_verify_until_they_expire_and_only_for_their_tenant_and_call() {
        let urls = RecordingUrls::new(&vault::Vault::from_bytes(&[9u8; 32]));
        let (tenant, call) = (TenantId(uuid::Uuid::new_v4()), CallId(uuid::Uuid::new_v4()));
        let now = Utc::now();
        let expires = now + chrono::Duration::hours(1);
        let path = urls.path(tenant, call, expires);
        let signature = path.rsplit("signature=").next().unwrap();
        let e = expires.timestamp();
        assert!(urls.verify(tenant, call, e, signature, now));
        assert!(!urls.verify(tenant, call, e, signature, expires + chrono::Duration::seconds(1)));
        assert!(!urls.verify(TenantId(uuid::Uuid::new_v4()), call, e, signature, now));
        assert!(!urls.verify(tenant, CallId(uuid::Uuid::new_v4()), e, signature, now));
        assert!(!urls.verify(tenant, call, e + 10, signature, now));
        assert!(!urls.verify(tenant, call, e, "zz", now));
        let other = RecordingUrls::new(&vault::Vault::from_bytes(&[8u8; 32]));
        assert!(!other.verify(tenant, call, e, signature, now));
    }
}
