//! `dofs`: one binary. `dofs serve` runs the embedded system; the other
//! commands operate any deployment over HTTP (see [`commands`] for them and
//! their exit codes).

mod commands;
mod serve;
mod settings;

/// mimalloc: glibc malloc took about a tenth of the serving threads' time
/// under load (bench/PROFILE.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "dofs",
    version,
    about = "DOFS: a distributed order fulfillment system"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the whole pipeline in this process on one SQLite file.
    Serve {
        /// A TOML configuration file (overridden by DOFS_* variables, then by flags).
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// Address and port to listen on [default: 127.0.0.1:8080].
        #[arg(long, value_name = "ADDR")]
        bind: Option<String>,
        /// Directory holding dofs.db [default: ./dofs-data].
        #[arg(long, value_name = "DIR")]
        data_dir: Option<String>,
        /// Environment name [default: dev].
        #[arg(long = "env", value_name = "NAME")]
        environment: Option<String>,
        /// Print every configuration key with its environment variable and default, then exit.
        #[arg(long)]
        print_keys: bool,
    },
    #[command(flatten)]
    Client(commands::ClientCommand),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Client(command) => commands::run(command),
        Command::Serve {
            config,
            bind,
            data_dir,
            environment,
            print_keys,
        } => {
            if print_keys {
                for (key, default, about) in settings::KEYS {
                    println!(
                        "{key:30} {:36} {:16} {about}",
                        settings::env_var(key),
                        default.unwrap_or("(unset)")
                    );
                }
                return ExitCode::SUCCESS;
            }
            let flags = settings::Flags {
                bind,
                data_dir,
                environment,
            };
            let env = std::env::vars().collect();
            let settings = match settings::Settings::load(config.as_deref(), &env, &flags) {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("dofs serve: {e:#}");
                    return ExitCode::from(2);
                }
            };
            serve::init_logging(settings.json_logs);
            let runtime = match tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
            {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("dofs serve: cannot start the async runtime: {e}");
                    return ExitCode::FAILURE;
                }
            };
            match runtime.block_on(serve::run(settings)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("dofs serve: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}
