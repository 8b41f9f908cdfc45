//! Widely used clients work unchanged against the worker (only the assignment header is
//! added): the official `openai` Python client (chat, streaming, structured output parsed into
//! a pydantic model, log-probabilities, text completions, a tool call round trip, several calls
//! in one answer, a refusal) and LangChain's `ChatOpenAI` (invoke, stream, structured output,
//! log-probabilities, a bound tool).

use std::process::Command;

use morpheus_sdk::provider::{ASSIGNMENT_HEADER, encode_assignment};

use morpheus_testkit::{TestWorker, python};

const SCRIPT: &str = r#"
import json, sys, typing, openai, pydantic
url, header, value = sys.argv[1:4]
client = openai.OpenAI(base_url=url + "/v1", api_key="unused", default_headers={header: value},
                       max_retries=0)
model = "tiny-llama-test"
hi = [{"role": "user", "content": "hi"}]
r = client.chat.completions.create(model=model, messages=hi, max_tokens=5, temperature=0, seed=1)
assert r.choices[0].message.content and r.usage.completion_tokens == 5, r
text = ""
for chunk in client.chat.completions.create(model=model, messages=hi, max_tokens=5, temperature=0,
                                            seed=1, stream=True):
    if chunk.choices:
        text += chunk.choices[0].delta.content or ""
assert text == r.choices[0].message.content, (text, r.choices[0].message.content)
models = client.models.list().data
assert [m.id for m in models] == [model] and models[0].context_length > 0, models

# Structured output from a pydantic model (the client's own strict schema), parsed by it.
class Item(pydantic.BaseModel):
    sku: str = pydantic.Field(max_length=8)
    qty: int
class Order(pydantic.BaseModel):
    status: typing.Literal["open", "paid", "shipped"]
    total: float
    items: list[Item] = pydantic.Field(min_length=1, max_length=3)
parsed = client.chat.completions.parse(model=model, messages=hi, max_tokens=400,
                                       temperature=0, response_format=Order)
order = parsed.choices[0].message.parsed
assert isinstance(order, Order) and 1 <= len(order.items) <= 3, parsed

# Log-probabilities, the chosen token first among the alternatives (greedy).
lp = client.chat.completions.create(model=model, messages=hi, max_tokens=4, temperature=0,
                                    logprobs=True, top_logprobs=2)
content = lp.choices[0].logprobs.content
assert len(content) == 4 and all(t.top_logprobs[0].token == t.token for t in content), content

# Text completions, whole and streamed.
c = client.completions.create(model=model, prompt="Once upon a time", max_tokens=6, temperature=0)
assert c.choices[0].text and c.usage.completion_tokens == 6, c
streamed = "".join(p.choices[0].text for p in client.completions.create(
    model=model, prompt="Once upon a time", max_tokens=6, temperature=0, stream=True) if p.choices)
assert streamed == c.choices[0].text, (streamed, c)

# A tool call round trip: the call, then the tool's answer sent back with it.
tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {
    "type": "object", "properties": {"city": {"type": "string", "maxLength": 12}},
    "required": ["city"], "additionalProperties": False}}}]
ask = [{"role": "user", "content": "Weather in Paris?"}]
t = client.chat.completions.create(model=model, messages=ask, tools=tools, tool_choice="required",
                                   max_tokens=100, temperature=0, parallel_tool_calls=False)
call = t.choices[0].message.tool_calls[0]
assert t.choices[0].finish_reason == "tool_calls" and call.function.name == "get_weather", t
assert isinstance(json.loads(call.function.arguments)["city"], str), call
back = client.chat.completions.create(
    model=model, max_tokens=5, temperature=0, seed=1, tools=tools, tool_choice="none",
    messages=ask + [t.choices[0].message, {"role": "tool", "tool_call_id": call.id, "content": "sunny"}])
assert back.choices[0].message.content and not back.choices[0].message.tool_calls, back
deltas = [c.choices[0].delta.tool_calls for c in client.chat.completions.create(
    model=model, messages=ask, tools=tools, tool_choice="required", max_tokens=100, temperature=0,
    parallel_tool_calls=False, stream=True) if c.choices and c.choices[0].delta.tool_calls]
