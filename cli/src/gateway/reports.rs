//! Sending usage reports: each is kept in the [`Outbox`] first, then sent; it leaves the
//! outbox once the router has it (or refuses it for good), and is sent again later otherwise.

use morpheus_sdk::{
    messages::{Signed, UsageReport},
    router::{RouterClient, UsageReceipt},
};
use tracing::{debug, info, warn};

use super::outbox::Outbox;

/// What one attempt to send a report came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    /// The router took it.
    Sent(Box<UsageReceipt>),
    /// The router already had it (`409 already_reported`): an earlier attempt got through.
    AlreadyThere,
    /// The router refuses it and always will (an unknown session, another user's): kept no
    /// longer.
    Refused(String),
    /// The router could not take it now (unreachable, timed out, failing): kept, sent again.
    Retry(String),
}

impl Delivery {
    /// Whether the report may leave the outbox.
    pub fn settled(&self) -> bool {
        !matches!(self, Self::Retry(_))
    }
}

/// What the router's answer to a report means for the outbox: 409 is the router already
/// holding it; other 4xx are refusals no resend changes, except 408 and 429 (try later); 5xx
/// and transport failures are worth another try.
pub fn classify(result: morpheus_sdk::Result<UsageReceipt>) -> Delivery {
    match result {
        Ok(receipt) => Delivery::Sent(Box::new(receipt)),
        Err(morpheus_sdk::Error::Http { status: 409, .. }) => Delivery::AlreadyThere,
        Err(morpheus_sdk::Error::Http {
            status, message, ..
        }) if (400..500).contains(&status) && status != 408 && status != 429 => {
            Delivery::Refused(format!("{status}: {message}"))
        }
        Err(e) => Delivery::Retry(e.to_string()),
    }
}

/// Keeps `report` in the outbox, sends it, and forgets it once settled. Never fails: a report
/// that cannot even be kept is still sent (and the failure logged).
pub async fn deliver(
    router: &RouterClient,
    outbox: &Outbox,
    report: &Signed<UsageReport>,
) -> Delivery {
    let session = report.message.sessionId;
    if let Err(e) = outbox.keep(report).await {
        warn!(target: "gateway::reports", %session, error = %e, "the report could not be kept in the outbox");
    }
    send(router, outbox, report).await
}

/// Sends every report waiting in the outbox; returns how many settled.
pub async fn resend_pending(router: &RouterClient, outbox: &Outbox) -> crate::Result<usize> {
    let mut settled = 0;
    for pending in outbox.pending().await? {
        if send(router, outbox, &pending.report).await.settled() {
            settled += 1;
        }
    }
    Ok(settled)
}

async fn send(router: &RouterClient, outbox: &Outbox, report: &Signed<UsageReport>) -> Delivery {
    let session = report.message.sessionId;
    let delivery = classify(router.report_usage(report).await);
    match &delivery {
        Delivery::Sent(receipt) => {
            info!(target: "gateway::reports", %session, outcome = ?receipt.outcome, tokens = %receipt.tokens, amount = %receipt.amount, "report sent")
        }
        Delivery::AlreadyThere => {
            debug!(target: "gateway::reports", %session, "the router already had the report")
        }
        Delivery::Refused(reason) => {
            warn!(target: "gateway::reports", %session, %reason, "the router refuses the report; dropped")
        }
        Delivery::Retry(reason) => {
            warn!(target: "gateway::reports", %session, %reason, "the report could not be sent; kept in the outbox")
        }
    }
    let kept = if delivery.settled() {
        outbox.remove(session).await
    } else if let Delivery::Retry(reason) = &delivery {
        outbox.failed(session, reason.clone()).await
    } else {
        Ok(())
    };
    if let Err(e) = kept {
        warn!(target: "gateway::reports", %session, error = %e, "the outbox could not be updated");
    }
    delivery
}

#[cfg(test)]
mod tests {
    use morpheus_sdk::{Error, TransportKind};

    use super::*;

    fn http(status: u16) -> morpheus_sdk::Result<UsageReceipt> {
        Err(Error::Http {
            peer: "router",
            status,
            message: "why".into(),
            retry_after: None,
        })
    }

    #[test]
    fn a_duplicate_is_settled_and_a_failure_to_reach_the_router_is_kept() {
        assert_eq!(classify(http(409)), Delivery::AlreadyThere);
        assert!(classify(http(409)).settled());
        for status in [404, 403, 401, 400] {
            assert!(
                matches!(classify(http(status)), Delivery::Refused(_)),
                "{status}"
            );
        }
        for status in [408, 429, 500, 502, 503] {
            assert!(!classify(http(status)).settled(), "{status}");
        }
        let unreachable = Err(Error::Transport {
            peer: "router",
            kind: TransportKind::Connect,
            message: "connection refused".into(),
        });
        assert!(matches!(classify(unreachable), Delivery::Retry(m) if m.contains("refused")));
    }
}
