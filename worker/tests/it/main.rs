//! Integration tests of the worker: a real server on 127.0.0.1:0 with the tiny fixed-seed model
//! (prepared on first use by the Python converter), and SmolLM2 for the end-to-end answer.

mod batching;
mod chat;
mod common;
mod liveness;
mod openai_client;
mod refusals;
mod smollm2;
mod verify;
