//! Failover timelines: when, after a node loss, the master marked the node
//! `unknown`, fenced it, got the fence acknowledgement (the node's agent
//! lock) and recovered and restarted its services. Read from the
//! simulator's log (virtual seconds) and from the daemons' logs (wall
//! time), so `hactor-bench timeline` can hold a real `pve`-profile
//! cluster against the simulator for the same fault. Pure: text in,
//! figures out.

use std::fmt::Write as _;

use super::{Scenario, SimError, Simulator};

/// The milestones of a failover, in the order they happen.
pub const MILESTONES: [&str; 6] = [
    "new master",
    "node unknown",
    "node fence",
    "fence acknowledged",
    "service recovery",
    "service started",
];

/// Seconds after the fault at which each milestone was first logged
/// (`None`: never, e.g. "new master" when the master survived).
pub type Timeline = [Option<f64>; 6];

/// One log line reduced to what a timeline needs.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// Seconds on the log's own clock.
    pub at: f64,
    /// The `<node>/<crm|lrm>` that logged it.
    pub source: String,
    /// The message in upstream's wording.
    pub message: String,
}

/// A simulator log line: `info    342  charlie/crm: <message>`.
pub fn parse_sim_line(line: &str) -> Option<Entry> {
    let mut parts = line.split_whitespace();
    let _level = parts.next()?;
    let at: f64 = parts.next()?.parse().ok()?;
    let source = parts.next()?.strip_suffix(':')?.to_string();
    let (_, message) = line.split_once(&format!("{source}: "))?;
    Some(Entry {
        at,
        source,
        message: message.to_string(),
    })
}

/// A daemon log line (plain format):
/// `2026-12-03T07:25:16.445683Z  INFO hactor::actors::round: <message> source=node1/crm`.
pub fn parse_daemon_line(line: &str) -> Option<Entry> {
    let (stamp, rest) = line.split_once(' ')?;
    let at = parse_utc(stamp)?;
    let (head, source) = rest.rsplit_once(" source=")?;
    let (_, message) = head.split_once(": ")?;
    Some(Entry {
        at,
        source: source.trim().to_string(),
        message: message.to_string(),
    })
}

/// Seconds since the Unix epoch of `YYYY-MM-DDTHH:MM:SS[.frac]Z`.
pub fn parse_utc(stamp: &str) -> Option<f64> {
    let stamp = stamp.strip_suffix('Z')?;
    let (date, time) = stamp.split_once('T')?;
    let mut d = date.splitn(3, '-').map(|x| x.parse::<i64>().ok());
    let (y, m, day) = (d.next()??, d.next()??, d.next()??);
    let mut t = time.splitn(3, ':');
    let (hh, mm) = (t.next()?.parse::<i64>().ok()?, t.next()?.parse::<i64>().ok()?);
    let ss: f64 = t.next()?.parse().ok()?;
    if !(1..=12).contains(&m) || !(1..=31).contains(&day) || hh > 23 || mm > 59 || !(0.0..61.0).contains(&ss) {
        return None;
    }
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some((days * 86_400 + hh * 3_600 + mm * 60) as f64 + ss)
}

