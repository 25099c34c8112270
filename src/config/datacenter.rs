//! The HA settings of `datacenter.cfg` (spec §6.5): the property strings of
//! the `ha:` and `crs:` lines.
//!
//! ```text
//! keyboard: en-us
//! ha: shutdown_policy=migrate
//! crs: ha=static,ha-rebalance-on-start=1,ha-auto-rebalance=1,ha-auto-rebalance-threshold=0.25
//! ```
//!
//! Other top-level keys belong to other parts of Proxmox VE and are
//! ignored; `#` lines are the datacenter notes. A line that is not
//! `<key>: <value>`, a repeated `ha`/`crs` line, and an unknown option or a
//! bad value inside `ha`/`crs` are errors naming the line and the key.

use crate::core::env::{DatacenterSettings, ShutdownPolicy};
use crate::core::usage::{CrsMode, RebalanceMethod};

use super::ConfigError;
use super::value::parse_bool;

/// The words of the typed settings, for messages that list them.
const SHUTDOWN_POLICIES: &[&str] = &["conditional", "freeze", "failover", "migrate"];
const CRS_MODES: &[&str] = &["basic", "static", "dynamic"];
const REBALANCE_METHODS: &[&str] = &["bruteforce", "topsis"];

/// Upper bound of `ha-auto-rebalance-threshold` and `-margin`: the
/// imbalance is a coefficient of variation (at most the square root of
/// the node count), the margin a relative improvement (at most 1), so
/// anything larger only means "never"; the bound keeps out values that
/// mean nothing, such as 1e300.
pub const MAX_REBALANCE_FACTOR: f64 = 1000.0;

/// Upper bound of `ha-auto-rebalance-hold-duration`, in rounds (more than
/// eleven days of 1 s rounds): the manager counts rounds in a `u32`.
pub const MAX_HOLD_ROUNDS: f64 = 1_000_000.0;

/// `a, b or c`.
fn one_of(values: &[&str]) -> String {
    match values.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} or {last}", rest.join(", ")),
        _ => values.join(""),
    }
}

/// Splits a property string into `(option, value)` pairs, rejecting
/// entries without `=` and repeated options.
fn property_string<'a>(line: usize, key: &str, value: &'a str) -> Result<Vec<(&'a str, &'a str)>, ConfigError> {
    let mut out: Vec<(&str, &str)> = Vec::new();
    for part in value.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let Some((option, v)) = part.split_once('=') else {
            return Err(ConfigError::key(
                line,
                "",
                key,
                format!("expected <option>=<value>, got '{part}'"),
            ));
        };
        let (option, v) = (option.trim(), v.trim());
        if out.iter().any(|(o, _)| *o == option) {
            return Err(ConfigError::key(
                line,
                "",
                key,
                format!("option '{option}' given twice"),
            ));
        }
        out.push((option, v));
    }
    Ok(out)
}

fn parse_ha(line: usize, value: &str, settings: &mut DatacenterSettings) -> Result<(), ConfigError> {
    let err = |detail: String| ConfigError::key(line, "", "ha", detail);
    for (option, v) in property_string(line, "ha", value)? {
        match option {
            "shutdown_policy" => {
                settings.shutdown_policy = ShutdownPolicy::parse(v).ok_or_else(|| {
                    err(format!(
                        "option 'shutdown_policy': expected {}, got '{v}'",
                        one_of(SHUTDOWN_POLICIES)
                    ))
                })?;
            }
            other => return Err(err(format!("unknown option '{other}'"))),
        }
    }
    Ok(())
}

