//! Integration tests of `morpheus`: the binary's commands, the gateway and the devnet, on real
//! chains, routers and workers.

mod commands;
mod common;
mod devnet;
mod gateway_allowance;
mod gateway_disconnect;
mod gateway_failover;
mod gateway_fakes;
mod gateway_input;
mod gateway_openai;
mod gateway_outbox;
mod gateway_pay;
mod gateway_terminal;
mod gateway_users;
