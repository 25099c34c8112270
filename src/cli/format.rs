//! Output of `ha-manager`: upstream's text, or JSON for scripts. Pure.

use serde_json::{Value, json};

use crate::api::protocol::{DroppedRule, GroupView, ResourceView, Response, RuleView};
use crate::api::status;
use crate::config::value::escape_control;

use super::args::OutputFormat;

/// `config`: per resource `<sid>`, then `\t<key> <value>` for every stored
/// key (sorted), then an empty line. A comment is printed with its
/// control characters escaped (`%0A`, as pve-common `encode_text`), so
/// it cannot look like more property lines.
pub fn config_text(resources: &[ResourceView]) -> String {
    let mut out = String::new();
    for r in resources {
        out.push_str(&r.sid);
        out.push('\n');
        let mut keys: Vec<(&str, String)> = Vec::new();
        if let Some(c) = &r.comment {
            keys.push(("comment", escape_control(c)));
        }
        if let Some(f) = r.failback {
            keys.push(("failback", f.to_string()));
        }
        if let Some(g) = &r.group {
            keys.push(("group", g.clone()));
        }
        if let Some(n) = r.max_relocate {
            keys.push(("max_relocate", n.to_string()));
        }
        if let Some(n) = r.max_restart {
            keys.push(("max_restart", n.to_string()));
        }
        keys.push(("state", r.state.clone()));
        for (key, value) in keys {
            out.push_str(&format!("\t{key} {value}\n"));
        }
        out.push('\n');
    }
    out
}

/// `groupconfig`: `group: <id>` and the group's keys, sorted.
pub fn groups_text(groups: &[GroupView]) -> String {
    let mut out = String::new();
    for g in groups {
        out.push_str(&format!("group: {}\n", g.group));
        if let Some(c) = &g.comment {
            out.push_str(&format!("\tcomment {}\n", escape_control(c)));
        }
        out.push_str(&format!("\tnodes {}\n", g.nodes));
        if let Some(v) = g.nofailback {
            out.push_str(&format!("\tnofailback {v}\n"));
        }
        if let Some(v) = g.restricted {
            out.push_str(&format!("\trestricted {v}\n"));
        }
        out.push('\n');
    }
    out
}

/// A plain table: a header row, columns padded to their widest cell.
fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        format!("{}\n", padded.join(" ").trim_end())
    };
    let mut out = line(header.to_vec());
    for row in rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    out
}

/// `rules config`: enabled, state, rule, type, resources, comment (one
/// line per rule: control characters in the comment are escaped).
pub fn rules_text(rules: &[RuleView]) -> String {
    let rows: Vec<Vec<String>> = rules
        .iter()
        .map(|r| {
            vec![
                if r.disable.is_some() { "0" } else { "1" }.to_string(),
                r.state.clone(),
                r.rule.clone(),
                r.kind.clone(),
                r.resources.clone(),
                r.comment.as_deref().map(escape_control).unwrap_or_default(),
            ]
        })
        .collect();
    table(&["enabled", "state", "rule", "type", "resources", "comment"], &rows)
}

/// `rules check`: upstream's log lines, `Drop rule '<id>', because
/// <message>.` (rule ids sorted, each rule's messages in check order), or
/// one line saying that every rule is kept.
pub fn rules_check_text(nodes: &[String], checked: usize, dropped: &[DroppedRule]) -> String {
    if dropped.is_empty() {
        return format!(
            "no rule dropped ({checked} rules checked against nodes {})\n",
            nodes.join(",")
        );
    }
    dropped
        .iter()
        .flat_map(|d| {
            d.messages
                .iter()
                .map(move |m| format!("Drop rule '{}', because {m}.\n", d.rule))
        })
        .collect()
}

/// The JSON value of a response: the data, without the envelope.
pub fn json_value(response: &Response) -> Value {
    match response {
        Response::Status { entries, full: None } => json!(entries),
        Response::Status {
            entries,
            full: Some(full),
        } => json!({ "status": entries, "full_cluster_state": full }),
        Response::Resources { resources, digest } => {
            let items: Vec<Value> = resources
                .iter()
                .map(|r| {
                    let mut v = json!(r);
                    v["digest"] = json!(digest);
                    v
                })
                .collect();
            Value::Array(items)
        }
        Response::Groups { groups, digest } => Value::Array(
            groups
                .iter()
                .map(|g| {
                    let mut v = json!(g);
                    v["digest"] = json!(digest);
                    v
                })
                .collect(),
        ),
        Response::Rules { rules, digest } => Value::Array(
            rules
                .iter()
                .map(|r| {
                    let mut v = json!(r);
                    v["digest"] = json!(digest);
                    v
                })
                .collect(),
        ),
        Response::RulesCheck {
            nodes,
            checked,
            dropped,
        } => json!({ "nodes": nodes, "checked": checked, "dropped": dropped }),
        Response::Done { messages } => json!({ "messages": messages }),
    }
}

