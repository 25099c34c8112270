//! `ha-manager`: configure and control the HA stack through the local
//! `hactor` daemon (see `hactor::cli`).

fn main() -> std::process::ExitCode {
    hactor::cli::run_os(std::env::args_os())
}
