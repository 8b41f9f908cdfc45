//! `make bench`: the time to first token the protocol path adds. On loopback, a devnet with the
//! tiny model served by a real worker, the router (liveness check on) and the gateway: N chats
//! through the gateway (it signs the request, the router checks it and the provider's liveness
//! and signs the assignment, the provider streams, the gateway reports) against N chats sent to
//! the provider directly with an assignment fetched beforehand, each timed to its first chunk
//! with text. Prints p50 and p99 of both and what the path adds.
//!
//! `cargo run --release -p morpheus-cli --example protocol_overhead -- [N]` (default 200).

use std::time::{Duration, Instant};

use alloy::primitives::U256;
use futures::StreamExt;
use morpheus_cli::gateway::{Gateway, GatewayConfig};
use morpheus_router::{AppState, RouterConfig};
use morpheus_sdk::{
    messages::{ComputeRequest, Signed, UsageReport},
    openai::{ChatCompletionChunk, ChatCompletionRequest, ChatMessage},
    provider::ProviderClient,
    router::RouterClient,
};
use morpheus_testkit::{Devnet, TestWorker, unique_b256, unix_now};

const PROVIDER: usize = 2;
const USER: usize = 3;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Time to first token is to the first chunk with text, on both paths: a stream's first event
/// (the role) comes before any token is computed.
fn has_text(chunk: &ChatCompletionChunk) -> bool {
    chunk
        .choices
        .iter()
        .any(|c| c.delta.content.as_deref().is_some_and(|t| !t.is_empty()))
}

/// Whether the server-sent events in `body` so far hold a chunk with text.
fn sse_has_text(body: &[u8]) -> bool {
    String::from_utf8_lossy(body).lines().any(|line| {
        line.strip_prefix("data: ")
            .and_then(|data| serde_json::from_str::<ChatCompletionChunk>(data).ok())
            .is_some_and(|chunk| has_text(&chunk))
    })
}

fn chat(stream: bool) -> ChatCompletionRequest {
    let mut request = ChatCompletionRequest {
        model: "tiny".into(),
        messages: vec![ChatMessage::user("Say something.")],
        ..Default::default()
    };
    // Greedy, so that both paths produce the same tokens, and enough of them for one to be text.
    request.max_tokens = Some(8);
    request.temperature = Some(0.0);
    request.stream = stream;
    request
}

