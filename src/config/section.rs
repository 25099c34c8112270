//! Upstream's section-config syntax (`resources.cfg`, `groups.cfg`,
//! `rules.cfg`):
//!
//! ```text
//! <type>: <id>
//!     <key> <value>
//!     <flag>            # a key without value means 1
//! ```
//!
//! Sections are separated by blank lines; `#` starts a comment line.

use std::fmt;

/// One section with its properties in file order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    pub kind: String,
    pub id: String,
    /// 1-based line of the header.
    pub line: usize,
    pub properties: Vec<(String, String)>,
}

impl Section {
    /// The value of `key`; a bare flag reads as `"1"`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.properties.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }
}

/// A syntax error at a line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SectionError {
    pub line: usize,
    pub message: String,
}

impl fmt::Display for SectionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

/// Parses section-config text.
pub fn parse(text: &str) -> Result<Vec<Section>, SectionError> {
    let mut sections: Vec<Section> = Vec::new();
    let mut in_section = false;
    for (index, raw) in text.lines().enumerate() {
        let line = index + 1;
        if raw.trim().is_empty() {
            in_section = false;
            continue;
        }
        if raw.trim_start().starts_with('#') {
            continue;
        }
        let indented = raw.starts_with(|c: char| c.is_whitespace());
        if indented {
            let Some(section) = sections.last_mut().filter(|_| in_section) else {
                return Err(SectionError {
                    line,
                    message: "property outside of a section".into(),
                });
            };
            let body = raw.trim();
            let (key, value) = match body.split_once(char::is_whitespace) {
                Some((k, v)) => (k, v.trim()),
                None => (body, "1"),
            };
            if section.properties.iter().any(|(k, _)| k == key) {
                return Err(SectionError {
                    line,
                    message: format!("duplicate key '{key}'"),
                });
            }
            section.properties.push((key.to_string(), value.to_string()));
            continue;
        }
        let Some((kind, id)) = raw.split_once(':') else {
            return Err(SectionError {
                line,
                message: format!("expected '<type>: <id>', got '{}'", raw.trim()),
            });
        };
        let (kind, id) = (kind.trim(), id.trim());
        if kind.is_empty() || id.is_empty() || kind.contains(char::is_whitespace) || id.contains(char::is_whitespace) {
            return Err(SectionError {
                line,
                message: format!("invalid section header '{}'", raw.trim()),
            });
        }
        sections.push(Section {
            kind: kind.into(),
            id: id.into(),
            line,
            properties: Vec::new(),
        });
        in_section = true;
    }
    Ok(sections)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sections_keys_and_flags() {
        let text = "group: prefer_node1\n\tnodes node1:2,node2\n\trestricted\n\n# note\ngroup: g2\n\tnodes node3\n";
        let sections = parse(text).unwrap();
        assert_eq!(sections.len(), 2);
        assert_eq!(sections[0].get("nodes"), Some("node1:2,node2"));
        assert_eq!(sections[0].get("restricted"), Some("1"));
        assert_eq!(sections[1].line, 6);
    }

    #[test]
    fn errors_name_the_line() {
        let err = parse("group: a\n\tnodes x\n\tnodes y\n").unwrap_err();
        assert_eq!(err.line, 3);
        let err = parse("\tnodes x\n").unwrap_err();
        assert_eq!(err.line, 1);
        let err = parse("nonsense\n").unwrap_err();
        assert_eq!(err.line, 1);
    }
}
