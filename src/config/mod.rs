//! Parsers for configuration text (pure: text in, typed values or errors
//! with line numbers out; reading files is the caller's business).

pub mod section;