#[tokio::main]
async fn main() -> eyre::Result<()> {
    let n: usize = std::env::args()
        .nth(1)
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(200);
    let devnet = Devnet::start().await?;
    let model_id = devnet.register_tiny_model(PROVIDER, "tiny").await?;
    let deployment = devnet.deployment();
    let worker = TestWorker::with(devnet.worker_options(PROVIDER, model_id)).await;
    devnet
        .provide(
            PROVIDER,
            &worker.url,
            model_id,
            U256::from(50_000_000_000u64),
            64,
        )
        .await?;
    devnet.stake(USER, "10000").await?;

    let db = tempfile::tempdir()?;
    let mut config = RouterConfig::new(
        devnet.rpc_url(),
        deployment,
        devnet.router_signer(),
        db.path().join("router.db"),
    );
    config.allow_private_endpoints = true;
    config.slow_threshold_pct = 1_000_000;
    // One user sends every request, faster than a user's default rate limit allows.
    config.user_rate_limit = morpheus_router::RateLimit::OFF;
    config.ip_rate_limit = morpheus_router::RateLimit::OFF;
    let router_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let router_url = format!("http://{}", router_listener.local_addr()?);
    let state = AppState::connect(config).await?;
    tokio::spawn(morpheus_router::run(
        router_listener,
        state,
        std::future::pending(),
    ));

    let outbox = db.path().join("outbox.db");
    let gateway = Gateway::connect(GatewayConfig::new(
        devnet.rpc_url(),
        router_url.clone(),
        deployment,
        devnet.signer(USER),
        outbox,
    ))
    .await?;
    let gateway_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let gateway_url = format!(
        "http://{}/v1/chat/completions",
        gateway_listener.local_addr()?
    );
    tokio::spawn(morpheus_cli::gateway::run(
        gateway_listener,
        gateway,
        std::future::pending(),
    ));

    let http = reqwest::Client::new();
    let router = RouterClient::new(&router_url)?;
    let client = ProviderClient::new(&worker.url)?;
    let domain = deployment.domain();
    let user = devnet.signer(USER);
    let (mut direct, mut through) = (Vec::with_capacity(n), Vec::with_capacity(n));
    // The router's part alone: signed request in, signed assignment out (liveness check included).
    let mut assigning = Vec::with_capacity(n);
    // One of each to warm up connections and the model, not counted.
    for round in 0..=n {
        // Directly: the assignment is fetched first, outside the timing.
        let request = ComputeRequest {
            user: user.address(),
            modelId: model_id,
            tokenMax: U256::from(256),
            nonce: U256::from_be_bytes(*unique_b256()),
            deadline: U256::from(unix_now() + 60),
        };
        let asked = Instant::now();
        let assignment = router
            .request_compute(&Signed::sign(request, &domain, &user)?)
            .await?;
        if round > 0 {
            assigning.push(asked.elapsed());
        }
        let started = Instant::now();
        let mut stream = client.chat_stream(&assignment, &chat(true)).await?;
        let mut ttft = None;
        while let Some(chunk) = stream.next().await.transpose()? {
            if ttft.is_none() && has_text(&chunk) {
                ttft = Some(started.elapsed());
            }
        }
        let ttft = ttft.ok_or_else(|| eyre::eyre!("the provider sent no text"))?;
        if round > 0 {
            direct.push(ttft);
        }
        // Reported as the gateway reports its sessions, so the provider's places free up.
        let report = UsageReport {
            sessionId: assignment.message.sessionId,
            tokens: U256::from(4),
            ttftMs: U256::from(ttft.as_millis()),
            durationMs: U256::from(ttft.as_millis() + 1),
            passed: true,
        };
        router
            .report_usage(&Signed::sign(report, &domain, &user)?)
            .await?;

        // Through the gateway: everything from the client's request on.
        let started = Instant::now();
        let response = http.post(&gateway_url).json(&chat(true)).send().await?;
        eyre::ensure!(
            response.status().is_success(),
            "gateway answered {}",
            response.status()
        );
        let mut body = response.bytes_stream();
        let (mut seen, mut ttft) = (Vec::new(), None);
        while let Some(bytes) = body.next().await.transpose()? {
            if ttft.is_none() {
                seen.extend_from_slice(&bytes);
                if sse_has_text(&seen) {
                    ttft = Some(started.elapsed());
                }
            }
        }
        let ttft = ttft.ok_or_else(|| eyre::eyre!("the gateway sent no text"))?;
        if round > 0 {
            through.push(ttft);
        }
    }
    direct.sort();
    through.sort();
    assigning.sort();
    let (d50, d99) = (percentile(&direct, 0.5), percentile(&direct, 0.99));
    let (g50, g99) = (percentile(&through, 0.5), percentile(&through, 0.99));
    println!("protocol path TTFT over {n} requests each (tiny model, loopback, liveness on)");
    println!(
        "  provider directly:  p50 {:8.2} ms  p99 {:8.2} ms",
        ms(d50),
        ms(d99)
    );
    println!(
        "  through gateway:    p50 {:8.2} ms  p99 {:8.2} ms",
        ms(g50),
        ms(g99)
    );
    println!(
        "  router's assignment: p50 {:8.2} ms  p99 {:8.2} ms",
        ms(percentile(&assigning, 0.5)),
        ms(percentile(&assigning, 0.99))
    );
    println!(
        "  added by the path:  p50 {:8.2} ms  p99 {:8.2} ms  (target <= 5 ms at p50)",
        ms(g50.saturating_sub(d50)),
        ms(g99.saturating_sub(d99))
    );
    worker.stop().await;
    Ok(())
}