fn parse_crs(line: usize, value: &str, settings: &mut DatacenterSettings) -> Result<(), ConfigError> {
    let err = |detail: String| ConfigError::key(line, "", "crs", detail);
    let options = property_string(line, "crs", value)?;
    let enumerated = |option: &str, v: &str, allowed: &[&str]| {
        err(format!("option '{option}': expected {}, got '{v}'", one_of(allowed)))
    };
    let boolean = |option: &str, v: &str| {
        parse_bool(v).ok_or_else(|| err(format!("option '{option}': expected 0 or 1, got '{v}'")))
    };
    let number = |option: &str, v: &str, max: f64| match v.parse::<f64>() {
        Ok(n) if n.is_finite() && (0.0..=max).contains(&n) => Ok(n),
        Ok(n) if n.is_finite() && n > max => {
            Err(err(format!("option '{option}': {v} is out of range (at most {max})")))
        }
        _ => Err(err(format!("option '{option}': expected a number >= 0, got '{v}'"))),
    };
    for &(option, v) in &options {
        match option {
            "ha" => settings.crs_mode = CrsMode::parse(v).ok_or_else(|| enumerated(option, v, CRS_MODES))?,
            "ha-rebalance-on-start" => settings.rebalance_on_start = boolean(option, v)?,
            "ha-auto-rebalance" => settings.auto_rebalance = boolean(option, v)?,
            "ha-auto-rebalance-threshold" => {
                settings.rebalance_threshold = number(option, v, MAX_REBALANCE_FACTOR)?;
            }
            "ha-auto-rebalance-method" => {
                settings.rebalance_method =
                    RebalanceMethod::parse(v).ok_or_else(|| enumerated(option, v, REBALANCE_METHODS))?;
            }
            "ha-auto-rebalance-hold-duration" => {
                settings.rebalance_hold_rounds = number(option, v, MAX_HOLD_ROUNDS)?;
            }
            "ha-auto-rebalance-margin" => settings.rebalance_margin = number(option, v, MAX_REBALANCE_FACTOR)?,
            other => return Err(err(format!("unknown option '{other}'"))),
        }
    }
    let given = |option: &str| options.iter().any(|(o, _)| *o == option);
    if given("ha-auto-rebalance-threshold") && !given("ha-auto-rebalance") {
        return Err(err(
            "option 'ha-auto-rebalance-threshold' requires 'ha-auto-rebalance'".to_string()
        ));
    }
    Ok(())
}

