//! The node configuration as the daemon and its membership commands read
//! it, with the state directory made ready.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::node::config::{DEFAULT_CONFIG, NodeConfig, prepare_state_dir};

/// Loads the configuration at `path` (the host's default without one)
/// and prepares its state directory; on failure, says why on stderr and
/// gives the exit code: 2 for a configuration that cannot be read or is
/// refused (with a hint at `--config` when `hint` and the file does not
/// exist), 1 for a state directory that cannot be used.
pub fn load_config(path: Option<PathBuf>, hint: bool) -> Result<(PathBuf, NodeConfig), ExitCode> {
    let config_path = path.unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG));
    let config = match NodeConfig::load(&config_path) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("hactor: {e}");
            if hint && !config_path.exists() {
                eprintln!("hactor: give --config <file> (see config/hactor.example.toml)");
            }
            return Err(ExitCode::from(2));
        }
    };
    if let Err(e) = prepare_state_dir(&config.state_dir) {
        eprintln!("hactor: {}: {e}", config_path.display());
        return Err(ExitCode::FAILURE);
    }
    Ok((config_path, config))
}