assert deltas and deltas[0][0].function.name == "get_weather", deltas
assert json.loads("".join(d[0].function.arguments or "" for d in deltas)) == json.loads(call.function.arguments)

# Several calls in one answer (the tiny model has no end-of-sequence token: it writes all eight),
# whole and streamed, each call's deltas under its index.
many = client.chat.completions.create(model=model, messages=ask, tools=tools, tool_choice="required",
                                      max_tokens=900, temperature=0)
calls = many.choices[0].message.tool_calls
assert many.choices[0].finish_reason == "tool_calls" and len(calls) == 8, many
assert len({c.id for c in calls}) == 8 and all(c.function.name == "get_weather" for c in calls), calls
joined = {}
for c in client.chat.completions.create(model=model, messages=ask, tools=tools, tool_choice="required",
                                        max_tokens=900, temperature=0, stream=True):
    for d in (c.choices[0].delta.tool_calls or []) if c.choices else []:
        joined[d.index] = joined.get(d.index, "") + (d.function.arguments or "")
assert [json.loads(joined[i]) for i in range(8)] == [json.loads(c.function.arguments) for c in calls], joined

# Several choices, sampled apart; more than the provider's batch refused naming `n`.
several = client.chat.completions.create(model=model, messages=hi, max_tokens=4, n=3, seed=5)
assert [c.index for c in several.choices] == [0, 1, 2], several
assert several.usage.completion_tokens == 12, several.usage
try:
    client.chat.completions.create(model=model, messages=hi, max_tokens=4, n=64)
    raise AssertionError("n=64 was answered")
except openai.BadRequestError as e:
    assert e.body["param"] == "n", e.body
print("ok")
"#;

/// LangChain's `ChatOpenAI`: invoke, stream, structured output, log-probabilities, a bound tool.
const LANGCHAIN: &str = r#"
import sys, typing, pydantic
from langchain_openai import ChatOpenAI
url, header, value = sys.argv[1:4]
def llm(**kw):
    return ChatOpenAI(base_url=url + "/v1", api_key="unused", model="tiny-llama-test",
                      temperature=0, default_headers={header: value}, max_retries=0, **kw)
r = llm(max_tokens=6).invoke("hi")
assert r.content and r.usage_metadata["output_tokens"] == 6, r
streamed = "".join(c.content for c in llm(max_tokens=6).stream("hi"))
assert streamed == r.content, (streamed, r.content)
class Pet(pydantic.BaseModel):
    kind: typing.Literal["cat", "dog"]
    name: str = pydantic.Field(max_length=10)
    age: int
pet = llm(max_tokens=200).with_structured_output(Pet, method="json_schema").invoke("a pet")
assert isinstance(pet, Pet), pet
lp = llm(max_tokens=3, logprobs=True).invoke("hi")
assert len(lp.response_metadata["logprobs"]["content"]) == 3, lp.response_metadata
class GetWeather(pydantic.BaseModel):
    """The weather in a city."""
    city: str = pydantic.Field(max_length=12)
call = llm(max_tokens=100).bind_tools([GetWeather], tool_choice="GetWeather").invoke("Paris?")
assert call.tool_calls and call.tool_calls[0]["name"] == "GetWeather", call
assert isinstance(call.tool_calls[0]["args"]["city"], str), call
print("ok")
"#;

/// Runs `script` with the worker's URL and an assignment; it must print `ok`.
async fn run_script(script: &str) {
    // The venv (with `openai` and `langchain-openai` from worker/python/requirements.txt) is
    // installed by the kit on first use; without it the test fails, it is never skipped.
    let python = python().expect("the project's venv");
    let server = TestWorker::start().await;
    let value = encode_assignment(&server.assignment(100_000));
    let (url, script) = (server.url.clone(), script.to_string());
    let out = tokio::task::spawn_blocking(move || {
        Command::new(python)
            .args(["-c", &script, &url, ASSIGNMENT_HEADER, &value])
            .output()
    })
    .await
    .expect("join")
    .expect("python runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "the client failed:\n{stderr}");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "ok");
    server.stop().await;
}

#[tokio::test]
async fn official_python_client() {
    run_script(SCRIPT).await;
}

#[tokio::test]
async fn langchain_chat_openai() {
    run_script(LANGCHAIN).await;
}
