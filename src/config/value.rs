//! Value formats shared by the configuration files (upstream's JSON-schema
//! formats): configuration ids, booleans, node names and node lists, list
//! splitting and the text encoding of rule comments.

use std::collections::BTreeMap;

use crate::core::types::NodeName;

/// Longest `comment` upstream accepts.
pub const MAX_COMMENT: usize = 4096;

/// `pve-configid`: `^[a-z][a-z0-9_-]+$`, case-insensitive.
pub fn is_config_id(id: &str) -> bool {
    let mut chars = id.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && id.len() >= 2
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'))
}

/// A JSON-schema boolean: `1|on|yes|true` or `0|off|no|false`, any case.
pub fn parse_bool(value: &str) -> Option<bool> {
    match value.to_ascii_lowercase().as_str() {
        "1" | "yes" | "on" | "true" => Some(true),
        "0" | "no" | "off" | "false" => Some(false),
        _ => None,
    }
}

/// A node name: `^[a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?$`.
pub fn is_node_name(node: &str) -> bool {
    !node.is_empty()
        && node.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        && !node.starts_with('-')
        && !node.ends_with('-')
}

/// Upstream's `split_list`: entries separated by commas, semicolons or
/// white space; empty entries are skipped.
pub fn split_list(text: &str) -> impl Iterator<Item = &str> {
    text.split(|c: char| c == ',' || c == ';' || c.is_whitespace())
        .filter(|e| !e.is_empty())
}

/// Parses `node1:2,node2` into node → priority (default 0). Every entry
/// must match `^[a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?(:\d+)?$`; a node
/// listed twice and an empty list are errors.
pub fn parse_node_list(text: &str) -> Result<BTreeMap<NodeName, i64>, String> {
    let mut nodes = BTreeMap::new();
    for entry in split_list(text) {
        let (node, priority) = match entry.split_once(':') {
            Some((n, p)) => {
                let digits = !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit());
                let priority = p.parse::<i64>().ok().filter(|_| digits);
                let Some(priority) = priority else {
                    return Err(format!(
                        "invalid priority in '{entry}' (expected a non-negative integer)"
                    ));
                };
                (n, priority)
            }
            None => (entry, 0),
        };
        if !is_node_name(node) {
            return Err(format!("invalid node name in '{entry}'"));
        }
        if nodes.insert(node.to_string(), priority).is_some() {
            return Err(format!("node '{node}' is listed twice"));
        }
    }
    if nodes.is_empty() {
        return Err("no nodes given".to_string());
    }
    Ok(nodes)
}

/// The canonical node list: sorted by name, `:prio` omitted when it is 0.
pub fn format_node_list(nodes: &BTreeMap<NodeName, i64>) -> String {
    nodes
        .iter()
        .map(|(node, &priority)| match priority {
            0 => node.clone(),
            p => format!("{node}:{p}"),
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// Checks a comment's length (at most [`MAX_COMMENT`] characters).
pub fn check_comment(text: &str) -> Result<(), String> {
    let length = text.chars().count();
    if length > MAX_COMMENT {
        return Err(format!("too long ({length} characters, at most {MAX_COMMENT})"));
    }
    Ok(())
}

/// pve-common `encode_text`: percent-escapes (upper-case hex) every byte of
/// the UTF-8 text outside printable ASCII, and `:`. `%` itself is left as
/// it is, as upstream does.
pub fn encode_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if (0x20..=0x7e).contains(&byte) && byte != b':' {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// pve-common `decode_text`: replaces every `%XX` (hex) by its byte and
/// reads the result as UTF-8 (invalid sequences become U+FFFD).
pub fn decode_text(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2]))
        {
            out.push((h * 16 + l) as u8);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_ids() {
        for good in ["ab", "ha-group-g1", "vm101_pin", "A1"] {
            assert!(is_config_id(good), "{good}");
        }
        for bad in ["a", "1a", "-a", "a.b", "a b", "", "ä1"] {
            assert!(!is_config_id(bad), "{bad}");
        }
    }

    #[test]
    fn node_lists() {
        let nodes = parse_node_list("node2,node1:2 node3:0").unwrap();
        assert_eq!(
            nodes,
            BTreeMap::from([("node1".into(), 2), ("node2".into(), 0), ("node3".into(), 0)])
        );
        assert_eq!(format_node_list(&nodes), "node1:2,node2,node3");
        assert_eq!(parse_node_list(&format_node_list(&nodes)).unwrap(), nodes);
        for (bad, message) in [
            ("node_1", "invalid node name in 'node_1'"),
            ("-node", "invalid node name in '-node'"),
            (
                "node1:-1",
                "invalid priority in 'node1:-1' (expected a non-negative integer)",
            ),
            (
                "node1:x",
                "invalid priority in 'node1:x' (expected a non-negative integer)",
            ),
            (
                "node1:",
                "invalid priority in 'node1:' (expected a non-negative integer)",
            ),
            (":2", "invalid node name in ':2'"),
            ("node1,node1:2", "node 'node1' is listed twice"),
            (",", "no nodes given"),
        ] {
            assert_eq!(parse_node_list(bad).unwrap_err(), message, "{bad}");
        }
    }

    #[test]
    fn booleans() {
        assert_eq!(parse_bool("1"), Some(true));
        assert_eq!(parse_bool("Yes"), Some(true));
        assert_eq!(parse_bool("off"), Some(false));
        assert_eq!(parse_bool("2"), None);
    }

    #[test]
    fn text_encoding_round_trips() {
        let text = "keep db: web\tné 100%";
        let encoded = encode_text(text);
        assert_eq!(encoded, "keep db%3A web%09n%C3%A9 100%");
        assert_eq!(decode_text(&encoded), text);
        assert_eq!(encode_text(&decode_text(&encoded)), encoded);
        assert_eq!(decode_text("50%"), "50%");
        assert_eq!(decode_text("%4"), "%4");
        assert_eq!(decode_text("%zz%41"), "%zzA");
    }
}
