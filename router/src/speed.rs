//! The speed rule (docs/protocol.md, Router, "speed rule"): a passed report earns nothing when its
//! ms per token is more than X % above the model's speed reference.
//!
//! Every number in a report is its user's claim, and any staked user can send as many reports as
//! it has sessions. So the reference is built to hold against a few users: only credited reports
//! are samples (a report judged slow or failed does not move the reference it was judged by);
//! each user counts once, by its newest sample, among the model's last Z reporting users; the
//! reference is their median, so users fewer than half of those in the window cannot move it
//! outside the others' speeds; a claim below the floor (`durationMs < floor × tokens`) is not
//! believed, and one sample counts at most the ceiling.

use alloy::primitives::Address;

/// The speed rule's parameters.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SpeedRule {
    /// X: percent above the reference beyond which a report is slow.
    pub(crate) slow_threshold_pct: u32,
    /// Z: how many of the model's most recent reporting users the reference is the median of.
    pub(crate) window: u32,
    /// The floor in ms per token: a report claiming less is judged at the floor and is not a
    /// sample.
    pub(crate) min_ms_per_token: f64,
    /// The ceiling in ms per token: the most one sample contributes to the reference.
    pub(crate) max_ms_per_token: f64,
}

/// A credited report's speed, as the reference reads it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct SpeedSample {
    /// The user who signed the report.
    pub(crate) user: Address,
    /// Its ms per token (at or above the floor: a report below it is not a sample).
    pub(crate) ms_per_token: f64,
}

/// A report's speed as the rule judges it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct ReportSpeed {
    /// `durationMs / tokens`, raised to the floor when the report claimed less.
    pub(crate) ms_per_token: f64,
    /// Whether the claim is at or above the floor, so that the report, if credited, is a sample.
    pub(crate) believed: bool,
}

/// The speed of a report of `tokens` served in `duration_ms`; `None` when it served no tokens
/// (there is no speed to judge).
pub(crate) fn report_speed(tokens: u64, duration_ms: u64, rule: &SpeedRule) -> Option<ReportSpeed> {
    if tokens == 0 {
        return None;
    }
    let (tokens, duration_ms) = (tokens as f64, duration_ms as f64);
    let believed = duration_ms >= rule.min_ms_per_token * tokens;
    Some(ReportSpeed {
        ms_per_token: if believed {
            duration_ms / tokens
        } else {
            rule.min_ms_per_token
        },
        believed,
    })
}

/// The model's speed reference in ms per token: the median of `samples` (the model's credited
/// samples, newest first) after keeping each user's newest one, then the first Z users, each
/// capped at the ceiling. Samples below the floor (and NaN) are not samples. `None` when no
/// sample is left: every report then passes the speed rule.
pub(crate) fn speed_reference(samples: &[SpeedSample], rule: &SpeedRule) -> Option<f64> {
    let mut users: Vec<Address> = Vec::new();
    let mut speeds: Vec<f64> = samples
        .iter()
        .filter(|s| s.ms_per_token >= rule.min_ms_per_token)
        .filter(|s| {
            let new = !users.contains(&s.user);
            if new {
                users.push(s.user);
            }
            new
        })
        .take(rule.window as usize)
        .map(|s| s.ms_per_token.min(rule.max_ms_per_token))
        .collect();
    median(&mut speeds)
}

/// The most ms per token a report passing the rule may take: the reference plus X %.
pub(crate) fn slow_limit(reference: f64, rule: &SpeedRule) -> f64 {
    reference * (1.0 + f64::from(rule.slow_threshold_pct) / 100.0)
}

/// Whether `ms_per_token` is slow against `reference`: above [`slow_limit`]. With no reference
/// nothing is slow.
pub(crate) fn is_slow(ms_per_token: f64, reference: Option<f64>, rule: &SpeedRule) -> bool {
    reference.is_some_and(|r| ms_per_token > slow_limit(r, rule))
}

