//! The official `openai` Python client works unchanged (only the assignment header is added).

use std::process::Command;

use morpheus_sdk::provider::{ASSIGNMENT_HEADER, encode_assignment};

use morpheus_testkit::{TestWorker, python};

const SCRIPT: &str = r#"
import sys, openai
url, header, value = sys.argv[1:4]
client = openai.OpenAI(base_url=url + "/v1", api_key="unused", default_headers={header: value})
r = client.chat.completions.create(model="tiny-llama-test", messages=[{"role": "user", "content": "hi"}],
                                   max_tokens=5, temperature=0, seed=1)
assert r.choices[0].message.content and r.usage.completion_tokens == 5, r
text = ""
for chunk in client.chat.completions.create(model="tiny-llama-test", messages=[{"role": "user", "content": "hi"}],
                                            max_tokens=5, temperature=0, seed=1, stream=True):
    if chunk.choices:
        text += chunk.choices[0].delta.content or ""
assert text == r.choices[0].message.content, (text, r.choices[0].message.content)
assert [m.id for m in client.models.list().data] == ["tiny-llama-test"]
print("ok")
"#;

#[tokio::test]
async fn official_python_client() {
    // The venv (with `openai` from worker/python/requirements.txt) is installed by the kit on
    // first use; without it the test fails, it is never skipped.
    let python = python().expect("the project's venv");
    let server = TestWorker::start().await;
    let value = encode_assignment(&server.assignment(100_000));
    let (url, script) = (server.url.clone(), SCRIPT.to_string());
    let out = tokio::task::spawn_blocking(move || {
        Command::new(python)
            .args(["-c", &script, &url, ASSIGNMENT_HEADER, &value])
            .output()
    })
    .await
    .expect("join")
    .expect("python runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "the openai client failed:\n{stderr}");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "ok");
    server.stop().await;
}
