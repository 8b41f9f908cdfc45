//! `GET /metrics`: the router's figures in the Prometheus text format.

use std::fmt::Write;

use crate::queue::QueueFigures;

/// Renders the queue's figures: the depth per model (and in all), and what became of the
/// requests that waited.
pub(crate) fn render(queue: &QueueFigures) -> String {
    let mut out = String::new();
    let total: usize = queue.depth.iter().map(|(_, n)| n).sum();
    // Writing to a String cannot fail.
    let _ = writeln!(
        out,
        "# HELP morpheus_router_queue_depth Requests waiting for a provider's place, by model.\n\
         # TYPE morpheus_router_queue_depth gauge"
    );
    for (model, n) in &queue.depth {
        let _ = writeln!(out, "morpheus_router_queue_depth{{model=\"{model}\"}} {n}");
    }
    let _ = writeln!(
        out,
        "# HELP morpheus_router_queue_depth_total Requests waiting for a provider's place.\n\
         # TYPE morpheus_router_queue_depth_total gauge\n\
         morpheus_router_queue_depth_total {total}"
    );
    for (name, help, value) in [
        (
            "morpheus_router_queue_served_total",
            "Requests assigned after waiting in the queue.",
            queue.served_after_wait,
        ),
        (
            "morpheus_router_queue_timeouts_total",
            "Requests refused after waiting the whole queue time.",
            queue.timed_out,
        ),
        (
            "morpheus_router_queue_refused_full_total",
            "Requests refused at once because the queue was full.",
            queue.refused_full,
        ),
    ] {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}"
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use alloy::primitives::B256;

    use super::*;

    #[test]
    fn depth_is_per_model_and_in_all() {
        let model = B256::repeat_byte(0xab);
        let text = render(&QueueFigures {
            depth: vec![(model, 2)],
            served_after_wait: 3,
            timed_out: 1,
            refused_full: 0,
        });
        assert!(text.contains(&format!(
            "morpheus_router_queue_depth{{model=\"{model}\"}} 2\n"
        )));
        assert!(text.contains("morpheus_router_queue_depth_total 2\n"));
        assert!(text.contains("morpheus_router_queue_served_total 3\n"));
        assert!(text.contains("morpheus_router_queue_timeouts_total 1\n"));
        assert!(text.contains("# TYPE morpheus_router_queue_refused_full_total counter\n"));
    }
}
