//! The Prometheus text exposition format (version 0.0.4) of a manager's
//! statistics: `# HELP` and `# TYPE` lines, counters named `_total`, gauges
//! without, per-type series labelled `type="..."` with label values escaped
//! (backslash, double quote, newline), every metric prefixed `gcs_`.

use std::fmt::Write;

use crate::stats::{Stats, TypeStats};

/// Counter (monotonic) or gauge.
#[derive(Clone, Copy)]
enum Kind {
    Counter,
    Gauge,
}

fn header(out: &mut String, name: &str, kind: Kind, help: &str) {
    let kind = match kind {
        Kind::Counter => "counter",
        Kind::Gauge => "gauge",
    };
    // HELP text escapes backslash and newline.
    let help = help.replace('\\', "\\\\").replace('\n', "\\n");
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// Escape a label value: backslash, double quote and line feed.
pub(crate) fn escape_label(value: &str) -> String {
    let mut escaped = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => escaped.push_str("\\\\"),
            '"' => escaped.push_str("\\\""),
            '\n' => escaped.push_str("\\n"),
            c => escaped.push(c),
        }
    }
    escaped
}

/// Render the statistics.
pub(crate) fn render(stats: &Stats, types: &[TypeStats]) -> String {
    use Kind::{Counter, Gauge};
    let mut out = String::new();
    let manager: [(&str, Kind, &str, u64); 15] = [
        (
            "gcs_registrations_total",
            Counter,
            "Registrations made.",
            stats.total_registered,
        ),
        (
            "gcs_active_handles",
            Gauge,
            "Registrations not yet released.",
            stats.active,
        ),
        (
            "gcs_peak_active_handles",
            Gauge,
            "Most registrations active at once.",
            stats.peak_active,
        ),
        (
            "gcs_releases_total",
            Counter,
            "Registrations released.",
            stats.released,
        ),
        (
            "gcs_invalidations_total",
            Counter,
            "Handles invalidated.",
            stats.invalidated,
        ),
        (
            "gcs_accesses_total",
            Counter,
            "Accesses that ran.",
            stats.access_ok,
        ),
        (
            "gcs_accesses_rejected_total",
            Counter,
            "Accesses refused (stale, invalidated, forged or closed).",
            stats.access_rejected,
        ),
        (
            "gcs_callback_failures_total",
            Counter,
            "Access callbacks that returned non-zero.",
            stats.callback_failures,
        ),
        (
            "gcs_panics_recovered_total",
            Counter,
            "Panics caught.",
            stats.panics_recovered,
        ),
        (
            "gcs_cleanups_total",
            Counter,
            "Cleanup callbacks run.",
            stats.cleanups_run,
        ),
        (
            "gcs_cleanup_failures_total",
            Counter,
            "Cleanup callbacks that returned non-zero.",
            stats.cleanup_failures,
        ),
        (
            "gcs_finalizers_total",
            Counter,
            "Finalizers run.",
            stats.finalizers_run,
        ),
        (
            "gcs_finalizer_failures_total",
            Counter,
            "Finalizers that failed every attempt.",
            stats.finalizer_failures,
        ),
        (
            "gcs_finalizer_timeouts_total",
            Counter,
            "Finalizers that overran their timeout.",
            stats.finalizer_timeouts,
        ),
        (
            "gcs_tracked_bytes",
            Gauge,
            "Bytes declared by registrations not yet released.",
            stats.tracked_bytes,
        ),
    ];
    for (name, kind, help, value) in manager {
        header(&mut out, name, kind, help);
        let _ = writeln!(out, "{name} {value}");
    }
    type PerType = (&'static str, Kind, &'static str, fn(&TypeStats) -> u64);
    let per_type: [PerType; 5] = [
        (
            "gcs_type_live_handles",
            Gauge,
            "Registrations not yet released, per type.",
            |t| t.live,
        ),
        (
            "gcs_type_registrations_total",
            Counter,
            "Registrations made, per type.",
            |t| t.registered,
        ),
        (
            "gcs_type_releases_total",
            Counter,
            "Registrations released, per type.",
            |t| t.released,
        ),
        (
            "gcs_type_accesses_total",
            Counter,
            "Accesses that ran, per type.",
            |t| t.accesses,
        ),
        (
            "gcs_type_tracked_bytes",
            Gauge,
            "Bytes declared by registrations not yet released, per type.",
            |t| t.tracked_bytes,
        ),
    ];
    for (name, kind, help, value) in per_type {
        header(&mut out, name, kind, help);
        for t in types {
            let _ = writeln!(
                out,
                "{name}{{type=\"{}\"}} {}",
                escape_label(&t.type_name),
                value(t)
            );
        }
    }
    out
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn labels_are_escaped_and_every_series_has_help_and_type() {
        let stats = Stats {
            total_registered: 3,
            active: 1,
            ..Stats::default()
        };
        let types = [TypeStats {
            type_name: "a\"b\\c\nd".into(),
            live: 1,
            ..TypeStats::default()
        }];
        let text = render(&stats, &types);
        assert!(text.contains("gcs_registrations_total 3\n"));
        assert!(text.contains("gcs_type_live_handles{type=\"a\\\"b\\\\c\\nd\"} 1\n"));
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let name = line.split(['{', ' ']).next().unwrap();
            assert!(
                text.contains(&format!("# TYPE {name} ")),
                "{name} has a TYPE line"
            );
            assert!(
                text.contains(&format!("# HELP {name} ")),
                "{name} has a HELP line"
            );
        }
    }
}
