//! Parsers and writers for configuration text (pure: text in, typed values
//! or errors with line numbers out; reading files is the caller's business).
//!
//! | module | file |
//! |---|---|
//! | [`section`] | the section-config syntax shared by the `*.cfg` files below |
//! | [`groups`] | `groups.cfg` (legacy HA groups) |
//! | [`resources`] | `resources.cfg` (HA resources) |
//! | [`datacenter`] | the `ha:` and `crs:` lines of `datacenter.cfg` |
//! | [`rules`] | `rules.cfg` (the checks are `core::rules`') |
//!
//! Every parser is strict: an unknown key, a bad value or a duplicate is an
//! error naming the line of the offending key and the key itself, never a
//! silent default that would change placement. The writers render the
//! canonical form (upstream's `write_config` layout), so canonical text
//! survives `parse` → `write` byte for byte.
//!
//! Owns: configuration text ↔ core types. May import: `core` only.

pub mod datacenter;
pub mod groups;
pub mod resources;
pub mod rules;
pub mod section;
pub mod value;

use std::fmt;

/// A configuration problem at a line (1-based), naming the key at fault
/// where there is one. `Display` gives `line N: <message>`; the message
/// names the section and the key (`group 'g1': key 'nodes': ...`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub line: usize,
    /// The key at fault, if the problem is with one key.
    pub key: Option<String>,
    pub message: String,
}

impl ConfigError {
    /// A problem with a whole line or section.
    pub fn at(line: usize, message: impl Into<String>) -> ConfigError {
        ConfigError {
            line,
            key: None,
            message: message.into(),
        }
    }

    /// A problem with `key`: the message reads `<context>: key '<key>': <detail>`,
    /// or `key '<key>': <detail>` without context.
    pub fn key(line: usize, context: &str, key: &str, detail: impl fmt::Display) -> ConfigError {
        let message = match context {
            "" => format!("key '{key}': {detail}"),
            _ => format!("{context}: key '{key}': {detail}"),
        };
        ConfigError {
            line,
            key: Some(key.to_string()),
            message,
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

impl std::error::Error for ConfigError {}

impl From<section::SectionError> for ConfigError {
    fn from(e: section::SectionError) -> ConfigError {
        ConfigError::at(e.line, e.message)
    }
}
