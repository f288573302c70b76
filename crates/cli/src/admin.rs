//! The commands an operator runs on the machine itself, beside `dofs serve`:
//! backing up and restoring a data directory, and the shell completions and
//! man page made from the command line's own definition.
//!
//! Exit codes: 0 done; 2 refused (a file or directory in the way, a backup
//! that fails its checks, or a restore that could not be written); 1 a
//! backup that failed while copying.

use clap::{Args, Subcommand, ValueEnum};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Subcommand)]
pub enum AdminCommand {
    /// Copy the database of a data directory to a new file, while `dofs serve` runs on it.
    Backup(BackupArgs),
    /// Check a backup and put it into a new, empty data directory.
    Restore(RestoreArgs),
    /// Print a shell completion script (e.g. `dofs completions bash > /etc/bash_completion.d/dofs`).
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: Shell,
    },
    /// Print the man page (roff), e.g. `dofs man > /usr/local/share/man/man1/dofs.1`.
    Man,
    /// GET a local URL (plain http) and exit 0 on a 2XX: the container's health check.
    Probe {
        /// The URL to GET.
        #[arg(default_value = "http://127.0.0.1:8080/ready")]
        url: String,
        /// Give up after this many seconds.
        #[arg(long, default_value_t = 3)]
        timeout_s: u64,
    },
}

#[derive(Args)]
pub struct BackupArgs {
    /// The data directory `dofs serve` uses.
    #[arg(long, value_name = "DIR", default_value = "./dofs-data")]
    data_dir: PathBuf,
    /// The backup file to create; it must not exist.
    #[arg(long, value_name = "FILE")]
    to: PathBuf,
}

#[derive(Args)]
pub struct RestoreArgs {
    /// The backup file.
    #[arg(long, value_name = "FILE")]
    from: PathBuf,
    /// The new data directory: it must not exist or be empty.
    #[arg(long, value_name = "DIR")]
    data_dir: PathBuf,
}

/// The shells `dofs completions` knows.
#[derive(Clone, Copy, ValueEnum)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
    Elvish,
    Powershell,
}

/// Runs one admin command; `command` builds the whole command line's
/// definition (for the completions and the man page).
pub fn run(admin: AdminCommand, command: impl Fn() -> clap::Command) -> ExitCode {
    match admin {
        AdminCommand::Backup(args) => backup(&args),
        AdminCommand::Restore(args) => restore(&args),
        AdminCommand::Completions { shell } => {
            let mut cmd = command();
            let shell = match shell {
                Shell::Bash => clap_complete::Shell::Bash,
                Shell::Zsh => clap_complete::Shell::Zsh,
                Shell::Fish => clap_complete::Shell::Fish,
                Shell::Elvish => clap_complete::Shell::Elvish,
                Shell::Powershell => clap_complete::Shell::PowerShell,
            };
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut cmd, "dofs", &mut script);
            print_bytes("completions", &script)
        }
        AdminCommand::Probe { url, timeout_s } => {
            match crate::probe::get(&url, std::time::Duration::from_secs(timeout_s)) {
                Ok((status, body)) => {
                    println!("{status} {}", body.trim());
                    if (200..300).contains(&status) {
                        ExitCode::SUCCESS
                    } else {
                        ExitCode::FAILURE
                    }
                }
                Err(e) => {
                    eprintln!("dofs probe: {url}: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        AdminCommand::Man => {
            let mut page = Vec::new();
            match clap_mangen::Man::new(command()).render(&mut page) {
                Ok(()) => print_bytes("man", &page),
                Err(e) => {
                    eprintln!("dofs man: {e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

fn backup(args: &BackupArgs) -> ExitCode {
    if args.to.exists() {
        eprintln!(
            "dofs backup: {} already exists; a backup never overwrites a file: choose a new name",
            args.to.display()
        );
        return ExitCode::from(2);
    }
    match dofs_embedded::backup::backup(&args.data_dir, &args.to) {
        Ok(report) => {
            println!(
                "backed up {} to {} ({} bytes; the copy's snapshot was read in {} ms)",
                dofs_embedded::db::db_path(&args.data_dir).display(),
                report.file.display(),
                report.bytes,
                report.took.as_millis()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("dofs backup: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn restore(args: &RestoreArgs) -> ExitCode {
    match dofs_embedded::backup::restore(&args.from, &args.data_dir) {
        Ok(report) => {
            println!(
                "restored {} to {} (schema: {}); start it with `dofs serve --data-dir {}`",
                args.from.display(),
                report.file.display(),
                report.plan,
                args.data_dir.display()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("dofs restore: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// Writes `bytes` to stdout; a closed pipe (`| head`) is not a panic.
fn print_bytes(what: &str, bytes: &[u8]) -> ExitCode {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("dofs {what}: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The end of `dofs serve --help`: every setting with its environment
/// variable and default (the same table as `dofs serve --print-keys`).
pub fn serve_settings_help() -> String {
    let mut text = String::from(
        "Settings: a TOML file (--config), overridden by these environment variables, \
         overridden by the flags above.\n\n",
    );
    for (key, default, about) in crate::settings::KEYS {
        text.push_str(&format!(
            "  {key}\n      env: {}   default: {}\n      {about}\n",
            crate::settings::env_var(key),
            default.unwrap_or("(unset)")
        ));
    }
    text
}
