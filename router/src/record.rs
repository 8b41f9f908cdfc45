//! The bad record (docs/protocol.md, Router, "bad record"): a provider with one is tried after
//! every provider without one.
//!
//! A report that earned nothing (the user said it failed, or it was slow) is its user's claim,
//! and one user can report every session it gets failed. So a record is bad only when failures
//! from at least K distinct users are more than half of the provider's last Z reports; it is
//! read over that window only, so later good reports restore it.

use alloy::primitives::Address;

/// The bad record's parameters.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RecordRule {
    /// Z: how many of the provider's most recent reports the record looks at.
    pub(crate) window: u32,
    /// K: how many distinct users' failures a bad record needs.
    pub(crate) min_users: u32,
}

/// One report on the provider, as its record reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RecordEntry {
    /// The user who signed it.
    pub(crate) user: Address,
    /// Whether it was credited (neither failed nor slow).
    pub(crate) earned: bool,
}

/// Whether the provider's record is bad: among its last Z `reports` (newest first), more than
/// half earned nothing and those come from at least K distinct users.
pub(crate) fn bad_record(reports: &[RecordEntry], rule: &RecordRule) -> bool {
    let window = &reports[..reports.len().min(rule.window as usize)];
    let mut failed = 0usize;
    let mut users: Vec<Address> = Vec::new();
    for r in window.iter().filter(|r| !r.earned) {
        failed += 1;
        if !users.contains(&r.user) {
            users.push(r.user);
        }
    }
    users.len() >= rule.min_users as usize && failed * 2 > window.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The defaults: Z = 20, K = 3.
    const RULE: RecordRule = RecordRule {
        window: 20,
        min_users: 3,
    };

    fn failed(n: u8) -> RecordEntry {
        RecordEntry {
            user: Address::repeat_byte(n),
            earned: false,
        }
    }

    fn earned(n: u8) -> RecordEntry {
        RecordEntry {
            user: Address::repeat_byte(n),
            earned: true,
        }
    }

    #[test]
    fn one_user_failing_a_whole_window_is_not_a_bad_record() {
        assert!(!bad_record(&[failed(1); 20], &RULE));
        // Two users are not enough either, with K = 3.
        let two: Vec<_> = (0..20).map(|i| failed(1 + i % 2)).collect();
        assert!(!bad_record(&two, &RULE));
    }

    #[test]
    fn failures_from_k_users_making_most_of_the_window_are_a_bad_record() {
        assert!(bad_record(&[failed(1), failed(2), failed(3)], &RULE));
        let mostly = [failed(1), earned(4), failed(2), earned(4), failed(3)];
        assert!(bad_record(&mostly, &RULE));
        // Half is not more than half.
        let half = [
            failed(1),
            failed(2),
            failed(3),
            earned(4),
            earned(4),
            earned(4),
        ];
        assert!(!bad_record(&half, &RULE));
        assert!(!bad_record(&[], &RULE));
        // K = 1 is the plain majority rule.
        assert!(bad_record(
            &[failed(1)],
            &RecordRule {
                min_users: 1,
                ..RULE
            }
        ));
    }

    #[test]
    fn later_good_reports_restore_a_bad_record() {
        // Newest first: three users' failures, then good reports arriving after them.
        let mut reports = vec![failed(1), failed(2), failed(3)];
        assert!(bad_record(&reports, &RULE));
        for _ in 0..2 {
            reports.insert(0, earned(4));
        }
        assert!(bad_record(&reports, &RULE), "3 of 5 failed");
        reports.insert(0, earned(4));
        assert!(!bad_record(&reports, &RULE), "3 of 6 failed");
    }

    #[test]
    fn failures_older_than_the_window_do_not_count() {
        let rule = RecordRule { window: 4, ..RULE };
        // Newest first: user 1 and 2 failed within the window, user 3 just outside it.
        let reports = [failed(1), failed(2), failed(1), earned(4), failed(3)];
        assert!(!bad_record(&reports, &rule));
        assert!(bad_record(&reports, &RecordRule { window: 5, ..rule }));
    }
}
