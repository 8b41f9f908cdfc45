//! Tokens counted: how much of a user's daily allowance a session takes, and how many of its
//! credited tokens bound it (docs/protocol.md, Router, "tokens counted").
//!
//! A user's own report cannot give its reservation back: a user that asked for `tokenMax`,
//! was served, and reported 0 tokens would otherwise be served without limit while the
//! provider earned nothing. Only the provider's signed count (its `ServiceReceipt`, after which
//! it serves the session no more) says a session took less than `tokenMax`. A provider that
//! never answers for a session it was assigned (it failed before answering, or went away)
//! cannot hold the user's allowance hostage either: once the session has expired and the
//! router has asked for the receipt `receipt_attempts` times, the user's report decides.
//!
//! Credit still follows the user's report (the user judges the answer), and whatever is
//! credited is always counted: the counted tokens are never below the credited ones, so a user
//! and a provider acting together cannot earn credit beyond the user's allowance by reporting
//! many tokens and signing a receipt of few (invariant 7).

/// What the provider said about a session's tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Served {
    /// Not asked yet, or not answered yet while more attempts remain.
    Unknown,
    /// The provider's signed count.
    Receipt(u64),
    /// The session expired and the provider did not answer for it after every attempt.
    Unanswered,
}

/// The tokens a session takes from its user's allowance for its day.
///
/// - `Unknown`: the whole `tokenMax`, reported or not (the reservation holds).
/// - `Receipt(r)`: the provider's count (at most `tokenMax`), and never less than `credited`.
/// - `Unanswered`: the user's reported count, never less than `credited`; the whole `tokenMax`
///   when the user did not report either.
pub(crate) fn counted_tokens(
    token_max: u64,
    reported: Option<u64>,
    credited: u64,
    served: Served,
) -> u64 {
    let counted = match served {
        Served::Unknown => token_max,
        Served::Receipt(r) => r.max(credited),
        Served::Unanswered => reported.map_or(token_max, |r| r.max(credited)),
    };
    counted.min(token_max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_alone_gives_nothing_back() {
        // The attack: ask for the whole allowance, be served, report 0.
        assert_eq!(counted_tokens(1000, Some(0), 0, Served::Unknown), 1000);
        assert_eq!(counted_tokens(1000, None, 0, Served::Unknown), 1000);
    }

    #[test]
    fn the_providers_receipt_gives_back_the_rest() {
        assert_eq!(counted_tokens(1000, Some(0), 0, Served::Receipt(240)), 240);
        assert_eq!(
            counted_tokens(1000, Some(240), 240, Served::Receipt(240)),
            240
        );
        // A provider that failed before answering signs 0: all of it comes back.
        assert_eq!(counted_tokens(1000, Some(0), 0, Served::Receipt(0)), 0);
    }

    #[test]
    fn a_receipt_never_counts_more_than_token_max() {
        assert_eq!(
            counted_tokens(1000, Some(5), 5, Served::Receipt(u64::MAX)),
            1000
        );
    }

    #[test]
    fn what_is_credited_is_always_counted() {
        // A receipt below the credited count (user and provider acting together).
        assert_eq!(
            counted_tokens(1000, Some(900), 900, Served::Receipt(1)),
            900
        );
        assert_eq!(
            counted_tokens(1000, Some(900), 900, Served::Unanswered),
            900
        );
    }

    #[test]
    fn an_unanswered_session_counts_the_users_report() {
        assert_eq!(counted_tokens(1000, Some(0), 0, Served::Unanswered), 0);
        assert_eq!(counted_tokens(1000, Some(70), 0, Served::Unanswered), 70);
        // No report either: the reservation holds (the user may still report).
        assert_eq!(counted_tokens(1000, None, 0, Served::Unanswered), 1000);
    }
}
