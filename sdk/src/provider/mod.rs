//! What passes between a user (or the router) and a provider's `morpheus-worker`.
//!
//! A chat request carries the router's signed [`Assignment`] in the [`ASSIGNMENT_HEADER`] header
//! (base64url of its JSON form, see [`encode_assignment`]); the provider accepts it only when
//! [`AssignmentPolicy::check`] passes. The router's liveness check is a signed
//! [`LivenessChallenge`] posted to `/v1/liveness`; the provider answers with a [`LivenessProof`].

mod client;
mod sse;

use std::collections::HashSet;

use alloy::{
    primitives::{Address, B256},
    sol_types::Eip712Domain,
};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
pub use client::{ChatStream, CompletionStream, ProviderClient};
use serde::{Deserialize, Serialize};

use crate::{
    Error, Result,
    merkle::ChunkProof,
    messages::{
        Assignment, LivenessChallenge, LivenessResponse, ReceiptRequest, ServiceReceipts, Signed,
    },
};

/// The provider's route that closes a session and returns its signed token count.
pub const RECEIPT_PATH: &str = "v1/receipt";

/// The provider's route that closes several sessions and returns their signed token counts
/// together (a signed [`ReceiptRequest`] in, a signed [`ServiceReceipts`] out).
pub const RECEIPTS_PATH: &str = "v1/receipts";

/// The most assignments one [`ReceiptRequest`] may carry: its body stays under 160 KiB and its
/// answer under 64 KiB.
pub const MAX_RECEIPT_BATCH: usize = 256;

/// HTTP header that carries the signed assignment on every chat request.
pub const ASSIGNMENT_HEADER: &str = "x-morpheus-assignment";

/// Largest accepted header value: an assignment with a long endpoint is far below this.
pub const MAX_ASSIGNMENT_HEADER_LEN: usize = 4096;

/// Encodes a signed assignment for [`ASSIGNMENT_HEADER`]: base64url (no padding) of its JSON.
pub fn encode_assignment(assignment: &Signed<Assignment>) -> String {
    let json = serde_json::to_vec(assignment).expect("a signed assignment always serialises");
    URL_SAFE_NO_PAD.encode(json)
}

/// The token counts a provider signed for the sessions of `request`, in its order: the
/// receipts must be signed by `provider` under `domain`, one per assignment, for the same
/// sessions in the same order.
pub fn receipt_counts(
    request: &ReceiptRequest,
    receipts: &Signed<ServiceReceipts>,
    domain: &Eip712Domain,
    provider: Address,
) -> Result<Vec<u64>> {
    receipts.verify(domain, provider)?;
    let (asked, answered) = (&request.assignments, &receipts.message.receipts);
    if asked.len() != answered.len() {
        return Err(Error::Mismatch {
            field: "receipts count",
            expected: asked.len().to_string(),
            actual: answered.len().to_string(),
        });
    }
    asked
        .iter()
        .zip(answered)
        .map(|(a, r)| {
            if r.sessionId != a.sessionId {
                return Err(Error::Mismatch {
                    field: "receipt sessionId",
                    expected: a.sessionId.to_string(),
                    actual: r.sessionId.to_string(),
                });
            }
            Ok(u64::try_from(r.tokens).unwrap_or(u64::MAX))
        })
        .collect()
}

/// Decodes the value of [`ASSIGNMENT_HEADER`].
pub fn decode_assignment(value: &str) -> Result<Signed<Assignment>> {
    if value.len() > MAX_ASSIGNMENT_HEADER_LEN {
        return Err(Error::Mismatch {
            field: "assignment header length",
            expected: format!("at most {MAX_ASSIGNMENT_HEADER_LEN} bytes"),
            actual: value.len().to_string(),
        });
    }
    let json = URL_SAFE_NO_PAD
        .decode(value.trim())
        .map_err(|e| Error::Mismatch {
            field: "assignment header encoding",
            expected: "base64url without padding".into(),
            actual: e.to_string(),
        })?;
    Ok(serde_json::from_slice(&json)?)
}

