//! Report rows, number formatting, and the markdown results table and summary lines.

use crate::run::Run;
use crate::{GOAL_P99_MS, GOAL_WRITES_PER_S};
use std::fmt::Write as _;

pub(crate) struct Row {
    pub(crate) figure: String,
    pub(crate) via: String,
    pub(crate) c: usize,
    pub(crate) sessions_before: usize,
    pub(crate) run: Run,
    pub(crate) goal: String,
    pub(crate) note: String,
}

pub(crate) fn fmt_ms(x: f64) -> String {
    if x.is_nan() {
        "-".into()
    } else if x < 10.0 {
        format!("{x:.2}")
    } else {
        format!("{x:.1}")
    }
}

pub(crate) fn fmt_rate(x: f64) -> String {
    let digits = (x.round() as u64).to_string();
    let groups: Vec<&str> =
        digits.as_bytes().rchunks(3).rev().map(|g| std::str::from_utf8(g).unwrap_or("?")).collect();
    groups.join(",")
}

/// The results table, one line per row.
pub(crate) fn write_table(out: &mut String, rows: &[Row]) {
    let _ = writeln!(
        out,
        "| figure | proposed on | C | n | sessions in db before | writes/s | p50 ms | p99 ms | \
         max ms | goal | met | notes |"
    );
    let _ = writeln!(out, "|---|---|---:|---:|---:|---:|---:|---:|---:|---|---|---|");
    for r in rows {
        let met = if r.goal.starts_with("p99") {
            if r.run.pct_ms(0.99) < GOAL_P99_MS {
                "yes"
            } else {
                "**no**"
            }
        } else if r.goal.starts_with('≥') {
            if r.run.rate() >= GOAL_WRITES_PER_S {
                "yes"
            } else {
                "**no**"
            }
        } else {
            ""
        };
        let mut notes = r.run.problems();
        if !r.note.is_empty() {
            if !notes.is_empty() {
                notes.push_str("; ");
            }
            notes.push_str(&r.note);
        }
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            r.figure,
            r.via,
            r.c,
            fmt_rate(r.run.done() as f64),
            fmt_rate(r.sessions_before as f64),
            fmt_rate(r.run.rate()),
            fmt_ms(r.run.pct_ms(0.50)),
            fmt_ms(r.run.pct_ms(0.99)),
            fmt_ms(r.run.max_ms()),
            r.goal,
            met,
            notes
        );
    }
}

/// One summary line per row.
pub(crate) fn write_summary(out: &mut String, rows: &[Row]) {
    for r in rows {
        let line = if r.figure.starts_with("commit latency") {
            format!(
                "commit latency via {}: p50 {} ms, p99 {} ms, max {} ms, mean {} ms over {} \
                 sequential creates (goal p99 < {GOAL_P99_MS} ms: {})",
                r.via,
                fmt_ms(r.run.pct_ms(0.50)),
                fmt_ms(r.run.pct_ms(0.99)),
                fmt_ms(r.run.max_ms()),
                fmt_ms(r.run.mean_ms()),
                r.run.done(),
                if r.run.pct_ms(0.99) < GOAL_P99_MS { "met" } else { "NOT met" }
            )
        } else if r.figure.starts_with("session creates") {
            format!(
                "session creates via {}, C={}: {} writes/s ({} in {:.1} s; p99 {} ms) (goal ≥ \
                 {}/s: {})",
                r.via,
                r.c,
                fmt_rate(r.run.rate()),
                fmt_rate(r.run.done() as f64),
                r.run.elapsed.as_secs_f64(),
                fmt_ms(r.run.pct_ms(0.99)),
                fmt_rate(GOAL_WRITES_PER_S),
                if r.run.rate() >= GOAL_WRITES_PER_S { "met" } else { "NOT met" }
            )
        } else {
            format!(
                "resumes via {}, C={}: {} attaches/s, p50 {} ms, p99 {} ms ({} attaches in {:.1} s)",
                r.via,
                r.c,
                fmt_rate(r.run.rate()),
                fmt_ms(r.run.pct_ms(0.50)),
                fmt_ms(r.run.pct_ms(0.99)),
                fmt_rate(r.run.done() as f64),
                r.run.elapsed.as_secs_f64()
            )
        };
        let _ = writeln!(out, "- {line}");
    }
}
