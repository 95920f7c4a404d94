//! The `sonde` command line.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use sonde::config::Config;

#[derive(Parser)]
#[command(
    name = "sonde",
    version,
    about = "Observe this Linux server: node and eBPF metrics, storage, dashboard, Prometheus APIs."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Collect, store and serve metrics until stopped (SIGINT or SIGTERM).
    Run {
        /// TOML config file; without it every key takes its default
        /// (documented in packaging/sonde.toml).
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Check what this machine lets sonde collect: kernel, BTF, bpf(), each
    /// attach kind (by loading and firing a tiny program), capabilities,
    /// tracefs and every BPF collector. Exits non-zero when no kernel metrics
    /// can be collected. SONDE_BPF_REFUSE=name,... makes the named attach
    /// kinds or collectors fail as if the kernel refused them.
    Doctor {
        /// TOML config file, to honour its [collect.bpf] switches.
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Print sonde's version.
    Version,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("SONDE_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        // Colour codes only help a person at a terminal; in a file or the
        // journal they are noise.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let result = match cli.command {
        Command::Run { config } => load_config(config).and_then(sonde::run::run),
        Command::Doctor { config } => {
            return match load_config(config) {
                Ok(config) if sonde::doctor::doctor(&config) => ExitCode::SUCCESS,
                Ok(_) => ExitCode::FAILURE,
                Err(err) => {
                    eprintln!("sonde: {err:#}");
                    ExitCode::from(2)
                }
            };
        }
        Command::Version => {
            println!("sonde {}", env!("CARGO_PKG_VERSION"));
            Ok(())
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("sonde: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn load_config(path: Option<PathBuf>) -> anyhow::Result<Config> {
    match path {
        Some(path) => Config::load(&path),
        None => Ok(Config::default()),
    }
}
