//! AES-256-GCM with the APIv3 key: notification resources and the certificates of
//! `GET /v3/certificates` arrive sealed this way (base64 of ciphertext ‖ 16-byte tag, a
//! 12-character nonce, the associated data as given). ring does the cipher.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use serde::{Deserialize, Serialize};

/// The only `algorithm` WeChat Pay uses for sealed data.
pub const ALGORITHM: &str = "AEAD_AES_256_GCM";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AeadError {
    #[error("the APIv3 key must be 32 bytes, not {0}")]
    KeyLength(usize),
    #[error("unsupported algorithm {0:?}")]
    Algorithm(String),
    #[error("the nonce must be {NONCE_LEN} bytes, not {0}")]
    NonceLength(usize),
    #[error("the ciphertext is not base64")]
    Base64,
    #[error("the ciphertext does not authenticate (key, nonce, associated data or a byte differ)")]
    Tag,
    #[error("the plaintext is not UTF-8")]
    Utf8,
}

/// The merchant's 32-byte APIv3 key (set in the merchant platform as 32 ASCII characters).
/// Its Debug output shows nothing of it.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiV3Key([u8; 32]);

impl std::fmt::Debug for ApiV3Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiV3Key(<redacted>)")
    }
}

/// A sealed `resource` of a notification, or the `encrypt_certificate` of a certificate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EncryptedResource {
    pub algorithm: String,
    pub ciphertext: String,
    pub nonce: String,
    /// Absent, `null` and `""` all mean no associated data (refund notifications send `""`).
    #[serde(default)]
    pub associated_data: Option<String>,
    /// `transaction`, `refund`; absent in `encrypt_certificate`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub original_type: Option<String>,
}

impl ApiV3Key {
    pub fn new(key: &str) -> Result<ApiV3Key, AeadError> {
        key.as_bytes()
            .try_into()
            .map(ApiV3Key)
            .map_err(|_| AeadError::KeyLength(key.len()))
    }

    fn cipher(&self) -> Result<LessSafeKey, AeadError> {
        UnboundKey::new(&AES_256_GCM, &self.0)
            .map(LessSafeKey::new)
            .map_err(|_| AeadError::KeyLength(self.0.len()))
    }

    /// Opens base64(ciphertext ‖ tag) sealed under `nonce` and `associated_data`.
    pub fn open(
        &self,
        nonce: &str,
        associated_data: &str,
        ciphertext_b64: &str,
    ) -> Result<Vec<u8>, AeadError> {
        let mut data = B64
            .decode(ciphertext_b64.trim())
            .map_err(|_| AeadError::Base64)?;
        let plain = self
            .cipher()?
            .open_in_place(
                nonce_of(nonce)?,
                Aad::from(associated_data.as_bytes()),
                &mut data,
            )
            .map_err(|_| AeadError::Tag)?;
        Ok(plain.to_vec())
    }

    /// Seals `plaintext`: base64(ciphertext ‖ tag). The nonce must never repeat under one key.
    pub fn seal(
        &self,
        nonce: &str,
        associated_data: &str,
        plaintext: &[u8],
    ) -> Result<String, AeadError> {
        let mut data = plaintext.to_vec();
        self.cipher()?
            .seal_in_place_append_tag(
                nonce_of(nonce)?,
                Aad::from(associated_data.as_bytes()),
                &mut data,
            )
            .map_err(|_| AeadError::Tag)?;
        Ok(B64.encode(data))
    }

    /// The text inside a sealed resource; any algorithm but AEAD_AES_256_GCM is refused.
    pub fn decrypt(&self, resource: &EncryptedResource) -> Result<String, AeadError> {
        if resource.algorithm != ALGORITHM {
            return Err(AeadError::Algorithm(resource.algorithm.clone()));
        }
        let plain = self.open(
            &resource.nonce,
            resource.associated_data.as_deref().unwrap_or_default(),
            &resource.ciphertext,
        )?;
        String::from_utf8(plain).map_err(|_| AeadError::Utf8)
    }

    /// A sealed resource as WeChat Pay sends it (for tests and the sandbox).
    pub fn encrypt(
        &self,
        nonce: &str,
        associated_data: &str,
        original_type: Option<&str>,
        plaintext: &str,
    ) -> Result<EncryptedResource, AeadError> {
        Ok(EncryptedResource {
            algorithm: ALGORITHM.to_string(),
            ciphertext: self.seal(nonce, associated_data, plaintext.as_bytes())?,
            nonce: nonce.to_string(),
            associated_data: Some(associated_data.to_string()),
            original_type: original_type.map(str::to_string),
        })
    }
}

fn nonce_of(nonce: &str) -> Result<Nonce, AeadError> {
    Nonce::try_assume_unique_for_key(nonce.as_bytes())
        .map_err(|_| AeadError::NonceLength(nonce.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> ApiV3Key {
        ApiV3Key::new("0123456789abcdef0123456789abcdef").unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn a_sealed_resource_opens_and_any_change_is_refused() {
        let sealed = key()
            .encrypt(
                "abcdefghijkl",
                "transaction",
                Some("transaction"),
                "{\"a\":1}",
            )
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(key().decrypt(&sealed).as_deref(), Ok("{\"a\":1}"));

        let other_aad = EncryptedResource {
            associated_data: Some("refund".into()),
            ..sealed.clone()
        };
        assert_eq!(key().decrypt(&other_aad), Err(AeadError::Tag));
        let other_nonce = EncryptedResource {
            nonce: "abcdefghijkm".into(),
            ..sealed.clone()
        };
        assert_eq!(key().decrypt(&other_nonce), Err(AeadError::Tag));
        let other_key =
            ApiV3Key::new("0123456789abcdef0123456789abcdeX").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(other_key.decrypt(&sealed), Err(AeadError::Tag));
        let cbc = EncryptedResource {
            algorithm: "AEAD_AES_256_CBC".into(),
            ..sealed.clone()
        };
        assert!(matches!(key().decrypt(&cbc), Err(AeadError::Algorithm(_))));
        let short = EncryptedResource {
            nonce: "abc".into(),
            ..sealed
        };
        assert_eq!(key().decrypt(&short), Err(AeadError::NonceLength(3)));
    }

    #[test]
    fn the_key_must_be_32_bytes_and_never_shows() {
        assert_eq!(ApiV3Key::new("short"), Err(AeadError::KeyLength(5)));
        assert!(ApiV3Key::new(&"k".repeat(33)).is_err());
        assert_eq!(format!("{:?}", key()), "ApiV3Key(<redacted>)");
    }
}
