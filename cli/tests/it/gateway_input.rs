//! Bad input and bad days: malformed bodies get OpenAI's error body naming the field (and
//! spend nothing), an unknown model 404, an unreachable router or chain 502 with the reason.

use alloy::primitives::U256;

use crate::common::{MODEL, Net, PRICE, PROVIDER, USER, assert_error, chat_body};

#[tokio::test]
async fn malformed_bodies_get_400_naming_the_field() {
    let mut net = Net::start(true).await;
    net.add_worker(PROVIDER, PRICE).await;
    let gw = net.gateway(USER, |_| {}).await;
    let url = format!("{}/chat/completions", gw.v1());
    let client = reqwest::Client::new();

    let user = serde_json::json!([{"role": "user", "content": "hi"}]);
    for (body, status, param) in [
        (
            serde_json::json!({"model": MODEL}).to_string(),
            400,
            Some("messages"),
        ),
        (
            serde_json::json!({"model": MODEL, "messages": [{"role": "user"}]}).to_string(),
            400,
            Some("messages[0].content"),
        ),
        (
            serde_json::json!({"model": MODEL, "messages": user, "max_tokens": "ten"}).to_string(),
            400,
            Some("max_tokens"),
        ),
        (
            serde_json::json!({"model": MODEL, "messages": []}).to_string(),
            400,
            Some("messages"),
        ),
        (
            serde_json::json!({"model": MODEL, "messages": [{"role": "tool", "content": "x"}]})
                .to_string(),
            400,
            Some("messages[0].tool_call_id"),
        ),
        (
            serde_json::json!({"model": MODEL, "messages": [{"role": "robot", "content": "x"}]})
                .to_string(),
            400,
            Some("messages[0].role"),
        ),
        (
            serde_json::json!({"model": MODEL, "messages": user, "temperature": 5}).to_string(),
            400,
            Some("temperature"),
        ),
        (
            serde_json::json!({"model": "no-such-model", "messages": user}).to_string(),
            404,
            Some("model"),
        ),
        ("{not json".to_string(), 400, None),
    ] {
        let response = client
            .post(&url)
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await
            .expect("answer");
        assert_eq!(response.status().as_u16(), status, "{body}");
        let answer: serde_json::Value = response.json().await.expect("OpenAI's error body");
        let error = &answer["error"];
        assert!(
            error["message"].is_string() && error["type"].is_string(),
            "{answer}"
        );
        match param {
            Some(p) => assert_eq!(error["param"], p, "{body}: {answer}"),
            None => assert!(error["param"].is_null(), "{body}: {answer}"),
        }
    }
    // Nothing was signed: the user's day is untouched.
    let day = net
        .router
        .allowance(net.address(USER))
        .await
        .expect("allowance");
    assert_eq!(day.used, U256::ZERO);
    gw.stop().await;
    net.stop().await;
}

#[tokio::test]
async fn an_unreachable_router_or_chain_is_502_with_the_reason() {
    let mut net = Net::start(true).await;
    net.add_worker(PROVIDER, PRICE).await;
    // A port nothing listens on.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        format!("http://{}", l.local_addr().expect("addr"))
    };

    let gw = net.gateway(USER, |c| c.router_url = closed.clone()).await;
    assert_error(
        gw.post(&chat_body("hi", 8, false)).await,
        502,
        "the router could not be reached",
    )
    .await;
    gw.stop().await;

    let gw = net.gateway(USER, |c| c.rpc_url = closed.clone()).await;
    for response in [
        reqwest::get(format!("{}/models", gw.v1()))
            .await
            .expect("answer"),
        gw.post(&chat_body("hi", 8, true)).await,
    ] {
        assert_eq!(response.status(), 502);
        let body: serde_json::Value = response.json().await.expect("json");
        assert_eq!(body["error"]["code"], "chain_unavailable", "{body}");
    }
    gw.stop().await;

    // The router stopped: 502 too, naming the router.
    let gw = net.gateway(USER, |_| {}).await;
    net.stop_router().await;
    assert_error(gw.post(&chat_body("hi", 8, false)).await, 502, "router").await;
    gw.stop().await;
    net.stop().await;
}