/// The timeline of the loss of `victim` at `fault` (on the entries' clock).
/// Only entries from other nodes and at or after the fault count.
pub fn timeline(entries: &[Entry], victim: &str, fault: f64) -> Timeline {
    let mut out: Timeline = [None; 6];
    let mut hit = |i: usize, at: f64| {
        if out[i].is_none_or(|t| at - fault < t) {
            out[i] = Some(at - fault);
        }
    };
    let unknown = format!("node '{victim}': state changed from 'online' => 'unknown'");
    let fence = format!("node '{victim}': state changed from 'unknown' => 'fence'");
    let ack = format!("fencing: acknowledged - got agent lock for node '{victim}'");
    let recovery = format!("from fenced node '{victim}'");
    let own = format!("{victim}/");
    let mut recovered_at: Option<f64> = None;
    for e in entries.iter().filter(|e| e.at >= fault && !e.source.starts_with(&own)) {
        let m = e.message.as_str();
        if e.source.ends_with("/crm") && m.starts_with("status change ") && m.ends_with("=> master") {
            hit(0, e.at);
        } else if m == unknown {
            hit(1, e.at);
        } else if m == fence {
            hit(2, e.at);
        } else if m == ack {
            hit(3, e.at);
        } else if m.starts_with("recover service '") && m.contains(&recovery) {
            hit(4, e.at);
            recovered_at = Some(recovered_at.map_or(e.at, |t: f64| t.min(e.at)));
        }
    }
    // A start counts once a recovery was decided.
    if let Some(recovered) = recovered_at {
        for e in entries
            .iter()
            .filter(|e| e.at >= recovered && !e.source.starts_with(&own))
        {
            if e.message.starts_with("service status ") && e.message.ends_with(" started") {
                hit(5, e.at);
            }
        }
    }
    out
}

/// The simulator's timeline for the loss of `node<victim>` in a cluster of
/// `nodes` (node1 is the simulator's master).
pub fn simulated(nodes: usize, victim: usize) -> Result<Timeline, SimError> {
    let mut sim = Simulator::new(Scenario::node_loss(nodes, victim));
    sim.run()?;
    let entries: Vec<Entry> = sim.log().iter().filter_map(|l| parse_sim_line(l)).collect();
    let off = format!("execute power node{victim} off");
    let fault = entries.iter().find(|e| e.message == off).map_or(0.0, |e| e.at);
    Ok(timeline(&entries, &format!("node{victim}"), fault))
}

/// The simulator's round for `nodes` nodes: every daemon runs once per
/// round, `max(20, 2 × nodes)` virtual seconds (upstream's TestHardware).
pub fn simulator_round(nodes: usize) -> f64 {
    (2.0 * nodes as f64).max(20.0)
}

