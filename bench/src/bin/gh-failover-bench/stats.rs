//! Percentiles and the client-side figures of a phase (from the fleet report and drill starts).

use crate::drill::Drill;
use serde_json::Value;

/// Nearest-rank percentile of sorted values.
pub(crate) fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = (p * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

pub(crate) fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    pct(&s, 0.5)
}

pub(crate) fn max(v: &[f64]) -> f64 {
    v.iter().copied().fold(f64::NAN, f64::max)
}

/// Client-side figures of one phase, from the fleet report and the drills' start times.
#[derive(Debug, Default)]
pub(crate) struct ClientSide {
    /// Drill start → reattached, ms, every session of every drill.
    pub(crate) blackout: Vec<f64>,
    /// Drop seen → reattached, ms.
    pub(crate) gaps: Vec<f64>,
    /// Drill start → drop seen, ms.
    pub(crate) detect: Vec<f64>,
    /// Per drill: drill start → last reattach, ms; drops.
    pub(crate) per_drill: Vec<(f64, usize, Vec<f64>)>,
    pub(crate) drops: usize,
    pub(crate) lost: usize,
    pub(crate) pending: usize,
    pub(crate) logged_in: usize,
}

pub(crate) fn client_side(fleet: &Value, drills: &[Drill]) -> ClientSide {
    let mut c = ClientSide {
        drops: fleet["drops"].as_u64().unwrap_or(0) as usize,
        lost: fleet["lost"].as_u64().unwrap_or(0) as usize,
        pending: fleet["pending"].as_u64().unwrap_or(0) as usize,
        logged_in: fleet["logged_in"].as_u64().unwrap_or(0) as usize,
        ..ClientSide::default()
    };
    c.per_drill = drills.iter().map(|_| (0.0, 0, Vec::new())).collect();
    let events: Vec<(f64, f64)> = fleet["events"]
        .as_array()
        .map(|a| {
            a.iter().filter_map(|e| Some((e[0].as_f64()?, e[1].as_f64()?))).collect::<Vec<_>>()
        })
        .unwrap_or_default();
    for (drop, back) in events {
        c.gaps.push((back - drop) * 1000.0);
        // The drill whose window the drop falls into.
        let Some(d) = drills.iter().rposition(|d| d.start <= drop) else { continue };
        let b = (back - drills[d].start) * 1000.0;
        c.blackout.push(b);
        c.detect.push((drop - drills[d].start) * 1000.0);
        let pd = &mut c.per_drill[d];
        pd.0 = pd.0.max(b);
        pd.1 += 1;
        pd.2.push(b);
    }
    for v in [&mut c.blackout, &mut c.gaps, &mut c.detect] {
        v.sort_by(f64::total_cmp);
    }
    c
}
