use alloy::{
    primitives::{Address, B256, Signature},
    signers::SignerSync,
    sol_types::{Eip712Domain, SolStruct},
};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::{Error, Result};

/// A protocol message with the EIP-712 signature of the party that sent it.
///
/// JSON form: `{"message": {...}, "signature": "0x" + 130 hex digits}` (r, s, v with v = 27/28).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signed<T> {
    /// The message itself.
    pub message: T,
    /// Signature over the message's EIP-712 signing hash.
    #[serde(serialize_with = "serialize_sig", deserialize_with = "deserialize_sig")]
    pub signature: Signature,
}

impl<T: SolStruct> Signed<T> {
    /// Signs `message` under `domain` with `signer`.
    pub fn sign(message: T, domain: &Eip712Domain, signer: &impl SignerSync) -> Result<Self> {
        let hash = message.eip712_signing_hash(domain);
        let signature = signer
            .sign_hash_sync(&hash)
            .map_err(|e| Error::InvalidSignature(e.to_string()))?;
        Ok(Self { message, signature })
    }

    /// The EIP-712 signing hash of the message under `domain`.
    pub fn signing_hash(&self, domain: &Eip712Domain) -> B256 {
        self.message.eip712_signing_hash(domain)
    }

    /// Recovers the signer, refusing malleable (high-`s`) signatures as the contracts do.
    pub fn recover(&self, domain: &Eip712Domain) -> Result<Address> {
        // `normalize_s` returns a value only for a high-`s` signature, which OpenZeppelin's
        // ECDSA (and so every contract here) rejects: refuse it off-chain too.
        if self.signature.normalize_s().is_some() {
            return Err(Error::MalleableSignature {
                s: self.signature.s(),
            });
        }
        self.signature
            .recover_address_from_prehash(&self.signing_hash(domain))
            .map_err(|e| Error::InvalidSignature(e.to_string()))
    }

    /// Checks that the message was signed by `expected` under `domain`.
    pub fn verify(&self, domain: &Eip712Domain, expected: Address) -> Result<()> {
        let recovered = self.recover(domain)?;
        if recovered != expected {
            return Err(Error::WrongSigner {
                expected,
                recovered,
            });
        }
        Ok(())
    }

    /// The signature as the 65 bytes (`r || s || v`, v = 27/28) the contracts take.
    pub fn signature_bytes(&self) -> alloy::primitives::Bytes {
        self.signature.as_bytes().to_vec().into()
    }
}

fn serialize_sig<S: Serializer>(sig: &Signature, s: S) -> std::result::Result<S::Ok, S::Error> {
    alloy::primitives::Bytes::from(sig.as_bytes().to_vec()).serialize(s)
}

fn deserialize_sig<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Signature, D::Error> {
    let bytes = alloy::primitives::Bytes::deserialize(d)?;
    Signature::from_raw(&bytes)
        .map_err(|e| serde::de::Error::custom(format!("signature must be 65 bytes r||s||v: {e}")))
}
