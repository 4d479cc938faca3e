//! Director placement (DESIGN.md §6): a pure function of the slot table.

use std::net::IpAddr;

/// What the director knows of one slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotLoad {
    /// Slot id.
    pub id: u32,
    /// Sessions hosted.
    pub sessions: u32,
    /// Sessions it is sized for.
    pub capacity: u32,
    /// False while the slot has no live owner (failover pending) or its owner is draining.
    pub available: bool,
    /// The owner's renewals are late: it may be dying, and the slot about to move. Such a
    /// slot gets a client only when no other one can (a Raft election delays every renewal).
    pub late: bool,
}

/// FNV-1a, 64 bit: a fixed, portable hash, so every director replica ranks alike.
fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// Choose a slot for a new client: the least loaded by sessions ÷ capacity (ties: fewer
/// sessions, then lowest id), skipping unavailable slots, and late ones while any other is
/// left. With `affinity`, the client's address picks by rendezvous hashing among those
/// instead, so the same client lands on the same slot while it is up.
pub fn place(slots: &[SlotLoad], client: Option<IpAddr>, affinity: bool) -> Option<u32> {
    let usable = |s: &&SlotLoad| s.available && s.capacity > 0;
    let on_time = slots.iter().filter(usable).any(|s| !s.late);
    let avail = slots.iter().filter(usable).filter(move |s| !(on_time && s.late));
    if affinity {
        if let Some(ip) = client {
            let key = ip.to_string();
            return avail
                .max_by_key(|s| {
                    let mut b = key.as_bytes().to_vec();
                    b.extend_from_slice(&s.id.to_be_bytes());
                    (fnv1a(&b), std::cmp::Reverse(s.id))
                })
                .map(|s| s.id);
        }
    }
    avail
        .min_by(|a, b| {
            // Compare a.sessions/a.capacity with b.sessions/b.capacity without floats.
            let l = u64::from(a.sessions) * u64::from(b.capacity);
            let r = u64::from(b.sessions) * u64::from(a.capacity);
            l.cmp(&r).then(a.sessions.cmp(&b.sessions)).then(a.id.cmp(&b.id))
        })
        .map(|s| s.id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(id: u32, sessions: u32, capacity: u32, available: bool) -> SlotLoad {
        SlotLoad { id, sessions, capacity, available, late: false }
    }

    #[test]
    fn a_late_slot_gets_clients_only_when_no_other_can() {
        let mut late = s(1, 0, 100, true);
        late.late = true;
        assert_eq!(place(&[late.clone(), s(2, 90, 100, true)], None, false), Some(2));
        assert_eq!(place(&[late.clone(), s(2, 9, 100, false)], None, false), Some(1));
        let ip = Some(IpAddr::from([10, 1, 2, 3]));
        for id in 2..40 {
            let other = s(id, 0, 100, true);
            assert_eq!(place(&[late.clone(), other], ip, true), Some(id), "affinity too");
        }
    }

    #[test]
    fn least_loaded_by_ratio_then_sessions_then_id() {
        assert_eq!(place(&[s(1, 10, 100, true), s(2, 5, 100, true)], None, false), Some(2));
        assert_eq!(place(&[s(1, 10, 100, true), s(2, 10, 50, true)], None, false), Some(1));
        assert_eq!(place(&[s(2, 0, 100, true), s(1, 0, 100, true)], None, false), Some(1));
        assert_eq!(place(&[s(1, 1, 100, false), s(2, 50, 100, true)], None, false), Some(2));
        assert_eq!(place(&[s(1, 1, 100, false)], None, false), None);
    }

    #[test]
    fn filling_evenly_stays_within_one() {
        let mut slots = vec![s(1, 0, 100, true), s(2, 0, 100, true), s(3, 0, 100, true)];
        for _ in 0..50 {
            let id = place(&slots, None, false).unwrap();
            slots[id as usize - 1].sessions += 1;
        }
        let counts: Vec<u32> = slots.iter().map(|s| s.sessions).collect();
        assert!(counts.iter().max().unwrap() - counts.iter().min().unwrap() <= 1, "{counts:?}");
    }

    #[test]
    fn affinity_is_stable_and_moves_only_off_a_dead_slot() {
        let slots = vec![s(1, 0, 100, true), s(2, 0, 100, true), s(3, 0, 100, true)];
        let ip: IpAddr = "198.51.100.7".parse().unwrap();
        let a = place(&slots, Some(ip), true).unwrap();
        assert_eq!(place(&slots, Some(ip), true), Some(a));
        let mut down = slots.clone();
        down[a as usize - 1].available = false;
        let b = place(&down, Some(ip), true).unwrap();
        assert_ne!(a, b);
        // Clients of other slots keep theirs when one slot goes down.
        let moved = (0..200u32)
            .map(|k| IpAddr::from([10, 0, (k / 256) as u8, (k % 256) as u8]))
            .filter(|ip| {
                let before = place(&slots, Some(*ip), true).unwrap();
                before != a && place(&down, Some(*ip), true) != Some(before)
            })
            .count();
        assert_eq!(moved, 0);
    }
}
