//! Retrying what failed for a reason that passes: the node unreachable, a timeout, a 429. A
//! revert or a wrong setting is not retried: it fails the same way every time.

use std::{future::Future, time::Duration};

use tracing::warn;

use crate::{Error, Result};

/// The first wait between tries; it doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
/// The longest wait between tries.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Whether `e` may pass by trying again: the chain or a router could not be reached or asked
/// (connection refused, timeout, HTTP 429 or 5xx).
pub fn is_transient(e: &Error) -> bool {
    match e {
        Error::Protocol(morpheus_sdk::Error::Rpc(_)) => true,
        Error::Protocol(morpheus_sdk::Error::Http { status, .. }) => {
            *status == 429 || *status >= 500
        }
        _ => false,
    }
}

/// The wait before try `attempt` (1-based after the first).
pub fn backoff(attempt: u32) -> Duration {
    FIRST_BACKOFF
        .saturating_mul(2u32.saturating_pow(attempt.saturating_sub(1)))
        .min(MAX_BACKOFF)
}

/// Runs `f` until it succeeds, fails for good, or `for_at_most` has passed since the first try;
/// `what` names it in the log and in the last error.
pub async fn retry<T, F, Fut>(what: &str, for_at_most: Duration, mut f: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T>>,
{
    let deadline = tokio::time::Instant::now() + for_at_most;
    let mut attempt = 0;
    loop {
        match f().await {
            Ok(v) => return Ok(v),
            Err(e) if is_transient(&e) && tokio::time::Instant::now() < deadline => {
                attempt += 1;
                let wait = backoff(attempt);
                warn!(target: "worker::node", %what, error = %e, attempt, ?wait, "failed; retrying");
                tokio::time::sleep(wait).await;
            }
            Err(e) if is_transient(&e) => {
                return Err(Error::Config(format!(
                    "{what}: still failing after {for_at_most:?} of retries: {e}"
                )));
            }
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    fn rpc() -> Error {
        Error::Protocol(morpheus_sdk::Error::Rpc("connection refused".into()))
    }

    #[test]
    fn the_backoff_doubles_up_to_its_cap() {
        assert_eq!(backoff(1), Duration::from_millis(500));
        assert_eq!(backoff(2), Duration::from_secs(1));
        assert_eq!(backoff(4), Duration::from_secs(4));
        assert_eq!(backoff(40), MAX_BACKOFF);
    }

    #[tokio::test]
    async fn a_transient_failure_is_retried_and_a_lasting_one_named() {
        let tries = AtomicU32::new(0);
        let v = retry("reading", Duration::from_secs(10), || async {
            if tries.fetch_add(1, Ordering::SeqCst) < 2 {
                Err(rpc())
            } else {
                Ok(7)
            }
        })
        .await
        .expect("third try");
        assert_eq!((v, tries.load(Ordering::SeqCst)), (7, 3));

        let err = retry("the chain", Duration::from_secs(1), || async {
            Err::<(), _>(rpc())
        })
        .await
        .expect_err("never answers");
        assert!(
            err.to_string().contains("the chain: still failing"),
            "{err}"
        );

        let tries = AtomicU32::new(0);
        let err = retry("a bad setting", Duration::from_secs(60), || async {
            tries.fetch_add(1, Ordering::SeqCst);
            Err::<(), _>(Error::Config("model.capacity".into()))
        })
        .await
        .expect_err("not transient");
        assert_eq!(tries.load(Ordering::SeqCst), 1, "{err}");
    }
}
