//! `ha-manager status`: the entries of upstream's `status/current`, and
//! their text. Pure: the snapshot, the local node and `now` come in.
//!
//! Times are printed C `ctime` style (`Fri Apr 24 10:00:03 2026`) in UTC:
//! the daemon has no time zone database, and a cluster's nodes may sit in
//! different zones while its status should read the same everywhere.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::core::store::ClusterState;
use crate::core::types::{LrmMode, RequestState, ServiceState};

use super::protocol::StatusEntry;

/// What a status needs besides the snapshot.
#[derive(Debug, Clone)]
pub struct StatusContext<'a> {
    /// The node answering (named in the no-quorum line).
    pub local: &'a str,
    pub quorate: bool,
    /// Wall-clock seconds.
    pub now: i64,
    /// A master or LRM timestamp older than this is stale (upstream: 30 s,
    /// three rounds).
    pub fresh_secs: i64,
    /// The CRS mode (`basic`, `static`, `dynamic`).
    pub crs: &'a str,
}

fn timestamp_status(ctx: &StatusContext<'_>, timestamp: i64) -> &'static str {
    let age = ctx.now - timestamp;
    if age > ctx.fresh_secs {
        "old timestamp - dead?"
    } else if age < -2 {
        "detected time drift!"
    } else {
        "active"
    }
}

/// `%a %b %e %H:%M:%S %Y` of a Unix time, in UTC.
pub fn ctime(t: i64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let days = t.div_euclid(86_400);
    let secs = t.rem_euclid(86_400);
    let weekday = DAYS[usize::try_from(days.rem_euclid(7)).unwrap_or(0)];
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{weekday} {} {day:>2} {:02}:{:02}:{:02} {year}",
        MONTHS[usize::try_from(month - 1).unwrap_or(0)],
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// The verbose state of a service (upstream's `get_verbose_service_state`).
fn verbose_state(state: &ClusterState, sid: &str, ignore_mode: bool) -> String {
    let Some(cd) = state.resources.get(sid) else {
        return "deleting".into();
    };
    if cd.state == RequestState::Ignored {
        return "ignored".into();
    }
    if cd.node.is_none() {
        return "not found".into();
    }
    let Some(sd) = state.manager_status.service_status.get(sid) else {
        return "queued".into();
    };
    if ignore_mode {
        return "ignore".into();
    }
    let text = match (sd.state, cd.state) {
        (ServiceState::Stopped, RequestState::Started) => "starting",
        (ServiceState::Stopped, RequestState::Disabled) => "disabled",
        (ServiceState::Started, _) if !sd.running => "starting",
        (ServiceState::Started, RequestState::Stopped | RequestState::Disabled) => "stopping",
        (ServiceState::Error, RequestState::Disabled) => "clearing error flag",
        (crm, _) => crm.as_str(),
    };
    text.to_string()
}

/// Every status entry, in output order.
pub fn entries(state: &ClusterState, ctx: &StatusContext<'_>) -> Vec<StatusEntry> {
    let ms = &state.manager_status;
    let mut out = Vec::new();

    let quorum = if ctx.quorate {
        "OK".to_string()
    } else {
        format!("No quorum on node '{}'!", ctx.local)
    };
    let mut entry = StatusEntry::new("quorum", "quorum", quorum);
    entry.node = Some(ctx.local.to_string());
    entry.quorate = Some(ctx.quorate);
    out.push(entry);

    let disarm = ms.disarm.as_ref();
    let mut master_fresh = false;
    if let (Some(master), Some(timestamp)) = (&ms.master_node, ms.timestamp) {
        let mut status = timestamp_status(ctx, timestamp);
        master_fresh = status == "active";
        if ctx.quorate && !master_fresh && state.resources.is_empty() {
            status = "idle";
        }
        let mut text = format!("{master} ({status}, {})", ctime(timestamp));
        if let Some(d) = disarm {
            text.push_str(&format!(" - {}, resource mode: {}", d.state, d.mode));
        }
        if ctx.crs != "basic" && !ctx.crs.is_empty() {
            text.push_str(&format!(" - {} load CRS", ctx.crs));
        }
        let mut entry = StatusEntry::new("master", "master", text);
        entry.node = Some(master.clone());
        entry.timestamp = Some(timestamp);
        out.push(entry);
    }

    let fencing = match disarm {
        Some(d) => {
            let watchdog = if d.is_disarmed() { "released" } else { "active" };
            format!("{}, resource mode: {} (CRM watchdog {watchdog})", d.state, d.mode)
        }
        None if master_fresh => "armed (CRM watchdog active)".to_string(),
        None => "standby (CRM watchdog standby)".to_string(),
    };
    out.push(StatusEntry::new("fencing", "fencing", fencing));

    let mut active_on: BTreeMap<&str, usize> = BTreeMap::new();
    for sd in ms.service_status.values() {
        if sd.state != ServiceState::Stopped {
            *active_on.entry(sd.node.as_str()).or_default() += 1;
        }
    }
    for node in ms.node_status.keys() {
        let lrm = state.lrm_status.get(node).filter(|l| l.timestamp != 0);
        let text = match lrm {
            None => format!("{node} (unable to read lrm status)"),
            Some(lrm) => {
                let time_status = timestamp_status(ctx, lrm.timestamp);
                let fresh = time_status == "active";
                let mode_shown = matches!(lrm.mode, LrmMode::Maintenance | LrmMode::Disarm);
                let status = if fresh && lrm.mode != LrmMode::Active || !fresh && mode_shown {
                    format!("{} mode", lrm.mode)
                } else if !fresh {
                    time_status.to_string()
                } else if lrm.state == "wait_for_agent_lock" && !active_on.contains_key(node.as_str()) {
                    "idle".to_string()
                } else {
                    lrm.state.clone()
                };
                let watchdog = if lrm.mode == LrmMode::Disarm {
                    "watchdog released"
                } else if fresh && matches!(lrm.state.as_str(), "active" | "maintenance") {
                    "watchdog active"
                } else {
                    "watchdog standby"
                };
                format!("{node} ({status}, {watchdog}, {})", ctime(lrm.timestamp))
            }
        };
        let mut entry = StatusEntry::new(&format!("lrm:{node}"), "lrm", text);
        entry.node = Some(node.clone());
        if let Some(lrm) = lrm {
            entry.state = Some(lrm.state.clone());
            entry.timestamp = Some(lrm.timestamp);
        }
        out.push(entry);
    }

    let ignore_mode = disarm.is_some_and(|d| d.mode == "ignore");
    let unlisted = state
        .resources
        .keys()
        .filter(|sid| !ms.service_status.contains_key(*sid));
    for sid in ms.service_status.keys().chain(unlisted) {
        let sd = ms.service_status.get(sid);
        let cd = state.resources.get(sid);
        let node = sd
            .map(|sd| sd.node.clone())
            .or_else(|| cd.and_then(|cd| cd.node.clone()))
            .unwrap_or_else(|| "---".to_string());
        let verbose = verbose_state(state, sid, ignore_mode);
        let mut entry = StatusEntry::new(
            &format!("service:{sid}"),
            "service",
            format!("{sid} ({node}, {verbose})"),
        );
        entry.node = Some(node);
        entry.sid = Some(sid.clone());
        entry.state = Some(verbose);
        entry.crm_state = sd.map(|sd| sd.state.as_str().to_string());
        entry.request_state = cd.map(|cd| cd.state.as_str().to_string());
        out.push(entry);
    }
    out
}

/// `--verbose`: `{manager_status, quorum: {node, quorate}, lrm_status}`
/// with keys sorted at every level.
pub fn full_state(state: &ClusterState, ctx: &StatusContext<'_>) -> Value {
    let value = serde_json::json!({
        "manager_status": state.manager_status,
        "quorum": { "node": ctx.local, "quorate": u8::from(ctx.quorate) },
        "lrm_status": state.lrm_status,
    });
    sort_keys(value)
}

/// A JSON value with every object's keys in sorted order.
pub fn sort_keys(value: Value) -> Value {
    match value {
        Value::Object(map) => {
            let sorted: BTreeMap<String, Value> = map.into_iter().map(|(k, v)| (k, sort_keys(v))).collect();
            Value::Object(sorted.into_iter().collect())
        }
        Value::Array(items) => Value::Array(items.into_iter().map(sort_keys).collect()),
        other => other,
    }
}

/// The text of `status`: `<type> <status>` per entry, then with `full`
/// the line `full cluster state:` and the pretty JSON.
pub fn render(entries: &[StatusEntry], full: Option<&Value>) -> String {
    let mut out = String::new();
    for entry in entries {
        out.push_str(&format!("{} {}\n", entry.kind, entry.status));
    }
    if let Some(full) = full {
        out.push_str("full cluster state:\n");
        out.push_str(&serde_json::to_string_pretty(full).unwrap_or_default());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::status::{Disarm, LrmStatus, ResourceConfig, ServiceStatus};
    use crate::core::types::NodeState;

    const NOW: i64 = 1_777_024_803; // Fri Apr 24 10:00:03 2026 UTC

    fn resource(state: RequestState) -> ResourceConfig {
        ResourceConfig::new("node1", state)
    }

    fn lrm(state: &str, mode: LrmMode, timestamp: i64) -> LrmStatus {
        LrmStatus {
            state: state.into(),
            mode,
            results: BTreeMap::new(),
            timestamp,
        }
    }

    fn ctx(quorate: bool) -> StatusContext<'static> {
        StatusContext {
            local: "node1",
            quorate,
            now: NOW,
            fresh_secs: 30,
            crs: "basic",
        }
    }

    fn cluster() -> ClusterState {
        let mut state = ClusterState::default();
        let ms = &mut state.manager_status;
        ms.master_node = Some("node1".into());
        ms.timestamp = Some(NOW);
        for node in ["node1", "node2", "node3"] {
            ms.node_status.insert(node.into(), NodeState::Online);
        }
        let mut started = ServiceStatus::new(ServiceState::Started, "node1", "u1".into());
        started.running = true;
        ms.service_status.insert("vm:100".into(), started);
        ms.service_status.insert(
            "ct:102".into(),
            ServiceStatus::new(ServiceState::Stopped, "node1", "u2".into()),
        );
        state.resources.insert("vm:100".into(), resource(RequestState::Started));
        state.resources.insert("ct:102".into(), resource(RequestState::Stopped));
        state
            .lrm_status
            .insert("node1".into(), lrm("active", LrmMode::Active, NOW - 2).into());
        state.lrm_status.insert(
            "node2".into(),
            lrm("wait_for_agent_lock", LrmMode::Active, NOW - 5).into(),
        );
        state
            .lrm_status
            .insert("node3".into(), lrm("maintenance", LrmMode::Maintenance, NOW - 1).into());
        state
    }

    #[test]
    fn ctime_is_c_style() {
        assert_eq!(ctime(NOW), "Fri Apr 24 10:00:03 2026");
        assert_eq!(ctime(0), "Thu Jan  1 00:00:00 1970");
        assert_eq!(ctime(951_782_400), "Tue Feb 29 00:00:00 2000");
    }

    #[test]
    fn the_upstream_example() {
        let text = render(&entries(&cluster(), &ctx(true)), None);
        assert_eq!(
            text,
            "quorum OK\n\
             master node1 (active, Fri Apr 24 10:00:03 2026)\n\
             fencing armed (CRM watchdog active)\n\
             lrm node1 (active, watchdog active, Fri Apr 24 10:00:01 2026)\n\
             lrm node2 (idle, watchdog standby, Fri Apr 24 09:59:58 2026)\n\
             lrm node3 (maintenance mode, watchdog active, Fri Apr 24 10:00:02 2026)\n\
             service ct:102 (node1, stopped)\n\
             service vm:100 (node1, started)\n"
        );
    }

    #[test]
    fn stale_master_no_quorum_disarm_and_crs() {
        let mut state = cluster();
        state.manager_status.timestamp = Some(NOW - 31);
        state.lrm_status.remove("node2");
        state
            .lrm_status
            .insert("node1".into(), lrm("active", LrmMode::Active, NOW - 40).into());
        let static_ctx = StatusContext {
            crs: "static",
            ..ctx(false)
        };
        let text = render(&entries(&state, &static_ctx), None);
        assert!(text.starts_with("quorum No quorum on node 'node1'!\n"), "{text}");
        assert!(
            text.contains("master node1 (old timestamp - dead?, Fri Apr 24 09:59:32 2026) - static load CRS\n"),
            "{text}"
        );
        assert!(text.contains("fencing standby (CRM watchdog standby)\n"), "{text}");
        assert!(
            text.contains("lrm node1 (old timestamp - dead?, watchdog standby, Fri Apr 24 09:59:23 2026)\n"),
            "{text}"
        );
        assert!(text.contains("lrm node2 (unable to read lrm status)\n"), "{text}");

        let mut state = cluster();
        state.manager_status.disarm = Some(Disarm {
            mode: "ignore".into(),
            state: Disarm::DISARMED.into(),
        });
        state
            .lrm_status
            .insert("node1".into(), lrm("active", LrmMode::Disarm, NOW).into());
        let text = render(&entries(&state, &ctx(true)), None);
        assert!(
            text.contains("master node1 (active, Fri Apr 24 10:00:03 2026) - disarmed, resource mode: ignore\n"),
            "{text}"
        );
        assert!(
            text.contains("fencing disarmed, resource mode: ignore (CRM watchdog released)\n"),
            "{text}"
        );
        assert!(text.contains("lrm node1 (disarm mode, watchdog released,"), "{text}");
        assert!(text.contains("service vm:100 (node1, ignore)\n"), "{text}");
    }

    #[test]
    fn verbose_service_states() {
        let mut state = cluster();
        let ms = &mut state.manager_status;
        ms.service_status.get_mut("vm:100").unwrap().running = false;
        ms.service_status.insert(
            "vm:103".into(),
            ServiceStatus::new(ServiceState::Error, "node2", "u".into()),
        );
        ms.service_status.insert(
            "vm:104".into(),
            ServiceStatus::new(ServiceState::Fence, "node3", "u".into()),
        );
        ms.service_status.insert(
            "vm:105".into(),
            ServiceStatus::new(ServiceState::Stopped, "node1", "u".into()),
        );
        state
            .resources
            .insert("vm:103".into(), resource(RequestState::Disabled));
        state.resources.insert("vm:104".into(), resource(RequestState::Started));
        state.resources.insert("vm:106".into(), resource(RequestState::Started));
        state.resources.insert("vm:107".into(), resource(RequestState::Ignored));
        let mut lost = resource(RequestState::Started);
        lost.node = None;
        state.resources.insert("vm:108".into(), lost);
        let lines: Vec<String> = entries(&state, &ctx(true))
            .into_iter()
            .filter(|e| e.kind == "service")
            .map(|e| e.status)
            .collect();
        assert_eq!(
            lines,
            [
                "ct:102 (node1, stopped)",
                "vm:100 (node1, starting)",
                "vm:103 (node2, clearing error flag)",
                "vm:104 (node3, fence)",
                "vm:105 (node1, deleting)",
                "vm:106 (node1, queued)",
                "vm:107 (node1, ignored)",
                "vm:108 (---, not found)",
            ]
        );
    }

    #[test]
    fn idle_master_and_verbose_json() {
        let mut state = cluster();
        state.resources.clear();
        state.manager_status.service_status.clear();
        state.manager_status.timestamp = Some(NOW - 100);
        let entries = entries(&state, &ctx(true));
        assert_eq!(entries[1].status, "node1 (idle, Fri Apr 24 09:58:23 2026)");
        let full = full_state(&state, &ctx(true));
        let text = render(&entries[..1], Some(&full));
        assert!(
            text.starts_with("quorum OK\nfull cluster state:\n{\n  \"lrm_status\": {"),
            "{text}"
        );
        assert_eq!(full["quorum"]["quorate"], 1);
    }
}