/// What a provider accepts: assignments for itself, signed by a router it trusts, not expired.
#[derive(Debug, Clone)]
pub struct AssignmentPolicy {
    /// The protocol's EIP-712 domain (chain id and `SessionRouter`).
    pub domain: Eip712Domain,
    /// This provider's address.
    pub provider: Address,
    /// Router signers whose assignments are honoured.
    pub routers: HashSet<Address>,
}

impl AssignmentPolicy {
    /// Checks a signed assignment at unix time `now`; returns the router that signed it.
    pub fn check(&self, signed: &Signed<Assignment>, now: u64) -> Result<Address> {
        let router = self.check_issued(signed)?;
        check_not_expired("assignment", signed.message.expiresAt, now)?;
        Ok(router)
    }

    /// Checks that a router this provider trusts signed the assignment for this provider,
    /// whether or not it has expired: a [`ServiceReceipt`](crate::messages::ServiceReceipt) is
    /// asked for after the session's end too. Returns the router that signed it.
    pub fn check_issued(&self, signed: &Signed<Assignment>) -> Result<Address> {
        let router = signed.recover(&self.domain)?;
        if !self.routers.contains(&router) {
            return Err(Error::UnauthorisedRouter { signer: router });
        }
        let a = &signed.message;
        if a.provider != self.provider {
            return Err(Error::Mismatch {
                field: "provider",
                expected: self.provider.to_string(),
                actual: a.provider.to_string(),
            });
        }
        Ok(router)
    }

    /// Checks a router's request for several sessions' receipts: 1 to [`MAX_RECEIPT_BATCH`]
    /// assignments, signed together by a router this provider trusts, each for this provider,
    /// all for one model (expired or not, as [`check_issued`](Self::check_issued)). Returns the
    /// router and the model.
    pub fn check_receipt_request(
        &self,
        signed: &Signed<ReceiptRequest>,
    ) -> Result<(Address, B256)> {
        let assignments = &signed.message.assignments;
        let Some(first) = assignments.first() else {
            return Err(Error::Mismatch {
                field: "receipt request assignments",
                expected: format!("1 to {MAX_RECEIPT_BATCH}"),
                actual: "0".into(),
            });
        };
        if assignments.len() > MAX_RECEIPT_BATCH {
            return Err(Error::Mismatch {
                field: "receipt request assignments",
                expected: format!("1 to {MAX_RECEIPT_BATCH}"),
                actual: assignments.len().to_string(),
            });
        }
        let router = signed.recover(&self.domain)?;
        if !self.routers.contains(&router) {
            return Err(Error::UnauthorisedRouter { signer: router });
        }
        for a in assignments {
            if a.provider != self.provider {
                return Err(Error::Mismatch {
                    field: "provider",
                    expected: self.provider.to_string(),
                    actual: a.provider.to_string(),
                });
            }
            if a.modelId != first.modelId {
                return Err(Error::Mismatch {
                    field: "receipt request modelId (one model per request)",
                    expected: first.modelId.to_string(),
                    actual: a.modelId.to_string(),
                });
            }
        }
        Ok((router, first.modelId))
    }

    /// Checks a router's liveness challenge at unix time `now`; returns the router.
    pub fn check_challenge(&self, signed: &Signed<LivenessChallenge>, now: u64) -> Result<Address> {
        let router = signed.recover(&self.domain)?;
        if !self.routers.contains(&router) {
            return Err(Error::UnauthorisedRouter { signer: router });
        }
        if signed.message.provider != self.provider {
            return Err(Error::Mismatch {
                field: "provider",
                expected: self.provider.to_string(),
                actual: signed.message.provider.to_string(),
            });
        }
        check_not_expired("liveness challenge", signed.message.deadline, now)?;
        Ok(router)
    }
}

/// A provider's answer to a liveness challenge: the signed chunk leaf, its Merkle proof, and the
/// bytes of the piece the challenge picks with their path to the chunk leaf (so the answer needs
/// the weights, not only the tree's leaves: `crate::merkle`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LivenessProof {
    /// `LivenessResponse` signed by the provider.
    pub response: Signed<LivenessResponse>,
    /// Proof that the chunk belongs to the model's registered tree.
    pub proof: ChunkProof,
    /// Piece [`LivenessProof::challenged_piece`] of the chunk, proved against the chunk's leaf.
    pub piece: crate::merkle::PieceProof,
}