/// What to print on stdout.
pub fn render(response: &Response, format: OutputFormat) -> String {
    match format {
        OutputFormat::Json => format!("{}\n", json_value(response)),
        OutputFormat::JsonPretty => format!(
            "{}\n",
            serde_json::to_string_pretty(&json_value(response)).unwrap_or_default()
        ),
        OutputFormat::Text => match response {
            Response::Status { entries, full } => status::render(entries, full.as_ref()),
            Response::Resources { resources, .. } => config_text(resources),
            Response::Groups { groups, .. } => groups_text(groups),
            Response::Rules { rules, .. } => rules_text(rules),
            Response::RulesCheck {
                nodes,
                checked,
                dropped,
            } => rules_check_text(nodes, *checked, dropped),
            Response::Done { messages } => messages.iter().map(|m| format!("{m}\n")).collect(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(sid: &str, state: &str) -> ResourceView {
        ResourceView {
            sid: sid.into(),
            kind: sid.split(':').next().unwrap().into(),
            state: state.into(),
            comment: None,
            failback: None,
            group: None,
            max_relocate: None,
            max_restart: None,
        }
    }

    #[test]
    fn config_prints_sorted_keys_per_resource() {
        let mut a = view("ct:101", "stopped");
        a.comment = Some("db".into());
        a.failback = Some(0);
        a.max_restart = Some(3);
        let b = view("vm:100", "started");
        assert_eq!(
            config_text(&[a, b]),
            "ct:101\n\tcomment db\n\tfailback 0\n\tmax_restart 3\n\tstate stopped\n\nvm:100\n\tstate started\n\n"
        );
        assert_eq!(config_text(&[]), "");
    }

    /// Issue 11 §5: a comment with a line break looked like more keys.
    #[test]
    fn comments_with_line_breaks_stay_on_their_line() {
        let mut a = view("vm:100", "started");
        a.comment = Some("db\n\tstate stopped".into());
        assert_eq!(
            config_text(&[a]),
            "vm:100\n\tcomment db%0A%09state stopped\n\tstate started\n\n"
        );
        let g = GroupView {
            group: "g1".into(),
            kind: "group".into(),
            nodes: "node1".into(),
            comment: Some("x\r\ny".into()),
            nofailback: None,
            restricted: None,
        };
        assert_eq!(groups_text(&[g]), "group: g1\n\tcomment x%0D%0Ay\n\tnodes node1\n\n");
        let rule = RuleView {
            rule: "r1".into(),
            kind: "resource-affinity".into(),
            resources: "vm:100,vm:101".into(),
            nodes: None,
            strict: None,
            affinity: Some("negative".into()),
            disable: None,
            comment: Some("a\nb".into()),
            state: "in use".into(),
            errors: vec![],
            order: 1,
        };
        let text = rules_text(&[rule]);
        assert_eq!(text.lines().count(), 2, "{text}");
        assert!(text.ends_with(" a%0Ab\n"), "{text}");
    }

    #[test]
    fn groupconfig_is_the_section_format() {
        let g = GroupView {
            group: "g1".into(),
            kind: "group".into(),
            nodes: "node1:2,node2".into(),
            comment: None,
            nofailback: None,
            restricted: Some(1),
        };
        let text = groups_text(&[g]);
        assert_eq!(text, "group: g1\n\tnodes node1:2,node2\n\trestricted 1\n\n");
        // the same text the groups.cfg writer produces
        let groups = crate::config::groups::parse_groups(&text).unwrap();
        assert_eq!(crate::config::groups::write_groups(&groups), text);
    }

    #[test]
    fn rules_table_and_json() {
        let rule = RuleView {
            rule: "keep-apart".into(),
            kind: "resource-affinity".into(),
            resources: "vm:100,vm:101".into(),
            nodes: None,
            strict: None,
            affinity: Some("negative".into()),
            disable: None,
            comment: Some("two dbs".into()),
            state: "in use".into(),
            errors: vec![],
            order: 1,
        };
        assert_eq!(
            rules_text(std::slice::from_ref(&rule)),
            "enabled state  rule       type              resources     comment\n\
             1       in use keep-apart resource-affinity vm:100,vm:101 two dbs\n"
        );
        let response = Response::Rules {
            digest: "d".into(),
            rules: vec![rule],
        };
        let json = render(&response, OutputFormat::Json);
        assert!(
            json.starts_with(r#"[{"rule":"keep-apart","type":"resource-affinity""#),
            "{json}"
        );
        assert!(json.contains(r#""digest":"d""#));
        assert_eq!(
            render(&Response::Done { messages: vec![] }, OutputFormat::Json),
            "{\"messages\":[]}\n"
        );
    }

    #[test]
    fn rules_check_lines() {
        let dropped = [DroppedRule {
            rule: "apart".into(),
            messages: vec!["first reason".into(), "second reason".into()],
        }];
        let nodes = ["node1".to_string(), "node2".to_string()];
        assert_eq!(
            rules_check_text(&nodes, 2, &dropped),
            "Drop rule 'apart', because first reason.\nDrop rule 'apart', because second reason.\n"
        );
        assert_eq!(
            rules_check_text(&nodes, 2, &[]),
            "no rule dropped (2 rules checked against nodes node1,node2)\n"
        );
    }
}
