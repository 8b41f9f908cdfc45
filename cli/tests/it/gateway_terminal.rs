//! `morpheus chat`'s path: one question, the only model served, and the session reported by
//! the time it returns (a process that exits then loses nothing).

use morpheus_cli::gateway::chat_to_terminal;

use crate::common::{Net, PRICE, PROVIDER, USER};

#[tokio::test]
async fn a_one_shot_chat_is_reported_before_it_returns() {
    let mut net = Net::start(true).await;
    net.add_worker(PROVIDER, PRICE).await;
    let gw = net.gateway(USER, |_| {}).await;

    chat_to_terminal(&gw.gateway, None, Some("You are brief."), "Say hi", Some(8))
        .await
        .expect("the chat is answered");
    // No waiting here: the report is in when the call returns.
    let info = net.provider_info(net.address(PROVIDER)).await;
    assert_eq!(info.record.sessions, 1, "{info:?}");
    assert_eq!(info.reputation.completed, 1, "{info:?}");
    gw.assert_outbox_empty().await;
    gw.stop().await;
    net.stop().await;
}