impl LivenessProof {
    /// Which piece of the chunk a challenge asks for: `challengeId` as a uint256 modulo the
    /// chunk's piece count (a count of 0, never valid, is taken as 1).
    pub fn challenged_piece(challenge_id: B256, piece_count: u64) -> u64 {
        let id = alloy::primitives::U256::from_be_bytes(challenge_id.0);
        let count = alloy::primitives::U256::from(piece_count.max(1));
        (id % count).to::<u64>()
    }

    /// Checks the answer to `challenge` against the model as registered: its `root` and its
    /// `chunk_count`, both from the registry, never from the provider (the count fixes the
    /// tree's shape). The response must be signed by the challenged provider, for the chunk
    /// leaf the piece leads to.
    pub fn verify(
        &self,
        challenge: &LivenessChallenge,
        root: B256,
        chunk_count: u64,
        domain: &Eip712Domain,
    ) -> Result<()> {
        self.response.verify(domain, challenge.provider)?;
        if self.response.message.challengeId != challenge.challengeId {
            return Err(Error::Mismatch {
                field: "challengeId",
                expected: challenge.challengeId.to_string(),
                actual: self.response.message.challengeId.to_string(),
            });
        }
        let index: u64 = challenge.chunkIndex.try_into().unwrap_or(u64::MAX);
        if self.proof.index != index {
            return Err(Error::Mismatch {
                field: "chunkIndex",
                expected: index.to_string(),
                actual: self.proof.index.to_string(),
            });
        }
        // A provider-chosen count would let `leaf_count = 1, leaf = root` pass for chunk 0.
        if self.proof.leaf_count != chunk_count {
            return Err(Error::Mismatch {
                field: "leafCount",
                expected: chunk_count.to_string(),
                actual: self.proof.leaf_count.to_string(),
            });
        }
        self.piece.check_shape(index, chunk_count)?;
        let piece = Self::challenged_piece(challenge.challengeId, self.piece.piece_count);
        if self.piece.index != piece {
            return Err(Error::Mismatch {
                field: "pieceIndex",
                expected: piece.to_string(),
                actual: self.piece.index.to_string(),
            });
        }
        let leaf = self.piece.compute_chunk_leaf()?;
        if leaf != self.proof.leaf {
            return Err(Error::ModelProof(format!(
                "piece {piece} leads to chunk leaf {leaf}, the proof's is {}",
                self.proof.leaf
            )));
        }
        if self.proof.leaf != self.response.message.chunkHash {
            return Err(Error::ModelProof(
                "the signed chunk hash is not the proven leaf".into(),
            ));
        }
        self.proof.verify(root)
    }
}

