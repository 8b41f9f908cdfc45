//! The SDK hashes every message exactly as the contracts do.

use alloy::{
    primitives::{Address, U256, keccak256},
    sol_types::SolStruct,
};
use morpheus_sdk::{
    contracts::GGUF,
    messages::{
        Assignment, ComputeRequest, CreditVoucher, LivenessChallenge, LivenessResponse, ModelClaim,
        ReceiptRequest, ServiceReceipt, ServiceReceipts, UsageReport,
    },
};
use morpheus_testkit::Devnet;

use crate::session;

#[tokio::test]
async fn every_message_hashes_like_the_contract() -> eyre::Result<()> {
    let devnet = Devnet::start().await?;
    let protocol = devnet.protocol(0).await?;
    let router = protocol.session_router();
    let domain = devnet.deployment().domain();
    assert_eq!(router.domain_separator().await?, domain.separator());

    let request = ComputeRequest {
        user: Address::repeat_byte(7),
        modelId: keccak256("m"),
        tokenMax: U256::from(4096),
        nonce: U256::from(9),
        deadline: U256::from(1_900_000_000u64),
    };
    assert_eq!(
        router.hash_compute_request(&request).await?,
        request.eip712_signing_hash(&domain)
    );

    let assignment = Assignment {
        sessionId: session(1),
        provider: Address::repeat_byte(8),
        endpoint: "http://127.0.0.1:8080/ünïcode".into(),
        modelId: keccak256("m"),
        tokenMax: U256::from(4096),
        pricePerToken: U256::from(10u64.pow(12)),
        expiresAt: U256::from(1_900_000_000u64),
    };
    assert_eq!(
        router.hash_assignment(&assignment).await?,
        assignment.eip712_signing_hash(&domain)
    );

    let report = UsageReport {
        sessionId: session(1),
        tokens: U256::from(321),
        ttftMs: U256::from(80),
        durationMs: U256::from(2100),
        passed: true,
    };
    assert_eq!(
        router.hash_usage_report(&report).await?,
        report.eip712_signing_hash(&domain)
    );

    let voucher = CreditVoucher {
        router: Address::repeat_byte(1),
        provider: Address::repeat_byte(2),
        cumulativeAmount: U256::MAX,
        cumulativeBootstrap: U256::from(3),
        cumulativeTokens: U256::from(4),
        sessions: U256::from(5),
        failed: U256::from(6),
        issuedAt: U256::from(7),
    };
    assert_eq!(
        router.hash_credit_voucher(&voucher).await?,
        voucher.eip712_signing_hash(&domain)
    );

    let challenge = LivenessChallenge {
        challengeId: session(2),
        provider: Address::repeat_byte(8),
        modelId: keccak256("m"),
        chunkIndex: U256::from(3),
        deadline: U256::from(1_900_000_000u64),
    };
    assert_eq!(
        router.hash_liveness_challenge(&challenge).await?,
        challenge.eip712_signing_hash(&domain)
    );

    let response = LivenessResponse {
        challengeId: session(2),
        chunkHash: keccak256("chunk"),
    };
    assert_eq!(
        router.hash_liveness_response(&response).await?,
        response.eip712_signing_hash(&domain)
    );
    let receipt = ServiceReceipt {
        sessionId: session(3),
        tokens: U256::from(240),
    };
    assert_eq!(
        router.hash_service_receipt(&receipt).await?,
        receipt.eip712_signing_hash(&domain)
    );

    // The batches, with nested structs: empty, one, and several (an empty endpoint among them).
    for n in [0, 1, 3] {
        let request = ReceiptRequest {
            assignments: (0..n)
                .map(|i| Assignment {
                    sessionId: session(10 + i),
                    endpoint: if i == 1 {
                        String::new()
                    } else {
                        assignment.endpoint.clone()
                    },
                    ..assignment.clone()
                })
                .collect(),
        };
        assert_eq!(
            router.hash_receipt_request(&request).await?,
            request.eip712_signing_hash(&domain),
            "{n} assignments"
        );
        let receipts = ServiceReceipts {
            receipts: (0..n)
                .map(|i| ServiceReceipt {
                    sessionId: session(10 + i),
                    tokens: U256::from(i * 7),
                })
                .collect(),
        };
        assert_eq!(
            router.hash_service_receipts(&receipts).await?,
            receipts.eip712_signing_hash(&domain),
            "{n} receipts"
        );
    }
    Ok(())
}

#[tokio::test]
async fn model_claims_hash_like_the_registry() -> eyre::Result<()> {
    let devnet = Devnet::start().await?;
    let protocol = devnet.protocol(0).await?;
    let registry = protocol.registry();
    let model_id = registry
        .register_model(keccak256("weights"), 3, GGUF, "tiny")
        .await?;
    let provider = devnet.signer(2).address();
    let claim = ModelClaim {
        provider,
        modelId: model_id,
        merkleRoot: keccak256("weights"),
    };
    assert_eq!(
        registry.hash_model_claim(provider, model_id).await?,
        claim.eip712_signing_hash(&devnet.deployment().registry_domain())
    );
    Ok(())
}