/// The middle value; with an even count, the mean of the two middle ones.
fn median(values: &mut [f64]) -> Option<f64> {
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    match values.len() {
        0 => None,
        n if n % 2 == 1 => Some(values[mid]),
        _ => Some((values[mid - 1] + values[mid]) / 2.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The defaults: X = 50 %, Z = 20, floor 1 ms/token, ceiling 10 s/token.
    const RULE: SpeedRule = SpeedRule {
        slow_threshold_pct: 50,
        window: 20,
        min_ms_per_token: 1.0,
        max_ms_per_token: 10_000.0,
    };

    fn user(n: u8) -> Address {
        Address::repeat_byte(n)
    }

    fn sample(n: u8, ms_per_token: f64) -> SpeedSample {
        SpeedSample {
            user: user(n),
            ms_per_token,
        }
    }

    #[test]
    fn the_reference_is_the_median_not_the_mean() {
        // Three users at 10 ms/token and one at 9,000: the mean would be 2,257.5.
        let samples = [
            sample(1, 10.0),
            sample(2, 9_000.0),
            sample(3, 10.0),
            sample(4, 12.0),
        ];
        assert_eq!(speed_reference(&samples, &RULE), Some(11.0));
        let odd = [sample(1, 10.0), sample(2, 9_000.0), sample(3, 12.0)];
        assert_eq!(speed_reference(&odd, &RULE), Some(12.0));
        assert_eq!(speed_reference(&[], &RULE), None);
    }

    #[test]
    fn each_user_counts_once_by_its_newest_sample() {
        // User 1 sent 20 samples at the floor (newest first); users 2 and 3 one each at 10.
        let mut samples = vec![sample(1, 1.0); 20];
        samples.push(sample(1, 500.0));
        samples.extend([sample(2, 10.0), sample(3, 10.0)]);
        assert_eq!(speed_reference(&samples, &RULE), Some(10.0));
        // User 1's older sample at 500 is not counted either: only its newest.
        let samples = [sample(1, 10.0), sample(2, 20.0), sample(1, 500.0)];
        assert_eq!(speed_reference(&samples, &RULE), Some(15.0));
    }

    #[test]
    fn the_window_holds_the_last_z_users() {
        let rule = SpeedRule { window: 3, ..RULE };
        // Newest first: users 1-3 at 10, then users 4 and 5 at 1,000, out of the window.
        let samples = [
            sample(1, 10.0),
            sample(2, 10.0),
            sample(1, 10.0),
            sample(3, 10.0),
            sample(4, 1_000.0),
            sample(5, 1_000.0),
        ];
        assert_eq!(speed_reference(&samples, &rule), Some(10.0));
    }

    #[test]
    fn one_sample_contributes_at_most_the_ceiling() {
        // Two users: the median is the mean of both, and the huge one counts as the ceiling.
        let samples = [sample(1, 10.0), sample(2, 1e13)];
        assert_eq!(speed_reference(&samples, &RULE), Some(5_005.0));
    }

    #[test]
    fn samples_below_the_floor_are_not_samples() {
        let samples = [sample(1, 0.0), sample(2, f64::NAN), sample(3, 0.5)];
        assert_eq!(speed_reference(&samples, &RULE), None);
        let samples = [sample(1, 0.0), sample(2, 10.0)];
        assert_eq!(speed_reference(&samples, &RULE), Some(10.0));
    }

    #[test]
    fn a_report_below_the_floor_is_judged_at_the_floor_and_not_believed() {
        let at_floor = |ms| ReportSpeed {
            ms_per_token: ms,
            believed: false,
        };
        assert_eq!(report_speed(100, 0, &RULE), Some(at_floor(1.0)));
        assert_eq!(report_speed(100, 99, &RULE), Some(at_floor(1.0)));
        assert_eq!(
            report_speed(100, 100, &RULE),
            Some(ReportSpeed {
                ms_per_token: 1.0,
                believed: true
            })
        );
        assert_eq!(
            report_speed(100, 1_000, &RULE),
            Some(ReportSpeed {
                ms_per_token: 10.0,
                believed: true
            })
        );
        assert_eq!(report_speed(0, 1_000, &RULE), None, "no tokens, no speed");
        // The largest claims neither overflow nor divide to NaN.
        let huge = report_speed(1, u64::MAX, &RULE).expect("a speed");
        assert!(huge.believed && huge.ms_per_token > 1e18);
    }

    #[test]
    fn slow_is_more_than_x_percent_above_the_reference() {
        assert!(!is_slow(15.0, Some(10.0), &RULE), "at the limit");
        assert!(is_slow(15.01, Some(10.0), &RULE));
        assert!(!is_slow(1e12, None, &RULE), "no reference, nothing is slow");
        assert_eq!(
            slow_limit(
                10.0,
                &SpeedRule {
                    slow_threshold_pct: 0,
                    ..RULE
                }
            ),
            10.0
        );
    }
}
