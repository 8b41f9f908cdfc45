//! The whole flow: request -> assignment -> chat with the provider -> usage report -> voucher
//! -> the provider's claim paid on-chain.

use std::path::PathBuf;

use alloy::primitives::U256;
use morpheus_sdk::{
    openai::{ChatCompletionRequest, ChatMessage},
    provider::ProviderClient,
    router::Outcome,
};

use crate::common::{Net, PRICE, PROVIDER};

/// A prompt the router's database must never contain (invariant 6).
const PROMPT: &str = "Tell me about the purple elephant of Zanzibar";

#[tokio::test]
async fn a_session_pays_the_provider_on_chain() {
    let net = Net::start().await;
    let user = net.user().address();
    let provider = net.devnet.signer(PROVIDER).address();
    let before = net.router.allowance(user).await.expect("allowance");
    assert!(
        before.user_max > U256::ZERO,
        "the staked user has an allowance"
    );
    assert_eq!(before.used, U256::ZERO);

    // The router checks the request, proves the provider live and signs the assignment.
    let assignment = net.assignment().await;
    let a = &assignment.message;
    assert_eq!(a.provider, provider);
    assert_eq!(a.pricePerToken, U256::from(PRICE));
    assert_eq!(a.tokenMax, U256::from(256));
    assignment
        .verify(
            &net.devnet.deployment().domain(),
            net.devnet.router_signer().address(),
        )
        .expect("router-signed");
    // The provider learns no more of the user than the connection shows: the assignment it
    // receives does not name the user.
    // (`x-morpheus-assignment` carries base64url of exactly this JSON.)
    let sent = serde_json::to_string(&assignment)
        .expect("json")
        .to_lowercase();
    let user_hex = format!("{user:x}");
    assert!(
        !sent.contains(user_hex.trim_start_matches("0x")),
        "the assignment the provider gets names the user: {sent}"
    );
    let reserved = net.router.allowance(user).await.expect("allowance");
    assert_eq!(reserved.used, U256::from(256), "tokenMax is reserved");

    // The user talks to the provider directly, with the assignment.
    let client = ProviderClient::new(&a.endpoint).expect("provider client");
    let model = client.models().await.expect("models").data[0].id.clone();
    let answer = client
        .chat(
            &assignment,
            &ChatCompletionRequest {
                model,
                messages: vec![ChatMessage::user(PROMPT)],
                max_tokens: Some(48),
                temperature: Some(0.0),
                ..Default::default()
            },
        )
        .await
        .expect("chat");
    let tokens = u64::from(answer.usage.total_tokens);
    let reply = answer.choices[0].message.content.clone();
    assert!(tokens > 0);

    // The user reports; the router credits the provider.
    let receipt = net
        .router
        .report_usage(&net.report_as(&net.user(), a.sessionId, tokens, 200, true))
        .await
        .expect("report");
    assert_eq!(receipt.outcome, Outcome::Credited, "{}", receipt.detail);
    assert_eq!(receipt.tokens, U256::from(tokens));
    let amount = U256::from(tokens) * U256::from(PRICE);
    assert_eq!(receipt.amount, amount);
    let after = net.router.allowance(user).await.expect("allowance");
    assert_eq!(
        after.used,
        U256::from(tokens),
        "the unused reservation is released"
    );

    let list = net.router.providers(net.model_id).await.expect("providers");
    assert_eq!(list.providers.len(), 1);
    assert_eq!(list.providers[0].record.sessions, 1);
    assert_eq!(list.providers[0].record.amount, amount);

    // The provider fetches its voucher and claims it.
    let voucher = net.voucher(provider).await;
    assert_eq!(voucher.message.cumulativeAmount, amount);
    assert_eq!(voucher.message.cumulativeTokens, U256::from(tokens));
    assert_eq!(voucher.message.sessions, U256::from(1));
    assert_eq!(voucher.message.failed, U256::ZERO);
    assert_eq!(voucher.message.cumulativeBootstrap, U256::ZERO);
    let paid = net.claim(PROVIDER, voucher).await;
    assert_eq!(paid, amount, "the claim pays the credited amount");

    // Invariant 6: no file the router wrote (database, WAL, shared memory, anything else in
    // its state directory) holds the prompt or any stretch of the answer.
    let reply = reply.trim().to_string();
    assert!(
        reply.len() >= 32,
        "a reply long enough to search for: {reply:?}"
    );
    let mut written = Vec::new();
    for entry in std::fs::read_dir(net.state_dir()).expect("state dir") {
        let path = entry.expect("entry").path();
        let bytes = std::fs::read(&path).expect("readable");
        written.push((path, String::from_utf8_lossy(&bytes).into_owned()));
    }
    match net.postgres_url() {
        // On PostgreSQL: every row of every table, as text.
        Some(url) => written.push((
            PathBuf::from(url),
            morpheus_testkit::postgres_dump_text(url).expect("dump"),
        )),
        None => assert!(
            written
                .iter()
                .any(|(p, t)| p == &net.db_path() && !t.is_empty()),
            "the router wrote its database"
        ),
    }
    // The prompt, the reply, the prompt's long words and every 8 characters of the reply.
    let chars: Vec<char> = reply.chars().collect();
    let pieces: Vec<String> = [PROMPT, reply.as_str()]
        .into_iter()
        .chain(PROMPT.split(' ').filter(|w| w.len() > 6))
        .map(str::to_string)
        .chain(
            chars
                .chunks(8)
                .filter(|c| c.len() == 8)
                .map(String::from_iter),
        )
        .collect();
    for (path, text) in &written {
        for piece in pieces.iter() {
            assert!(
                !text.contains(piece.as_str()),
                "{} holds {piece:?} of the user's conversation",
                path.display()
            );
        }
    }
    net.stop().await;
}
