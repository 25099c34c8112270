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
//!
//! [`write`] renders sections canonically, as upstream's
//! `SectionConfig::write_config` does: the header `<type>: <id>`, then one
//! `\t<key> <value>` line per property in the order given (a bare flag as
//! `\t<key>`), and every section followed by one blank line, so sections
//! are separated by exactly one blank line and non-empty output ends with
//! `\n\n`. Which keys appear, in which order, and whether a boolean is a
//! bare flag (upstream: only `disable`) or `<key> 1` (every other boolean)
//! is the business of the typed writers built on top of this one.

use std::fmt;

/// One `<key> <value>` line of a section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Property {
    pub key: String,
    /// The value; a bare flag reads as `"1"`.
    pub value: String,
    /// Written without a value (`\tdisable`).
    pub bare: bool,
    /// 1-based line in the parsed text; 0 for properties built in code.
    pub line: usize,
}

impl Property {
    /// A `<key> <value>` property built in code.
    pub fn new(key: &str, value: impl Into<String>) -> Property {
        Property {
            key: key.to_string(),
            value: value.into(),
            bare: false,
            line: 0,
        }
    }

    /// A bare flag (`\t<key>`), which reads as `<key> 1`.
    pub fn flag(key: &str) -> Property {
        Property {
            key: key.to_string(),
            value: "1".to_string(),
            bare: true,
            line: 0,
        }
    }
}

/// One section with its properties in file order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    pub kind: String,
    pub id: String,
    /// 1-based line of the header; 0 for sections built in code.
    pub line: usize,
    pub properties: Vec<Property>,
}

impl Section {
    /// An empty section built in code.
    pub fn new(kind: &str, id: &str) -> Section {
        Section {
            kind: kind.to_string(),
            id: id.to_string(),
            line: 0,
            properties: Vec::new(),
        }
    }

    /// The value of `key`; a bare flag reads as `"1"`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.property(key).map(|p| p.value.as_str())
    }

    /// The property `key`, with its line.
    pub fn property(&self, key: &str) -> Option<&Property> {
        self.properties.iter().find(|p| p.key == key)
    }

    /// The line of `key`, or of the header when the key is absent (the place
    /// to blame for a missing key).
    pub fn line_of(&self, key: &str) -> usize {
        self.property(key).map_or(self.line, |p| p.line)
    }

    /// Appends `<key> <value>`.
    pub fn push(&mut self, key: &str, value: impl Into<String>) {
        self.properties.push(Property::new(key, value));
    }

    /// Appends a bare flag.
    pub fn push_flag(&mut self, key: &str) {
        self.properties.push(Property::flag(key));
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

impl std::error::Error for SectionError {}

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
        // `lines` ends a line at "\n" or "\r\n"; a carriage return left
        // inside would be kept in a value, which no writer can write back
        // (upstream's refuses to, [`write`] would turn it into a space).
        if raw.contains('\r') {
            return Err(SectionError {
                line,
                message: "carriage return inside a line".into(),
            });
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
            let (key, value, bare) = match body.split_once(char::is_whitespace) {
                Some((k, v)) => (k, v.trim(), false),
                None => (body, "1", true),
            };
            if let Some(first) = section.property(key) {
                return Err(SectionError {
                    line,
                    message: format!("duplicate key '{key}' (first on line {})", first.line),
                });
            }
            section.properties.push(Property {
                key: key.to_string(),
                value: value.to_string(),
                bare,
                line,
            });
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

/// Renders sections canonically (see the module documentation). Line
/// breaks inside a value would start a new line and are written as spaces.
pub fn write(sections: &[Section]) -> String {
    let clean = |text: &str| text.replace(['\r', '\n'], " ");
    let mut out = String::new();
    for section in sections {
        out.push_str(&format!("{}: {}\n", clean(&section.kind), clean(&section.id)));
        for p in &section.properties {
            if p.bare {
                out.push_str(&format!("\t{}\n", clean(&p.key)));
            } else {
                out.push_str(&format!("\t{} {}\n", clean(&p.key), clean(&p.value)));
            }
        }
        out.push('\n');
    }
    out
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
        assert!(sections[0].property("restricted").unwrap().bare);
        assert_eq!(sections[1].line, 6);
    }

    #[test]
    fn every_property_records_its_line() {
        let text = "# header comment\nrule: a\n\tone 1\n\t# inner comment\n\ttwo x y\n\nrule: b\n\tthree\n";
        let sections = parse(text).unwrap();
        assert_eq!(sections[0].line_of("one"), 3);
        assert_eq!(sections[0].line_of("two"), 5);
        assert_eq!(sections[0].get("two"), Some("x y"));
        assert_eq!(sections[0].line_of("missing"), 2);
        assert_eq!(sections[1].line_of("three"), 8);
    }

    #[test]
    fn errors_name_the_line() {
        let err = parse("group: a\n\tnodes x\n\tnodes y\n").unwrap_err();
        assert_eq!(err.to_string(), "line 3: duplicate key 'nodes' (first on line 2)");
        let err = parse("\tnodes x\n").unwrap_err();
        assert_eq!(err.to_string(), "line 1: property outside of a section");
        let err = parse("nonsense\n").unwrap_err();
        assert_eq!(err.to_string(), "line 1: expected '<type>: <id>', got 'nonsense'");
        let err = parse("group: a\n\tnodes x\n\nrestricted 1\n").unwrap_err();
        assert_eq!(err.line, 4);
        let err = parse("group: a b\n").unwrap_err();
        assert_eq!(err.to_string(), "line 1: invalid section header 'group: a b'");
        // Found by the property tests: read as "a\rb", written as "a b".
        let err = parse("vm: 100\n\tcomment a\rb\n").unwrap_err();
        assert_eq!(err.to_string(), "line 2: carriage return inside a line");
        assert_eq!(parse("group: a\r\n\tnodes x\r\n").unwrap()[0].get("nodes"), Some("x"));
    }

    #[test]
    fn write_is_canonical_and_round_trips() {
        let text = "group: a\n\tnodes x,y\n\tdisable\n\nrule: b\n\tcomment two words\n\n";
        let sections = parse(text).unwrap();
        assert_eq!(write(&sections), text);
        let mut built = Section::new("group", "a");
        built.push("nodes", "x,y");
        built.push_flag("disable");
        let mut second = Section::new("rule", "b");
        second.push("comment", "two words");
        assert_eq!(write(&[built, second]), text);
        assert_eq!(write(&[]), "");
    }

    #[test]
    fn non_canonical_spacing_is_normalised() {
        let text = "group:   a\n    nodes    x,y   \n\n\n\ngroup: b\n  restricted\n";
        let written = write(&parse(text).unwrap());
        assert_eq!(written, "group: a\n\tnodes x,y\n\ngroup: b\n\trestricted\n\n");
        assert_eq!(write(&parse(&written).unwrap()), written);
    }

    #[test]
    fn line_breaks_in_values_cannot_inject_lines() {
        let mut s = Section::new("group", "a");
        s.push("comment", "one\ntwo");
        assert_eq!(write(&[s]), "group: a\n\tcomment one two\n\n");
    }
}
