//! Following the chain's router list: a router the `SessionRouter` owner removed stops being
//! honoured here within one refresh (docs/protocol.md, Worker). Without an RPC URL the worker
//! honours the routers it was configured with, as configured.

use std::collections::HashSet;

use alloy::primitives::Address;
use morpheus_sdk::contracts::SessionRouterClient;
use tracing::{info, warn};

use super::AppState;

/// Checks each configured router with `SessionRouter.isRouter` every `router_refresh`, until
/// the task is dropped. A check that fails (the RPC is down) keeps the last answer: the worker
/// keeps serving on what it knew rather than stopping or trusting a removed router again.
pub(super) async fn watch(state: AppState, rpc_url: String) {
    let protocol = &state.0.protocol;
    let routers: Vec<Address> = protocol.routers.iter().copied().collect();
    let mut tick = tokio::time::interval(protocol.router_refresh);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut client = None;
    let mut last: Option<HashSet<Address>> = None;
    loop {
        tick.tick().await;
        if client.is_none() {
            match SessionRouterClient::connect(&rpc_url, protocol.chain_id, protocol.session_router)
                .await
            {
                Ok(c) => client = Some(c),
                Err(e) => {
                    warn!(target: "worker::routers", error = %e, "cannot reach the chain to check the routers");
                    continue;
                }
            }
        }
        let Some(chain) = &client else { continue };
        let mut removed = HashSet::new();
        let mut failed = false;
        for router in &routers {
            match chain.is_router(*router).await {
                Ok(true) => {}
                Ok(false) => {
                    removed.insert(*router);
                }
                Err(e) => {
                    warn!(target: "worker::routers", %router, error = %e, "checking a router failed");
                    failed = true;
                    break;
                }
            }
        }
        if failed {
            continue;
        }
        if last.as_ref() != Some(&removed) {
            for router in &removed {
                info!(target: "worker::routers", %router, "router removed on-chain: no longer honoured");
            }
            state.0.auth.set_removed(removed.clone());
            last = Some(removed);
        }
    }
}
