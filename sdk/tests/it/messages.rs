//! Signed messages off-chain: signing, recovery, and the provider's checks.

use std::collections::HashSet;

use alloy::{
    primitives::{Address, U256, keccak256},
    signers::local::PrivateKeySigner,
};
use morpheus_sdk::{
    Error,
    merkle::ModelTree,
    messages::{Assignment, LivenessChallenge, LivenessResponse, Signed, protocol_domain},
    provider::{AssignmentPolicy, LivenessProof, decode_assignment, encode_assignment},
};

use crate::{malleable, session};

fn assignment(provider: Address, expires_at: u64) -> Assignment {
    Assignment {
        sessionId: session(1),
        user: Address::repeat_byte(7),
        provider,
        endpoint: "http://127.0.0.1:8080".into(),
        modelId: keccak256("m"),
        tokenMax: U256::from(256),
        pricePerToken: U256::from(1),
        expiresAt: U256::from(expires_at),
    }
}

#[test]
fn the_provider_accepts_only_good_assignments() -> eyre::Result<()> {
    let router = PrivateKeySigner::random();
    let provider = Address::repeat_byte(8);
    let domain = protocol_domain(31_337, Address::repeat_byte(0x11));
    let policy = AssignmentPolicy {
        domain: domain.clone(),
        provider,
        routers: HashSet::from([router.address()]),
    };

    let good = Signed::sign(assignment(provider, 1_000), &domain, &router)?;
    let header = encode_assignment(&good);
    assert_eq!(decode_assignment(&header)?, good);
    assert_eq!(policy.check(&good, 999)?, router.address());

    assert!(matches!(
        policy.check(&good, 1_001),
        Err(Error::Expired {
            expired_at: 1_000,
            now: 1_001,
            ..
        })
    ));
    assert!(matches!(
        policy.check(&malleable(&good), 999),
        Err(Error::MalleableSignature { .. })
    ));

    let elsewhere = Signed::sign(assignment(Address::repeat_byte(9), 1_000), &domain, &router)?;
    assert!(matches!(
        policy.check(&elsewhere, 999),
        Err(Error::Mismatch {
            field: "provider",
            ..
        })
    ));

    let stranger = PrivateKeySigner::random();
    let forged = Signed::sign(assignment(provider, 1_000), &domain, &stranger)?;
    assert!(matches!(
        policy.check(&forged, 999),
        Err(Error::UnauthorisedRouter { .. })
    ));

    let other_chain = Signed::sign(
        assignment(provider, 1_000),
        &protocol_domain(1, Address::repeat_byte(0x11)),
        &router,
    )?;
    assert!(matches!(
        policy.check(&other_chain, 999),
        Err(Error::UnauthorisedRouter { .. })
    ));

    let mut tampered = good.clone();
    tampered.message.tokenMax = U256::from(1_000_000);
    // Changing a signed field changes the digest: another signer is recovered.
    assert!(matches!(
        policy.check(&tampered, 999),
        Err(Error::UnauthorisedRouter { .. })
    ));

    assert!(decode_assignment("%%%").is_err());
    assert!(decode_assignment(&"A".repeat(5000)).is_err());
    assert!(decode_assignment(&encode_assignment(&good)[..20]).is_err());
    Ok(())
}

#[test]
fn liveness_proofs_verify_against_the_model_root() -> eyre::Result<()> {
    let router = PrivateKeySigner::random();
    let provider = PrivateKeySigner::random();
    let domain = protocol_domain(31_337, Address::repeat_byte(0x11));
    let weights: Vec<u8> = (0..3_000_000u32).map(|i| (i % 253) as u8).collect();
    let tree = ModelTree::from_bytes(&weights)?;

    let challenge = LivenessChallenge {
        challengeId: session(5),
        provider: provider.address(),
        modelId: keccak256("m"),
        chunkIndex: U256::from(2),
        deadline: U256::from(2_000),
    };
    let signed_challenge = Signed::sign(challenge.clone(), &domain, &router)?;
    let policy = AssignmentPolicy {
        domain: domain.clone(),
        provider: provider.address(),
        routers: HashSet::from([router.address()]),
    };
    assert_eq!(
        policy.check_challenge(&signed_challenge, 1_999)?,
        router.address()
    );
    assert!(matches!(
        policy.check_challenge(&signed_challenge, 2_001),
        Err(Error::Expired { .. })
    ));

    let proof = tree.proof(2)?;
    let answer = LivenessProof {
        response: Signed::sign(
            LivenessResponse {
                challengeId: session(5),
                chunkHash: proof.leaf,
            },
            &domain,
            &provider,
        )?,
        proof,
    };
    answer.verify(&challenge, tree.root(), &domain)?;

    let wrong_chunk = LivenessProof {
        proof: tree.proof(1)?,
        ..answer.clone()
    };
    assert!(matches!(
        wrong_chunk.verify(&challenge, tree.root(), &domain),
        Err(Error::Mismatch {
            field: "chunkIndex",
            ..
        })
    ));
    assert!(matches!(
        answer.verify(&challenge, keccak256("other model"), &domain),
        Err(Error::ModelProof(_))
    ));
    let impostor = LivenessProof {
        response: Signed::sign(answer.response.message.clone(), &domain, &router)?,
        ..answer.clone()
    };
    assert!(matches!(
        impostor.verify(&challenge, tree.root(), &domain),
        Err(Error::WrongSigner { .. })
    ));
    Ok(())
}
