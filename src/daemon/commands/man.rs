//! `hactor man` and `hactor completions`: the manual page and the shell
//! completions, made from the argument definitions (`daemon::args`).

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use clap::CommandFactory;

use crate::daemon::args::Cli;

/// Writes `bytes` to stdout; a reader that went away is no error.
fn write_out(bytes: &[u8]) -> ExitCode {
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(bytes).and_then(|()| stdout.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            eprintln!("hactor: cannot write the output: {e}");
            ExitCode::FAILURE
        }
        _ => ExitCode::SUCCESS,
    }
}

/// `hactor man`: the manual page from the argument definitions.
pub fn man(output: Option<&Path>) -> ExitCode {
    let mut page = Vec::new();
    if let Err(e) = clap_mangen::Man::new(Cli::command()).render(&mut page) {
        eprintln!("hactor: cannot render the man page: {e}");
        return ExitCode::FAILURE;
    }
    match output {
        Some(path) => match std::fs::write(path, page) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("hactor: cannot write {}: {e}", path.display());
                ExitCode::FAILURE
            }
        },
        None => write_out(&page),
    }
}

/// `hactor completions <shell>`: the completion script of `shell`.
pub fn completions(shell: clap_complete::Shell) -> ExitCode {
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "hactor", &mut script);
    write_out(&script)
}