/// Both timelines side by side, with the difference and whether the
/// daemon kept within `tolerance` seconds of the simulator (a milestone
/// within `tolerance` but more than `round`, the daemon's round, off is
/// marked as such). Returns the table and whether every milestone matched.
pub fn compare(title: &str, simulator: &Timeline, daemon: &Timeline, round: f64, tolerance: f64) -> (String, bool) {
    let mut out = format!("{title}\n");
    let _ = writeln!(
        out,
        "  {:<20} {:>11} {:>11} {:>9}",
        "milestone", "simulator", "daemon", "diff"
    );
    let mut all = true;
    let cell = |t: Option<f64>| t.map_or("-".to_string(), |t| format!("{t:.1} s"));
    for (i, name) in MILESTONES.iter().enumerate() {
        let (s, d) = (simulator[i], daemon[i]);
        let (diff, off) = match (s, d) {
            (Some(s), Some(d)) => (format!("{:+.1} s", d - s), Some((d - s).abs())),
            (None, None) => (String::new(), Some(0.0)),
            _ => ("missing".to_string(), None),
        };
        let ok = off.is_some_and(|off| off <= tolerance);
        all &= ok;
        let note = match off {
            Some(off) if off <= round => "",
            Some(off) if off <= tolerance => "  (more than a daemon round, within a simulator round)",
            _ => "  (off by more than a simulator round)",
        };
        let _ = writeln!(out, "  {name:<20} {:>11} {:>11} {diff:>9}{note}", cell(s), cell(d));
    }
    (out, all)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_both_log_formats() {
        let e =
            parse_sim_line("info    342  charlie/crm: node 'alpha': state changed from 'online' => 'unknown'").unwrap();
        assert_eq!(e.at, 342.0);
        assert_eq!(e.source, "charlie/crm");
        assert_eq!(e.message, "node 'alpha': state changed from 'online' => 'unknown'");
        let d = parse_daemon_line(
            "2026-12-03T07:25:16.445683Z  INFO hactor::actors::round: node 'node2': state changed from 'unknown' => 'fence' source=node1/crm",
        )
        .unwrap();
        assert_eq!(d.source, "node1/crm");
        assert_eq!(d.message, "node 'node2': state changed from 'unknown' => 'fence'");
        assert!((d.at - 1_796_282_716.445_683).abs() < 1e-3, "{}", d.at);
        assert_eq!(parse_utc("1970-01-01T00:00:00Z"), Some(0.0));
        assert_eq!(parse_utc("2000-03-01T00:00:00Z"), Some(951_868_800.0));
        assert_eq!(parse_utc("2026-13-01T00:00:00Z"), None);
        assert_eq!(parse_daemon_line("garbage"), None);
        assert_eq!(parse_sim_line(""), None);
    }

    #[test]
    fn the_simulator_timeline_of_a_master_loss() {
        // Upstream's constants: the new master waits for the old one's
        // manager lock, fences after the fence delay and gets the agent
        // lock at once (its lease ran out long before).
        let t = simulated(3, 1).unwrap();
        let [master, unknown, fence, ack, recovery, started] = t.map(|x| x.expect("every milestone happens"));
        assert!(master > 60.0 && master <= 140.0, "{t:?}");
        assert_eq!(unknown, master);
        assert_eq!(fence, unknown + 60.0);
        assert!(ack >= fence && recovery >= ack && started > recovery, "{t:?}");
    }

    #[test]
    fn the_simulator_timeline_of_another_node_loss() {
        let t = simulated(3, 2).unwrap();
        assert_eq!(t[0], None, "the master survives: {t:?}");
        // The master sees the node gone in its next round and fences it
        // once it has been offline for the fence delay; the acknowledgement
        // waits for the node's agent lock lease (120 s after its last
        // renewal).
        let [unknown, fence, ack, recovery, started] = [t[1], t[2], t[3], t[4], t[5]].map(|x| x.unwrap());
        assert!(unknown <= 20.0 && fence > unknown && fence <= 60.0, "{t:?}");
        assert!(
            (100.0..=120.0).contains(&ack) && recovery == ack && started > recovery,
            "{t:?}"
        );
    }

    #[test]
    fn comparison_flags_a_milestone_off_by_more_than_a_round() {
        assert_eq!(simulator_round(3), 20.0);
        assert_eq!(simulator_round(12), 24.0);
        let sim: Timeline = [None, Some(10.0), Some(70.0), Some(120.0), Some(120.0), Some(121.0)];
        let close: Timeline = [None, Some(14.0), Some(74.0), Some(125.0), Some(125.0), Some(126.0)];
        let (table, ok) = compare("t", &sim, &close, 10.0, 20.0);
        assert!(ok, "{table}");
        assert!(table.contains("node unknown") && table.contains("+4.0 s"), "{table}");
        assert!(!table.contains("round)"), "{table}");
        // More than a daemon round off, within a simulator round: matches,
        // marked.
        let coarse: Timeline = [None, Some(10.0), Some(86.0), Some(120.0), Some(120.0), Some(121.0)];
        let (table, ok) = compare("t", &sim, &coarse, 10.0, 20.0);
        assert!(
            ok && table.contains("+16.0 s  (more than a daemon round, within a simulator round)"),
            "{table}"
        );
        let late: Timeline = [None, Some(35.0), Some(95.0), Some(125.0), Some(125.0), Some(126.0)];
        let (table, ok) = compare("t", &sim, &late, 10.0, 20.0);
        assert!(
            !ok && table.contains("+25.0 s  (off by more than a simulator round)"),
            "{table}"
        );
        let (table, ok) = compare("t", &sim, &[None; 6], 10.0, 20.0);
        assert!(!ok && table.contains("missing"), "{table}");
    }
}
