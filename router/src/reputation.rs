//! The reputation score (`reputation_score`): how the router ranks providers by their past
//! sessions on a model after price, or first when a request asks for `order: reputation`.

/// `(completed + 1) / (completed + failed + 2)`: the share of a provider's reported sessions
/// on a model that passed, smoothed so that a provider without history scores 0.5 and a few
/// sessions move it less than many (Laplace's rule of succession).
///
/// *Decision:* cancelled sessions (assigned, never used) do not count: the user chose not to
/// use them, which says nothing of the provider.
pub(crate) fn reputation_score(completed: u64, failed: u64) -> f64 {
    (completed as f64 + 1.0) / (completed as f64 + failed as f64 + 2.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_history_scores_one_half() {
        assert_eq!(reputation_score(0, 0), 0.5);
    }

    #[test]
    fn more_passed_sessions_score_higher_and_history_outweighs_a_few() {
        assert!(reputation_score(1, 0) > reputation_score(0, 0));
        assert!(reputation_score(0, 1) < reputation_score(0, 0));
        // 99 of 100 passed beats 1 of 1.
        assert!(reputation_score(99, 1) > reputation_score(1, 0));
        assert_eq!(reputation_score(8, 0), 0.9);
        assert!(reputation_score(u64::MAX, 0) <= 1.0);
        assert!(reputation_score(0, u64::MAX) >= 0.0);
    }
}