/// Fails with [`Error::Expired`] when `deadline` (unix seconds, as a uint256) is before `now`.
pub fn check_not_expired(
    message: &'static str,
    deadline: alloy::primitives::U256,
    now: u64,
) -> Result<()> {
    let expired_at: u64 = deadline.try_into().unwrap_or(u64::MAX);
    if expired_at < now {
        return Err(Error::Expired {
            message,
            expired_at,
            now,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use alloy::{primitives::U256, signers::local::PrivateKeySigner};

    use super::*;
    use crate::messages::{ServiceReceipt, protocol_domain};

    struct Parties {
        domain: Eip712Domain,
        router: PrivateKeySigner,
        provider: PrivateKeySigner,
        policy: AssignmentPolicy,
    }

    fn parties() -> Parties {
        let (router, provider) = (PrivateKeySigner::random(), PrivateKeySigner::random());
        let domain = protocol_domain(31337, Address::repeat_byte(0x55));
        let policy = AssignmentPolicy {
            domain: domain.clone(),
            provider: provider.address(),
            routers: HashSet::from([router.address()]),
        };
        Parties {
            domain,
            router,
            provider,
            policy,
        }
    }

    fn assignment(provider: Address, n: u8) -> Assignment {
        Assignment {
            sessionId: B256::repeat_byte(n),
            provider,
            endpoint: "http://127.0.0.1:1".into(),
            modelId: B256::repeat_byte(0xaa),
            tokenMax: U256::from(64),
            pricePerToken: U256::from(1),
            expiresAt: U256::from(1),
        }
    }

    fn request(p: &Parties, n: u8) -> ReceiptRequest {
        ReceiptRequest {
            assignments: (1..=n)
                .map(|i| assignment(p.provider.address(), i))
                .collect(),
        }
    }

    fn error_of<T: std::fmt::Debug>(r: Result<T>) -> String {
        r.expect_err("refused").to_string()
    }

    #[test]
    fn a_receipt_request_is_checked_whole() {
        let p = parties();
        let signed = Signed::sign(request(&p, 3), &p.domain, &p.router).expect("sign");
        let (router, model) = p.policy.check_receipt_request(&signed).expect("accepted");
        assert_eq!(
            (router, model),
            (p.router.address(), B256::repeat_byte(0xaa))
        );

        let stranger = Signed::sign(request(&p, 3), &p.domain, &p.provider).expect("sign");
        assert!(matches!(
            p.policy.check_receipt_request(&stranger),
            Err(Error::UnauthorisedRouter { .. })
        ));
        let mut other_provider = request(&p, 3);
        other_provider.assignments[2].provider = Address::repeat_byte(9);
        let e = error_of(p.policy.check_receipt_request(
            &Signed::sign(other_provider, &p.domain, &p.router).expect("sign"),
        ));
        assert!(e.contains("provider"), "{e}");
        let mut two_models = request(&p, 3);
        two_models.assignments[1].modelId = B256::repeat_byte(0xbb);
        let e =
            error_of(p.policy.check_receipt_request(
                &Signed::sign(two_models, &p.domain, &p.router).expect("sign"),
            ));
        assert!(e.contains("one model per request"), "{e}");
        for n in [0, MAX_RECEIPT_BATCH + 1] {
            let r = ReceiptRequest {
                assignments: (0..n)
                    .map(|i| assignment(p.provider.address(), i as u8))
                    .collect(),
            };
            let e = error_of(
                p.policy
                    .check_receipt_request(&Signed::sign(r, &p.domain, &p.router).expect("sign")),
            );
            assert!(e.contains(&format!("1 to {MAX_RECEIPT_BATCH}")), "{n}: {e}");
        }
        // A changed assignment is another message: its signer is someone else.
        let mut changed = signed.clone();
        changed.message.assignments[0].tokenMax = U256::from(65);
        assert!(p.policy.check_receipt_request(&changed).is_err());
    }

    #[test]
    fn receipt_counts_follow_the_request_in_order() {
        let p = parties();
        let asked = request(&p, 3);
        let answer = |ids: &[u8], signer: &PrivateKeySigner| {
            let receipts = ServiceReceipts {
                receipts: ids
                    .iter()
                    .map(|&i| ServiceReceipt {
                        sessionId: B256::repeat_byte(i),
                        tokens: U256::from(u64::from(i) * 10),
                    })
                    .collect(),
            };
            Signed::sign(receipts, &p.domain, signer).expect("sign")
        };
        let counts = receipt_counts(
            &asked,
            &answer(&[1, 2, 3], &p.provider),
            &p.domain,
            p.provider.address(),
        )
        .expect("counts");
        assert_eq!(counts, vec![10, 20, 30]);
        let refused = |ids: &[u8], signer: &PrivateKeySigner| {
            error_of(receipt_counts(
                &asked,
                &answer(ids, signer),
                &p.domain,
                p.provider.address(),
            ))
        };
        assert!(refused(&[1, 3, 2], &p.provider).contains("receipt sessionId"));
        assert!(refused(&[1, 2], &p.provider).contains("receipts count"));
        assert!(refused(&[1, 2, 3, 4], &p.provider).contains("receipts count"));
        assert!(
            !refused(&[1, 2, 3], &p.router).is_empty(),
            "not the provider's"
        );
    }
}
