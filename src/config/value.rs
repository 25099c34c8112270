//! Value formats shared by the configuration files (upstream's JSON-schema
//! formats): configuration ids, booleans, node names and node lists, list
//! splitting and the text encoding of rule comments.

use std::collections::BTreeMap;

use crate::core::types::NodeName;

/// Longest `comment` upstream accepts.
pub const MAX_COMMENT: usize = 4096;

pub use crate::core::types::is_config_id;

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
                let priority = match p.parse::<i64>() {
                    Ok(priority) if digits => priority,
                    Err(_) if digits => {
                        return Err(format!("priority in '{entry}' is out of range (at most {})", i64::MAX));
                    }
                    _ => {
                        return Err(format!(
                            "invalid priority in '{entry}' (expected a non-negative integer)"
                        ));
                    }
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

/// Refuses a line break in a one-line value (a resource or group
/// comment): upstream's section config refuses to write one ("property
/// 'comment' contains a line feed"), since it would start a new line of
/// the file.
pub fn check_single_line(text: &str) -> Result<(), String> {
    if text.contains(['\n', '\r']) {
        return Err("contains a line feed".to_string());
    }
    Ok(())
}

/// Escapes control characters (line breaks, tabs, escape sequences) the
/// way [`encode_text`] does (`%0A`), and leaves everything else as it
/// is: how a comment is printed on its one line of `ha-manager` output,
/// so it can never look like more lines or rewrite the terminal.
pub fn escape_control(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() {
            let mut buf = [0u8; 4];
            for byte in c.encode_utf8(&mut buf).bytes() {
                out.push_str(&format!("%{byte:02X}"));
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// pve-common `encode_text`: percent-escapes (upper-case hex) every byte of
/// the UTF-8 text outside printable ASCII, and `:`. `%` itself is left as
/// it is, as upstream does, unless two hex digits follow it: upstream
/// writes `%41` as it is and reads it back as `A`; escaping that `%` as
/// `%25` (which upstream decodes to `%` too) makes every comment read
/// back as it was written, and leaves the bytes of every other text as
/// upstream writes them.
pub fn encode_text(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    for (i, &byte) in bytes.iter().enumerate() {
        let hex_follows = bytes.len() > i + 2 && bytes[i + 1].is_ascii_hexdigit() && bytes[i + 2].is_ascii_hexdigit();
        if byte == b'%' && hex_follows {
            out.push_str("%25");
        } else if (0x20..=0x7e).contains(&byte) && byte != b':' {
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
            (
                "node1:9223372036854775808",
                "priority in 'node1:9223372036854775808' is out of range (at most 9223372036854775807)",
            ),
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
    fn line_breaks_are_refused_or_escaped() {
        assert_eq!(check_single_line("one line: ok"), Ok(()));
        assert_eq!(check_single_line("one\ntwo").unwrap_err(), "contains a line feed");
        assert_eq!(check_single_line("one\rtwo").unwrap_err(), "contains a line feed");
        assert_eq!(escape_control("db\n\tstate stopped"), "db%0A%09state stopped");
        assert_eq!(escape_control("a\r\u{1b}[2J\u{85}b"), "a%0D%1B[2J%C2%85b");
        assert_eq!(escape_control("keep: né 100%"), "keep: né 100%");
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
        // Found by the property tests: a literal `%41` read back as `A`.
        for text in ["%aa", "%41", "100%", "%%41", "50%2", "%4"] {
            assert_eq!(decode_text(&encode_text(text)), text, "{text}");
        }
        assert_eq!(encode_text("%41 100%"), "%2541 100%");
    }
}
