//! Which provider failures the gateway fails over from: those before the first token that say
//! nothing about the request itself.

use morpheus_sdk::Error;

/// Whether a provider that failed with `error` before its first token is left for another:
/// it could not be reached, timed out, answered 5xx or something that is not the protocol's
/// stream. A 4xx is the provider's judgement of the request (too long, a bad field) and goes
/// back to the client as it is: another provider would refuse it too.
pub fn fails_over(error: &Error) -> bool {
    match error {
        Error::Http { status, .. } => !(400..500).contains(status),
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use morpheus_sdk::TransportKind;

    use super::*;

    fn http(status: u16) -> Error {
        Error::Http {
            peer: "provider",
            status,
            message: "why".into(),
            retry_after: None,
        }
    }

    #[test]
    fn unreachable_failing_and_garbled_providers_are_failed_over_and_4xx_passed_on() {
        for kind in [
            TransportKind::Connect,
            TransportKind::Timeout,
            TransportKind::BadAnswer,
            TransportKind::Other,
        ] {
            let e = Error::Transport {
                peer: "provider",
                kind,
                message: "x".into(),
            };
            assert!(fails_over(&e), "{kind:?}");
        }
        for status in [500, 502, 503, 504] {
            assert!(fails_over(&http(status)), "{status}");
        }
        for status in [400, 401, 403, 404, 413, 422, 429] {
            assert!(!fails_over(&http(status)), "{status}");
        }
    }
}
