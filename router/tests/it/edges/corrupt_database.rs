//! A damaged database is a clear error, never a silent default: a file that is not SQLite stops
//! the router at start naming the file, and a row with a bad address fails the report instead of
//! crediting the zero address.

use alloy::primitives::Address;
use morpheus_router::{AppState, Error, RouterConfig};
use tempfile::TempDir;

use crate::common::{Net, PROVIDER, assert_refused};

#[tokio::test]
async fn a_file_that_is_not_a_database_is_refused_at_start_naming_it() {
    let net = Net::start().await;
    let dir = TempDir::new().expect("tempdir");
    let path = dir.path().join("router.db");
    // 4 KiB of noise: no SQLite header.
    let noise: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(&path, noise).expect("write the corrupt file");

    let config = RouterConfig::new(
        net.devnet.rpc_url(),
        net.devnet.deployment(),
        net.devnet.router_signer(),
        &path,
    );
    match AppState::connect(config).await {
        Err(e @ Error::OpenDatabase { .. }) => {
            let message = e.to_string();
            assert!(
                message.contains(&path.display().to_string()),
                "{message:?} names the file"
            );
            assert!(
                message.contains("not a database"),
                "{message:?} says what is wrong with it"
            );
        }
        other => panic!("expected Error::OpenDatabase naming {path:?}, got {other:?}"),
    }
    net.stop().await;
}

#[tokio::test]
async fn a_tampered_provider_address_fails_the_report_and_credits_no_one() {
    let net = Net::start().await;
    let provider = net.devnet.signer(PROVIDER).address();
    let assignment = net.assignment().await;
    let session = assignment.message.sessionId;

    // Someone with the database writes a provider that is not an address into the session's row.
    let row = format!("session_id = '{}'", session.to_string().to_lowercase());
    net.db_execute(&format!(
        "UPDATE sessions SET provider = 'not-an-address' WHERE {row}"
    ));
    assert_eq!(
        net.db_count(&format!(
            "SELECT COUNT(*) FROM sessions WHERE provider = 'not-an-address' AND {row}"
        )),
        1,
        "the session's row was changed"
    );

    assert_refused(
        net.router
            .report_usage(&net.report_as(&net.user(), session, 100, 100, true))
            .await,
        500,
        "database is corrupt",
    );

    // Nothing was credited, to the zero address or anyone, and the report did not count.
    let credits = net.db_count("SELECT COUNT(*) FROM credits");
    assert_eq!(credits, 0, "no provider's counters were written");
    let reported = net.db_count(&format!("SELECT reported FROM sessions WHERE {row}"));
    assert_eq!(reported, 0, "the report's transaction was rolled back");
    for who in [Address::ZERO, provider] {
        assert!(
            net.router.voucher(who).await.expect("voucher").is_none(),
            "{who} has no voucher"
        );
    }
    net.stop().await;
}
