//! `/metrics`: the server's counters in Prometheus's text exposition format (version 0.0.4),
//! each with its `HELP` and `TYPE` lines, named `p2p_store_*`.

use std::fmt::Write as _;
use std::io::{self, Write};

use super::View;
use super::response::{self, OK};
use crate::CountersSnapshot;

const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

pub(crate) fn send(view: &View, out: &mut impl Write, head_only: bool) -> io::Result<()> {
    let text = render(&view.counters.snapshot());
    response::send(out, OK, CONTENT_TYPE, text.as_bytes(), head_only)
}

/// The exposition of `counters`.
fn render(counters: &CountersSnapshot) -> String {
    let metrics = [
        (
            "connections_open",
            "gauge",
            "Peer connections held now.",
            counters.connections_open,
        ),
        (
            "connections_total",
            "counter",
            "Peer connections accepted since the server started.",
            counters.connections_total,
        ),
        (
            "received_bytes_total",
            "counter",
            "Bytes read from peers.",
            counters.bytes_in,
        ),
        (
            "sent_bytes_total",
            "counter",
            "Bytes written to peers.",
            counters.bytes_out,
        ),
        (
            "parts_stored_total",
            "counter",
            "Parts (chunks included) pushed by peers and made durable.",
            counters.parts_stored,
        ),
        (
            "stored_bytes_total",
            "counter",
            "Bytes of the parts pushed by peers and made durable.",
            counters.bytes_stored,
        ),
        (
            "peer_memory_bytes",
            "gauge",
            "Bytes held now on peers' behalf, against the memory budget (--max-memory).",
            counters.peer_memory,
        ),
    ];
    let mut text = String::new();
    for (name, kind, help, value) in metrics {
        // Writing to a String cannot fail.
        let _ = write!(
            text,
            "# HELP p2p_store_{name} {help}\n# TYPE p2p_store_{name} {kind}\np2p_store_{name} {value}\n"
        );
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_metric_has_help_type_and_one_sample() {
        let counters = CountersSnapshot {
            bytes_in: 42,
            ..CountersSnapshot::default()
        };
        let text = render(&counters);
        assert!(text.contains("p2p_store_received_bytes_total 42\n"));
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 7 * 3);
        for metric in lines.chunks(3) {
            let name = metric[2].split(' ').next().unwrap();
            assert!(name.starts_with("p2p_store_"));
            assert!(metric[0].starts_with(&format!("# HELP {name} ")));
            assert!(metric[1].starts_with(&format!("# TYPE {name} ")));
        }
    }
}
