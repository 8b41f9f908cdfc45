//! Any OpenAI client works unchanged through the gateway: the official Python `openai`
//! package (content parts and the `developer` role included, structured output,
//! log-probabilities and tool calls, several in one answer, passed through; what is not served
//! refused by name), and the stream's shape to its last event.

use std::process::Command;

use alloy::primitives::U256;
use morpheus_testkit::python;

use crate::common::{MODEL, Net, PRICE, PROVIDER, USER, chat_body, provider_of, sse_data};

const SCRIPT: &str = r#"
import json, sys, typing, openai, pydantic
client = openai.OpenAI(base_url=sys.argv[1], api_key="any key", max_retries=0)
assert [m.id for m in client.models.list().data] == [sys.argv[2]], client.models.list()
messages = [{"role": "system", "content": "You are a helpful assistant."},
            {"role": "user", "content": "Say hi"}]
r = client.chat.completions.create(model=sys.argv[2], messages=messages, max_tokens=8,
                                   temperature=0, seed=1)
assert r.choices[0].message.content, r
assert r.usage.completion_tokens > 0 and r.usage.total_tokens > r.usage.completion_tokens, r
chunks = list(client.chat.completions.create(model=sys.argv[2], messages=messages, max_tokens=8,
                                             temperature=0, seed=1, stream=True,
                                             stream_options={"include_usage": True}))
text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
assert text == r.choices[0].message.content, (text, r.choices[0].message.content)
last = chunks[-1]
assert last.choices == [] and last.usage is not None, last
assert all(c.usage is None for c in chunks[:-1]), chunks
assert last.usage.total_tokens == r.usage.total_tokens, (last.usage, r.usage)
# The same conversation as a `developer` message and content parts: the same answer.
parts = [{"role": "developer", "content": [{"type": "text", "text": "You are a helpful assistant."}]},
         {"role": "user", "content": [{"type": "text", "text": "Say hi"}]}]
p = client.chat.completions.create(model=sys.argv[2], messages=parts, max_tokens=8,
                                   temperature=0, seed=1, user="someone")
assert p.choices[0].message.content == r.choices[0].message.content, (p, r)
# Structured output and log-probabilities pass through to the provider and back.
class Pet(pydantic.BaseModel):
    kind: typing.Literal["cat", "dog"]
    age: int
s = client.chat.completions.parse(model=sys.argv[2], messages=messages, max_tokens=100,
                                  temperature=0, response_format=Pet)
assert isinstance(s.choices[0].message.parsed, Pet), s
l = client.chat.completions.create(model=sys.argv[2], messages=messages, max_tokens=4,
                                   temperature=0, logprobs=True, top_logprobs=2)
assert len(l.choices[0].logprobs.content) == l.usage.completion_tokens, l
tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {
    "type": "object", "properties": {"city": {"type": "string", "maxLength": 12}}, "required": ["city"]}}}]
t = client.chat.completions.create(model=sys.argv[2], messages=messages, tools=tools,
                                   tool_choice="required", max_tokens=100, temperature=0,
                                   parallel_tool_calls=False)
call = t.choices[0].message.tool_calls[0]
assert t.choices[0].finish_reason == "tool_calls" and call.function.name == "get_weather", t
assert isinstance(json.loads(call.function.arguments)["city"], str), call
# Several calls in one answer (the tiny model, without an end-of-sequence token, writes all eight).
many = client.chat.completions.create(model=sys.argv[2], messages=messages, tools=tools,
                                      tool_choice="required", max_tokens=900, temperature=0)
calls = many.choices[0].message.tool_calls
assert many.choices[0].finish_reason == "tool_calls" and len(calls) == 8, many
assert len({c.id for c in calls}) == 8 and all(json.loads(c.function.arguments) for c in calls), calls
# `n` choices: one session, each choice a sequence of its own, in index order (greedy here, so
# that the streamed request gives the same text).
c = client.chat.completions.create(model=sys.argv[2], messages=messages, max_tokens=6, n=2,
                                   temperature=0, seed=1)
assert [x.index for x in c.choices] == [0, 1], c
assert all(x.finish_reason in ("stop", "length") for x in c.choices), c
assert 0 < c.usage.completion_tokens <= 12, c.usage
cs = list(client.chat.completions.create(model=sys.argv[2], messages=messages, max_tokens=6, n=2,
                                         temperature=0, seed=1, stream=True,
                                         stream_options={"include_usage": True}))
streamed = ["".join(k.choices[0].delta.content or "" for k in cs if k.choices and k.choices[0].index == i)
            for i in (0, 1)]
assert streamed == [x.message.content for x in c.choices], (streamed, c)
# A text completion (`/v1/completions`: the prompt as it is, no chat template), whole and
# streamed, and what it does not serve refused by name.
k = client.completions.create(model=sys.argv[2], prompt="Once upon a time", max_tokens=6,
                              temperature=0, seed=1)
assert k.object == "text_completion" and k.choices[0].finish_reason in ("stop", "length"), k
assert 0 < k.usage.completion_tokens <= 6, k.usage
ks = list(client.completions.create(model=sys.argv[2], prompt="Once upon a time", max_tokens=6,
                                    temperature=0, seed=1, stream=True,
                                    stream_options={"include_usage": True}))
assert "".join(c.choices[0].text for c in ks if c.choices) == k.choices[0].text, (ks, k)
assert ks[-1].choices == [] and ks[-1].usage.total_tokens == k.usage.total_tokens, ks[-1]
# Its log-probabilities, whole and streamed: a token each, offsets into the text throughout.
kl = client.completions.create(model=sys.argv[2], prompt="Once upon a time", max_tokens=4,
                               temperature=0, logprobs=2)
