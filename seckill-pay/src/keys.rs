//! RSA keys as the providers hand them out (PEM, or the bare base64 of Alipay's key tool), and
//! the one signature both providers use: RSASSA-PKCS1-v1_5 with SHA-256 ("RSA2",
//! "SHA256-RSA2048"), base64-encoded with padding.

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use jsonwebtoken::{crypto, Algorithm, DecodingKey, EncodingKey};
use seckill_core::{Error, Result};

/// Wraps a bare base64 key in PEM armour; a PEM key is returned as is.
fn pem(key: &str, label: &str) -> String {
    let key = key.trim();
    if key.starts_with("-----BEGIN") {
        return key.to_string();
    }
    let body: String = key.split_whitespace().collect();
    let lines: Vec<&str> = body
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap_or_default())
        .collect();
    format!(
        "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
        lines.join("\n")
    )
}

/// A private key that signs (the merchant's, or a sandbox provider's).
#[derive(Clone)]
pub struct Signer(EncodingKey);

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Signer(<redacted>)")
    }
}

impl Signer {
    /// A PKCS#8 or PKCS#1 RSA private key, in PEM or as bare base64 (PKCS#8).
    pub fn from_key(key: &str) -> Result<Self> {
        EncodingKey::from_rsa_pem(pem(key, "PRIVATE KEY").as_bytes())
            .map(Self)
            .map_err(|e| Error::invalid(format!("RSA private key: {e}")))
    }

    /// The base64 signature of `message`.
    pub fn sign(&self, message: &[u8]) -> Result<String> {
        let sig = crypto::sign(message, &self.0, Algorithm::RS256)
            .map_err(|e| Error::invalid(format!("RSA signing: {e}")))?;
        let raw = URL_SAFE_NO_PAD
            .decode(sig)
            .map_err(|e| Error::invalid(format!("RSA signature: {e}")))?;
        Ok(STANDARD.encode(raw))
    }
}

/// A public key that checks signatures (the provider's, or the merchant's in a sandbox).
#[derive(Clone)]
pub struct Verifier(DecodingKey);

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Verifier")
    }
}

impl Verifier {
    /// An RSA public key (SubjectPublicKeyInfo or PKCS#1), in PEM or as bare base64 (SPKI).
    pub fn from_key(key: &str) -> Result<Self> {
        DecodingKey::from_rsa_pem(pem(key, "PUBLIC KEY").as_bytes())
            .map(Self)
            .map_err(|e| Error::invalid(format!("RSA public key: {e}")))
    }

    /// Checks a base64 signature of `message`: [`Error::Unauthenticated`] unless it verifies.
    pub fn verify(&self, message: &[u8], signature: &str) -> Result<()> {
        let raw = STANDARD
            .decode(signature.trim())
            .map_err(|_| Error::Unauthenticated("the signature is not base64".into()))?;
        match crypto::verify(
            &URL_SAFE_NO_PAD.encode(raw),
            message,
            &self.0,
            Algorithm::RS256,
        ) {
            Ok(true) => Ok(()),
            _ => Err(Error::Unauthenticated(
                "the signature does not verify".into(),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PRIVATE: &str = include_str!("../demo-keys/merchant.key.pem");
    const PUBLIC: &str = include_str!("../demo-keys/merchant.pub.pem");
    const OTHER_PUBLIC: &str = include_str!("../demo-keys/provider.pub.pem");

    fn bare(pem: &str) -> String {
        pem.lines().filter(|l| !l.starts_with("-----")).collect()
    }

    #[test]
    fn signs_and_verifies_in_pem_and_bare_base64() {
        let sig = Signer::from_key(PRIVATE).unwrap().sign(b"a=1&b=2").unwrap();
        let bare_sig = Signer::from_key(&bare(PRIVATE))
            .unwrap()
            .sign(b"a=1&b=2")
            .unwrap();
        assert_eq!(sig, bare_sig, "PKCS#1 v1.5 signatures are deterministic");
        for key in [PUBLIC.to_string(), bare(PUBLIC)] {
            let v = Verifier::from_key(&key).unwrap();
            v.verify(b"a=1&b=2", &sig).unwrap();
            assert!(matches!(
                v.verify(b"a=1&b=3", &sig),
                Err(Error::Unauthenticated(_))
            ));
            assert!(matches!(
                v.verify(b"a=1&b=2", "not base64!"),
                Err(Error::Unauthenticated(_))
            ));
        }
        assert!(Verifier::from_key(OTHER_PUBLIC)
            .unwrap()
            .verify(b"a=1&b=2", &sig)
            .is_err());
    }

    #[test]
    fn a_bad_key_is_a_clear_error() {
        assert!(matches!(
            Signer::from_key("not a key"),
            Err(Error::InvalidArgument(_))
        ));
        assert!(matches!(
            Verifier::from_key(""),
            Err(Error::InvalidArgument(_))
        ));
    }
}
