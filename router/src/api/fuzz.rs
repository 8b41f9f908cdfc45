//! Property tests over what a client controls: request bodies (any bytes, and valid bodies with
//! bytes changed) are parsed or refused 400 naming the body, never a panic; signatures (any 65
//! bytes, any message) recover to an address or are refused as bad signatures, and a changed
//! message or signature never passes as the user's.

use alloy::{
    primitives::{Address, B256, U256},
    signers::local::PrivateKeySigner,
};
use morpheus_sdk::{
    messages::{ComputeRequest, Signed, UsageReport},
    router::ComputeBody,
};
use proptest::prelude::*;

use super::body;
use crate::{Error, service::request_signer};

fn domain() -> alloy::sol_types::Eip712Domain {
    morpheus_sdk::messages::protocol_domain(31337, Address::repeat_byte(0x5e))
}

fn signer() -> PrivateKeySigner {
    PrivateKeySigner::from_bytes(&B256::repeat_byte(0x11)).expect("a key")
}

fn request(user: Address, token_max: u64, nonce: [u8; 32], deadline: u64) -> ComputeRequest {
    ComputeRequest {
        user,
        modelId: B256::repeat_byte(9),
        tokenMax: U256::from(token_max),
        nonce: U256::from_be_bytes(nonce),
        deadline: U256::from(deadline),
    }
}

/// Parses `bytes` as both bodies the router reads; a refusal must be a 400 naming the body.
fn parse_all(bytes: &[u8]) {
    let bytes = axum::body::Bytes::copy_from_slice(bytes);
    for outcome in [
        body::<ComputeBody>(&bytes, "signed ComputeRequest").map(|_| ()),
        body::<Signed<UsageReport>>(&bytes, "signed UsageReport").map(|_| ()),
    ] {
        if let Err(e) = outcome {
            assert!(matches!(e, Error::BadRequest(_)), "{e:?}");
            assert_eq!(e.classify().0, 400);
            assert!(e.to_string().contains("the body is not a signed"), "{e}");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn any_bytes_are_parsed_or_refused_400(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        parse_all(&bytes);
    }

    #[test]
    fn a_valid_body_with_bytes_changed_is_parsed_or_refused_400(
        token_max in any::<u64>(),
        nonce in any::<[u8; 32]>(),
        changes in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
    ) {
        let user = signer();
        let signed = Signed::sign(request(user.address(), token_max, nonce, 1), &domain(), &user)
            .expect("sign");
        let mut bytes = serde_json::to_vec(&signed).expect("json");
        for (at, value) in changes {
            let i = at.index(bytes.len());
            bytes[i] = value;
        }
        parse_all(&bytes);
    }

    #[test]
    fn any_signature_recovers_or_is_refused_and_never_passes_as_the_user(
        signature in any::<[u8; 65]>(),
        token_max in any::<u64>(),
        nonce in any::<[u8; 32]>(),
    ) {
        let user = signer().address();
        let json = serde_json::json!({
            "message": request(user, token_max, nonce, 1),
            "signature": alloy::hex::encode_prefixed(signature),
        });
        // Not every 65 bytes is a signature alloy reads (v must be 0, 1, 27 or 28).
        if let Ok(signed) = serde_json::from_value::<Signed<ComputeRequest>>(json) {
            match request_signer(&signed, &domain()) {
                Ok(_) => prop_assert!(false, "a random signature passed as the user's"),
                Err(e) => prop_assert!(
                    matches!(e, Error::BadSignature { .. } | Error::WrongSigner { .. }),
                    "{e:?}"
                ),
            }
        }
    }

    #[test]
    fn a_signed_request_with_any_field_changed_is_refused(
        token_max in 1..u64::MAX,
        nonce in any::<[u8; 32]>(),
        field in 0..4usize,
    ) {
        let user = signer();
        let mut signed =
            Signed::sign(request(user.address(), token_max, nonce, 7), &domain(), &user)
                .expect("sign");
        prop_assert_eq!(request_signer(&signed, &domain()).expect("the user's"), user.address());
        let m = &mut signed.message;
        match field {
            0 => m.tokenMax += U256::from(1),
            1 => m.nonce ^= U256::from(1),
            2 => m.deadline += U256::from(1),
            _ => m.modelId = B256::repeat_byte(8),
        }
        let outcome = request_signer(&signed, &domain());
        let refused = matches!(outcome, Err(Error::WrongSigner { .. } | Error::BadSignature { .. }));
        prop_assert!(refused, "field {} changed: {:?}", field, outcome);
    }
}
