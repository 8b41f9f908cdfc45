//! A provider that accepts the TCP connection and never answers costs the router at most its
//! configured liveness timeout: the request is refused, it does not hang.

use std::time::{Duration, Instant};

use alloy::primitives::B256;
use tokio::net::TcpListener;

use crate::common::{Net, PRICE, assert_refused, provide};

/// The liveness timeout the router is configured with in this test.
const TIMEOUT: Duration = Duration::from_secs(2);

#[tokio::test]
async fn a_provider_that_accepts_and_never_answers_is_refused_within_the_timeout() {
    let net = Net::with(|c| c.liveness_timeout = TIMEOUT).await;

    // The hung provider: accepts every connection and holds it open, never reading or writing.
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let endpoint = format!("http://{}", listener.local_addr().expect("addr"));
    let (accepted_tx, mut accepted) = tokio::sync::mpsc::unbounded_channel();
    let holder = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
            let _ = accepted_tx.send(());
        }
    });

    // A model only the hung provider bids on, so that nothing else can be assigned.
    let hung = net.devnet.signer(4).address();
    let model_id = net
        .devnet
        .protocol(4)
        .await
        .expect("connect")
        .registry()
        .register_model(
            B256::from(rand::random::<[u8; 32]>()),
            1,
            morpheus_sdk::contracts::GGUF,
            "hung",
        )
        .await
        .expect("register model");
    provide(&net.devnet, 4, &endpoint, model_id, PRICE).await;

    let started = Instant::now();
    let result = tokio::time::timeout(
        TIMEOUT * 4,
        net.router
            .request_compute(&net.request(|r| r.modelId = model_id)),
    )
    .await
    .unwrap_or_else(|_| {
        panic!(
            "the router did not answer within {:?}, its liveness timeout is {TIMEOUT:?}",
            TIMEOUT * 4
        )
    });
    let took = started.elapsed();
    assert_refused(
        result,
        503,
        &format!("{hung}: liveness failed: no liveness answer within {TIMEOUT:?}"),
    );
    assert!(
        accepted.try_recv().is_ok(),
        "the router connected to the hung provider"
    );
    assert!(
        took >= TIMEOUT,
        "refused after {took:?}: before the provider's {TIMEOUT:?} were up"
    );
    holder.abort();
    net.stop().await;
}