/// Reads the HA settings of datacenter.cfg text; what is not given keeps
/// its default ([`DatacenterSettings::default`]).
pub fn parse_datacenter(text: &str) -> Result<DatacenterSettings, ConfigError> {
    let mut settings = DatacenterSettings::default();
    let mut seen: Vec<(&str, usize)> = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        let line = index + 1;
        let trimmed = raw.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let key_and_value = trimmed
            .split_once(':')
            .map(|(k, v)| (k.trim(), v.trim()))
            .filter(|(k, _)| !k.is_empty() && !k.contains(char::is_whitespace));
        let Some((key, value)) = key_and_value else {
            return Err(ConfigError::at(
                line,
                format!("expected '<key>: <value>', got '{trimmed}'"),
            ));
        };
        if !matches!(key, "ha" | "crs") {
            continue;
        }
        if let Some((_, first)) = seen.iter().find(|(k, _)| *k == key) {
            return Err(ConfigError::key(
                line,
                "",
                key,
                format!("given twice (first on line {first})"),
            ));
        }
        seen.push((key, line));
        if key == "ha" {
            parse_ha(line, value, &mut settings)?;
        } else {
            parse_crs(line, value, &mut settings)?;
        }
    }
    Ok(settings)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_ha_and_crs_and_ignores_the_rest() {
        let text = "#Datacenter notes\nkeyboard: en-us\n\nha: shutdown_policy=migrate\n\
                    crs: ha=static,ha-rebalance-on-start=1,ha-auto-rebalance=1,ha-auto-rebalance-threshold=0.25,\
                    ha-auto-rebalance-method=topsis,ha-auto-rebalance-hold-duration=5,ha-auto-rebalance-margin=0.2\n\
                    migration: secure,network=10.0.0.0/24\n";
        let settings = parse_datacenter(text).unwrap();
        assert_eq!(
            settings,
            DatacenterSettings {
                shutdown_policy: ShutdownPolicy::Migrate,
                crs_mode: CrsMode::Static,
                rebalance_on_start: true,
                auto_rebalance: true,
                rebalance_threshold: 0.25,
                rebalance_method: RebalanceMethod::Topsis,
                rebalance_hold_rounds: 5.0,
                rebalance_margin: 0.2,
            }
        );
    }

    #[test]
    fn missing_keys_keep_their_defaults() {
        assert_eq!(parse_datacenter("").unwrap(), DatacenterSettings::default());
        let settings = parse_datacenter("crs: ha=dynamic\n").unwrap();
        assert_eq!(settings.crs_mode, CrsMode::Dynamic);
        assert_eq!(settings.shutdown_policy, ShutdownPolicy::Conditional);
        assert!(!settings.auto_rebalance);
        assert_eq!(settings.rebalance_threshold, 0.3);
    }

    #[test]
    fn bad_inputs_name_line_and_key() {
        let cases: Vec<(&str, &str, Option<&str>)> = vec![
            (
                "keyboard: de\nha: shutdown_policy=reboot\n",
                "line 2: key 'ha': option 'shutdown_policy': expected conditional, freeze, failover or migrate, got 'reboot'",
                Some("ha"),
            ),
            (
                "ha: policy=freeze\n",
                "line 1: key 'ha': unknown option 'policy'",
                Some("ha"),
            ),
            (
                "ha: freeze\n",
                "line 1: key 'ha': expected <option>=<value>, got 'freeze'",
                Some("ha"),
            ),
            (
                "crs: ha=fast\n",
                "line 1: key 'crs': option 'ha': expected basic, static or dynamic, got 'fast'",
                Some("crs"),
            ),
            (
                "\ncrs: ha=static,ha-rebalance-on-start=maybe\n",
                "line 2: key 'crs': option 'ha-rebalance-on-start': expected 0 or 1, got 'maybe'",
                Some("crs"),
            ),
            (
                "crs: ha=static,ha-auto-rebalance=1,ha-auto-rebalance-threshold=-0.1\n",
                "line 1: key 'crs': option 'ha-auto-rebalance-threshold': expected a number >= 0, got '-0.1'",
                Some("crs"),
            ),
            (
                "crs: ha=static,ha-auto-rebalance-threshold=0.5\n",
                "line 1: key 'crs': option 'ha-auto-rebalance-threshold' requires 'ha-auto-rebalance'",
                Some("crs"),
            ),
            (
                "crs: ha=static,ha-auto-rebalance=1,ha-auto-rebalance-method=greedy\n",
                "line 1: key 'crs': option 'ha-auto-rebalance-method': expected bruteforce or topsis, got 'greedy'",
                Some("crs"),
            ),
            (
                "crs: ha=static,ha-auto-rebalance-margin=x\n",
                "line 1: key 'crs': option 'ha-auto-rebalance-margin': expected a number >= 0, got 'x'",
                Some("crs"),
            ),
            (
                "crs: ha=static,ha-auto-rebalance-hold-duration=inf\n",
                "line 1: key 'crs': option 'ha-auto-rebalance-hold-duration': expected a number >= 0, got 'inf'",
                Some("crs"),
            ),
            (
                "crs: ha=static,ha-auto-rebalance-hold-duration=18446744073709551616\n",
                "line 1: key 'crs': option 'ha-auto-rebalance-hold-duration': 18446744073709551616 is out of range (at most 1000000)",
                Some("crs"),
            ),
            (
                "crs: ha=static,ha-auto-rebalance=1,ha-auto-rebalance-threshold=1e300\n",
                "line 1: key 'crs': option 'ha-auto-rebalance-threshold': 1e300 is out of range (at most 1000)",
                Some("crs"),
            ),
            (
                "crs: ha=static,ha-auto-rebalance-margin=1e400\n",
                "line 1: key 'crs': option 'ha-auto-rebalance-margin': expected a number >= 0, got '1e400'",
                Some("crs"),
            ),
            (
                "crs: ha=static,ha-auto-rebalance-margin=NaN\n",
                "line 1: key 'crs': option 'ha-auto-rebalance-margin': expected a number >= 0, got 'NaN'",
                Some("crs"),
            ),
            (
                "crs: ha=static,colour=red\n",
                "line 1: key 'crs': unknown option 'colour'",
                Some("crs"),
            ),
            (
                "crs: ha=static,ha=basic\n",
                "line 1: key 'crs': option 'ha' given twice",
                Some("crs"),
            ),
            (
                "crs: ha=static\nkeyboard: de\ncrs: ha=basic\n",
                "line 3: key 'crs': given twice (first on line 1)",
                Some("crs"),
            ),
            (
                "crs ha=static\n",
                "line 1: expected '<key>: <value>', got 'crs ha=static'",
                None,
            ),
        ];
        for (text, message, key) in cases {
            let err = parse_datacenter(text).unwrap_err();
            assert_eq!(err.to_string(), message, "{text:?}");
            assert_eq!(err.key.as_deref(), key, "{text:?}");
        }
    }
}
