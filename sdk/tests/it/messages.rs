//! Signed messages off-chain: signing, recovery, and the provider's checks.

use std::collections::HashSet;

use alloy::{
    primitives::{Address, B256, U256, keccak256},
    signers::local::PrivateKeySigner,
};
use morpheus_sdk::{
    Error,
    merkle::{
        CHUNK_SIZE, ChunkProof, ModelTree, PIECE_SIZE, PIECES_PER_CHUNK, PieceProof, PieceTree,
    },
    messages::{Assignment, LivenessChallenge, LivenessResponse, Signed, protocol_domain},
    provider::{AssignmentPolicy, LivenessProof, decode_assignment, encode_assignment},
};

use crate::{malleable, session};

fn assignment(provider: Address, expires_at: u64) -> Assignment {
    Assignment {
        sessionId: session(1),
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
    // Three chunks, the last of 902,848 bytes: 221 pieces, the last of 1,728 bytes.
    let weights: Vec<u8> = (0..3_000_000u32).map(|i| (i % 253) as u8).collect();
    let tree = ModelTree::from_bytes(&weights)?;
    let (root, chunks) = (tree.root(), tree.leaf_count());

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

    // The honest answer, from the weights: chunk 2's proof and the piece the challenge picks.
    let chunk = &weights[2 * CHUNK_SIZE..];
    let pieces = PieceTree::new(chunk)?;
    assert_eq!(pieces.piece_count(), 221);
    let picked = LivenessProof::challenged_piece(challenge.challengeId, 221);
    let sign = |chunk_hash| {
        Signed::sign(
            LivenessResponse {
                challengeId: session(5),
                chunkHash: chunk_hash,
            },
            &domain,
            &provider,
        )
    };
    let proof = tree.proof(2)?;
    let answer = LivenessProof {
        response: sign(proof.leaf)?,
        proof,
        piece: pieces.proof(picked)?,
    };
    answer.verify(&challenge, root, chunks, &domain)?;
    // The file's last piece, short, for a challenge id that picks it.
    let last_challenge = LivenessChallenge {
        challengeId: (0..)
            .map(|i| session(100 + i))
            .find(|id| LivenessProof::challenged_piece(*id, 221) == 220)
            .expect("some id picks the last piece"),
        ..challenge.clone()
    };
    let last = LivenessProof {
        response: Signed::sign(
            LivenessResponse {
                challengeId: last_challenge.challengeId,
                chunkHash: answer.proof.leaf,
            },
            &domain,
            &provider,
        )?,
        piece: pieces.proof(220)?,
        ..answer.clone()
    };
    assert_eq!(last.piece.bytes.len(), 1_728, "the file's short last piece");
    last.verify(&last_challenge, root, chunks, &domain)?;

    let mismatch = |answer: &LivenessProof, challenge: &LivenessChallenge| match answer
        .verify(challenge, root, chunks, &domain)
    {
        Err(Error::Mismatch { field, .. }) => field,
        other => panic!("expected a mismatch, got {other:?}"),
    };

    // Another chunk's proof, another piece of the right chunk.
    let wrong_chunk = LivenessProof {
        proof: tree.proof(1)?,
        ..answer.clone()
    };
    assert_eq!(mismatch(&wrong_chunk, &challenge), "chunkIndex");
    let wrong_piece = LivenessProof {
        piece: pieces.proof((picked + 1) % 221)?,
        ..answer.clone()
    };
    assert_eq!(mismatch(&wrong_piece, &challenge), "pieceIndex");

    // The leaf list without the weights: the right leaf and chunk proof, a made-up piece.
    let made_up = LivenessProof {
        piece: PieceProof {
            bytes: vec![0; PIECE_SIZE],
            siblings: vec![B256::ZERO; answer.piece.siblings.len()],
            ..answer.piece.clone()
        },
        ..answer.clone()
    };
    assert!(matches!(
        made_up.verify(&challenge, root, chunks, &domain),
        Err(Error::ModelProof(_))
    ));

    // The public root alone: a one-leaf tree whose leaf is the root. The chunk proof by itself
    // passes (its own leaf count shapes it); the registered count refuses it.
    let chunk0 = LivenessChallenge {
        chunkIndex: U256::ZERO,
        ..challenge.clone()
    };
    let forged = LivenessProof {
        response: sign(root)?,
        proof: ChunkProof {
            index: 0,
            leaf_count: 1,
            leaf: root,
            siblings: vec![],
        },
        piece: PieceProof {
            index: 0,
            piece_count: 1,
            bytes: vec![0],
            siblings: vec![],
        },
    };
    forged.proof.verify(root)?;
    assert_eq!(mismatch(&forged, &chunk0), "leafCount");

    // A full chunk stated with fewer pieces, or a full chunk's piece cut short.
    let chunk0_pieces = PieceTree::new(&weights[..CHUNK_SIZE])?;
    let proof0 = tree.proof(0)?;
    let honest0 = LivenessProof {
        response: sign(proof0.leaf)?,
        proof: proof0,
        piece: chunk0_pieces.proof(LivenessProof::challenged_piece(
            chunk0.challengeId,
            PIECES_PER_CHUNK,
        ))?,
    };
    honest0.verify(&chunk0, root, chunks, &domain)?;
    let fewer = LivenessProof {
        piece: PieceProof {
            piece_count: 1,
            index: 0,
            ..honest0.piece.clone()
        },
        ..honest0.clone()
    };
    assert_eq!(mismatch(&fewer, &chunk0), "pieceCount");
    let cut = LivenessProof {
        piece: PieceProof {
            bytes: honest0.piece.bytes[..64].to_vec(),
            ..honest0.piece.clone()
        },
        ..honest0.clone()
    };
    assert_eq!(mismatch(&cut, &chunk0), "pieceLength");

    assert!(matches!(
        answer.verify(&challenge, keccak256("other model"), chunks, &domain),
        Err(Error::ModelProof(_))
    ));
    let impostor = LivenessProof {
        response: Signed::sign(answer.response.message.clone(), &domain, &router)?,
        ..answer.clone()
    };
    assert!(matches!(
        impostor.verify(&challenge, root, chunks, &domain),
        Err(Error::WrongSigner { .. })
    ));
    Ok(())
}
