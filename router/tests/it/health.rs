//! What an operator's load balancer and monitoring see: `/healthz` while the process runs,
//! `/readyz` only while the chain and the database answer, and bodies over the limit refused.

use morpheus_router::api::MAX_BODY_BYTES;
use serde_json::Value;

use crate::common::Net;

#[tokio::test]
async fn readiness_follows_the_chain_and_oversized_bodies_are_refused() {
    let (net, chain) = Net::with_chain_forwarded().await;
    let get = |path: &str| reqwest::get(net.router_url(path));

    let live = get("/healthz").await.expect("healthz");
    assert_eq!(live.status(), 200);
    let ready = get("/readyz").await.expect("readyz");
    assert_eq!(ready.status(), 200);
    let ready: Value = ready.json().await.expect("json");
    assert_eq!(ready["ready"], true, "{ready}");
    assert!(ready["block"].as_u64().is_some_and(|b| b > 0), "{ready}");

    // One byte over the limit, on each route that takes a body: 413 in OpenAI's body.
    let http = reqwest::Client::new();
    for route in ["/v1/compute", "/v1/usage"] {
        let refused = http
            .post(net.router_url(route))
            .header("content-type", "application/json")
            .body(vec![b' '; MAX_BODY_BYTES + 1])
            .send()
            .await
            .expect("send");
        assert_eq!(refused.status(), 413, "{route}");
        let body: Value = refused.json().await.expect("an error body");
        assert_eq!(body["error"]["code"], "body_too_large", "{route}: {body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains(&MAX_BODY_BYTES.to_string())),
            "{route}: {body}"
        );
    }

    // The chain goes away: not ready, naming it; still alive.
    chain.abort();
    let not_ready = get("/readyz").await.expect("readyz");
    assert_eq!(not_ready.status(), 503);
    let not_ready: Value = not_ready.json().await.expect("json");
    assert_eq!(not_ready["ready"], false, "{not_ready}");
    assert!(
        not_ready["reason"]
            .as_str()
            .is_some_and(|r| r.contains("chain")),
        "{not_ready}"
    );
    assert_eq!(get("/healthz").await.expect("healthz").status(), 200);
    net.stop().await;
}
