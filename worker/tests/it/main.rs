//! Integration tests of the worker: a real server on 127.0.0.1:0 (the kit's `TestWorker`) with
//! the tiny fixed-seed model, SmolLM2 for the end-to-end answer, and the built binary itself.

mod batching;
mod binary;
mod budget;
mod chat;
mod choices;
mod common;
mod completions;
mod gemma3;
mod gguf_file;
mod liveness;
mod openai_client;
mod prefill;
mod prefix_cache;
mod prepare_refusals;
mod receipts;
mod refusals;
mod removed_router;
mod sampling;
mod smollm2;
mod structured;
mod tools;
mod verify;