lp = kl.choices[0].logprobs
assert len(lp.tokens) == kl.usage.completion_tokens == len(lp.token_logprobs), kl
assert "".join(lp.tokens) == kl.choices[0].text, kl
assert lp.text_offset[0] == 0 and all(1 <= len(t) <= 2 for t in lp.top_logprobs), lp
kls = list(client.completions.create(model=sys.argv[2], prompt="Once upon a time", max_tokens=4,
                                     temperature=0, logprobs=2, stream=True,
                                     stream_options={"include_usage": True}))
offsets = [o for c in kls if c.choices and c.choices[0].logprobs
           for o in c.choices[0].logprobs.text_offset]
assert offsets == lp.text_offset, (offsets, lp)
for extra, param in [({"echo": True}, "echo"), ({"suffix": "end"}, "suffix"), ({"n": 9}, "n")]:
    try:
        client.completions.create(model=sys.argv[2], prompt="a", max_tokens=4, **extra)
        raise AssertionError(f"{extra} was answered")
    except openai.BadRequestError as e:
        assert e.body["param"] == param, (extra, e.body)
# What is not served is refused by name, before any session is spent on it.
for extra, param in [({"tools": [{"type": "function", "function": {"description": "f"}}]},
                      "tools[0].function.name"),
                     ({"n": 9}, "n"),
                     ({"response_format": {"type": "json_schema", "json_schema": {}}},
                      "response_format.json_schema.schema")]:
    try:
        client.chat.completions.create(model=sys.argv[2], messages=messages, max_tokens=8, **extra)
        raise AssertionError(f"{extra} was answered")
    except openai.BadRequestError as e:
        assert e.body["param"] == param, (extra, e.body)
used = [r.usage, last.usage, p.usage, s.usage, l.usage, t.usage, many.usage, c.usage, cs[-1].usage,
        k.usage, ks[-1].usage, kl.usage, kls[-1].usage]
print(json.dumps({"tokens": sum(u.total_tokens for u in used)}))
"#;

#[tokio::test]
async fn the_official_openai_client_chats_and_streams_with_usage() {
    // Thirteen sessions: whole, streamed, the same conversation as content parts, structured
    // output, log-probabilities, a tool call, eight calls in one answer, two choices (whole and
    // streamed), a text completion (whole and streamed) and its log-probabilities (whole and
    // streamed); six requests for what is not served are refused before a session is asked for.
    // The venv (with `openai`) is installed by the kit on first use; without it the test
    // fails, it is never skipped.
    let python = python().expect("the project's venv");
    let mut net = Net::start(true).await;
    net.add_worker(PROVIDER, PRICE).await;
    let gw = net.gateway(USER, |_| {}).await;

    let (url, script) = (gw.v1(), SCRIPT.to_string());
    let out = tokio::task::spawn_blocking(move || {
        Command::new(python)
            .args(["-c", &script, &url, MODEL])
            .output()
    })
    .await
    .expect("join")
    .expect("python runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "the openai client failed:\n{stderr}");
    let printed: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("the script prints its figures");
    let tokens = printed["tokens"].as_u64().expect("tokens");

    // Both sessions were reported as the client saw them, and credited.
    let info = net.wait_for_reports(net.address(PROVIDER), 13).await;
    assert_eq!(info.reputation.completed, 13, "{info:?}");
    assert_eq!(info.reputation.failed, 0, "{info:?}");
    assert_eq!(
        info.record.tokens, tokens,
        "the reports carry the client's counts"
    );
    assert_eq!(info.reputation.earned, U256::from(tokens * PRICE));
    gw.stop().await;
    net.stop().await;
}

#[tokio::test]
async fn a_stream_keeps_openais_shape_to_the_end() {
    let mut net = Net::start(true).await;
    net.add_worker(PROVIDER, PRICE).await;
    let gw = net.gateway(USER, |_| {}).await;

    // With include_usage: chunks, then the usage chunk with no choices, then [DONE].
    let response = gw.post(&chat_body("Say hi", 8, true)).await;
    assert_eq!(response.status(), 200);
    assert_eq!(provider_of(&response), net.address(PROVIDER));
    assert!(
        response
            .headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("req-")),
        "{:?}",
        response.headers()
    );
    let events = sse_data(&response.text().await.expect("body"));
    assert_eq!(
        events.last().map(String::as_str),
        Some("[DONE]"),
        "{events:?}"
    );
    let chunks: Vec<serde_json::Value> = events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str(e).expect("a chunk"))
        .collect();
    let usage = chunks.last().expect("chunks");
    assert_eq!(usage["choices"], serde_json::json!([]), "{usage}");
    assert!(
        usage["usage"]["total_tokens"]
            .as_u64()
            .is_some_and(|n| n > 0),
        "{usage}"
    );
    assert!(
        chunks[..chunks.len() - 1]
            .iter()
            .all(|c| c["object"] == "chat.completion.chunk"
                && c["model"] == MODEL
                && c.get("usage").is_none()),
        "{chunks:?}"
    );
    assert!(
        chunks
            .iter()
            .any(|c| c["choices"][0]["finish_reason"].is_string()),
        "the finishing chunk is passed on: {chunks:?}"
    );

    // Without it: no usage anywhere, still [DONE] at the end.
    let mut body = chat_body("Say hi", 8, true);
    body.as_object_mut()
        .expect("object")
        .remove("stream_options");
    let events = sse_data(&gw.post(&body).await.text().await.expect("body"));
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
    assert!(
        events.iter().all(|e| !e.contains("\"usage\"")),
        "{events:?}"
    );

    // The reports still carry the provider's counts.
    let info = net.wait_for_reports(net.address(PROVIDER), 2).await;
    assert_eq!(info.reputation.completed, 2, "{info:?}");
    gw.stop().await;
    net.stop().await;
}
