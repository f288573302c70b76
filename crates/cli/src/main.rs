//! `dofs`: one binary. `dofs serve` runs the embedded system; the other
//! commands operate any deployment over HTTP (see [`commands`] for them and
//! their exit codes).

mod admin;
mod commands;
mod probe;
mod serve;
mod settings;

/// mimalloc: glibc malloc took about a tenth of the serving threads' time
/// under load (bench/PROFILE.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::{CommandFactory, Parser, Subcommand};
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
    #[command(after_long_help = admin::serve_settings_help())]
    Serve {
        /// A TOML configuration file (overridden by DOFS_* variables, then by flags).
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// Address and port to listen on [env: DOFS_SERVER_BIND] [default: 127.0.0.1:8080].
        #[arg(long, value_name = "ADDR")]
        bind: Option<String>,
        /// Directory holding dofs.db [env: DOFS_STORAGE_DATA_DIR] [default: ./dofs-data].
        #[arg(long, value_name = "DIR")]
        data_dir: Option<String>,
        /// Environment name [env: DOFS_ENVIRONMENT] [default: dev].
        #[arg(long = "env", value_name = "NAME")]
        environment: Option<String>,
        /// Print every configuration key with its environment variable and default, then exit.
        #[arg(long)]
        print_keys: bool,
    },
    /// Bring a data directory's database to this build's schema (`dofs serve`
    /// does it at start); with --check, only say what would be done.
    Migrate {
        /// Directory holding dofs.db.
        #[arg(long, value_name = "DIR", default_value = "./dofs-data")]
        data_dir: PathBuf,
        /// Say what would be done, change nothing (exit 2 if this build cannot open it
        /// or its disk lacks the room the migration needs).
        #[arg(long)]
        check: bool,
    },
    #[command(flatten)]
    Client(commands::ClientCommand),
    #[command(flatten)]
    Admin(admin::AdminCommand),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Client(command) => commands::run(command),
        Command::Admin(command) => admin::run(command, Cli::command),
        Command::Migrate { data_dir, check } => migrate(&data_dir, check),
        Command::Serve {
            config,
            bind,
            data_dir,
            environment,
            print_keys,
        } => {
            if print_keys {
                // Written whole, so `--print-keys | head` ends quietly
                // instead of panicking on the closed pipe.
                let mut text = String::new();
                for (key, default, about) in settings::KEYS {
                    text.push_str(&format!(
                        "{key:30} {:36} {:16} {about}\n",
                        settings::env_var(key),
                        default.unwrap_or("(unset)")
                    ));
                }
                let _ = std::io::Write::write_all(&mut std::io::stdout(), text.as_bytes());
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
                    // The data directory or its file cannot be used as they are.
                    let refused = e
                        .chain()
                        .any(|c| c.is::<dofs_embedded::preflight::StartupRefused>());
                    ExitCode::from(if refused { 2 } else { 1 })
                }
            }
        }
    }
}

/// `dofs migrate [--check]`.
fn migrate(data_dir: &std::path::Path, check: bool) -> ExitCode {
    let path = dofs_embedded::db::db_path(data_dir);
    let plan = match dofs_embedded::db::inspect(data_dir) {
        Ok(Some(plan)) => plan,
        Ok(None) => {
            println!(
                "{}: no database yet; `dofs serve` creates one at schema version {}",
                path.display(),
                dofs_embedded::db::SCHEMA_VERSION
            );
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("dofs migrate: {e:#}");
            return ExitCode::from(2);
        }
    };
    use dofs_embedded::db::{Room, SchemaPlan};
    let done = matches!(plan, SchemaPlan::Current);
    if check || done {
        println!("{}: {plan}", path.display());
        if let SchemaPlan::Migrate { from } = plan {
            // Start-up checks the same room and refuses without it.
            match Room::check(from, &path) {
                Ok(room) if room.needed > 0 => {
                    println!(
                        "{}: the migration {} and {room}",
                        path.display(),
                        Room::writes(from)
                    );
                }
                Ok(_) => {}
                Err(e) => {
                    eprintln!("dofs migrate: start-up would refuse: {e:#}");
                    return ExitCode::from(2);
                }
            }
        }
        return ExitCode::SUCCESS;
    }
    match dofs_embedded::Db::open(data_dir) {
        Ok(_) => {
            println!("{}: {plan}: done", path.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("dofs migrate: {e:#}");
            ExitCode::FAILURE
        }
    }
}
