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
    /// Check configuration files, as promtool checks them.
    Check {
        #[command(subcommand)]
        what: CheckWhat,
    },
    /// Run unit tests, as promtool runs them.
    Test {
        #[command(subcommand)]
        what: TestWhat,
    },
    /// Custom eBPF programs in ebpf_exporter's format (`[programs]`).
    Programs {
        #[command(subcommand)]
        what: ProgramsWhat,
    },
    /// Print the HTTP requests a running sonde logged (the recent ones, or
    /// the slowest), from its /api/v1/requests.
    Requests {
        /// sonde's URL; without it, the `[server]` of --config (default
        /// http://127.0.0.1:9977).
        #[arg(long)]
        url: Option<String>,
        /// TOML config file sonde runs with, to find where it listens.
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Only this service (`service_name`).
        #[arg(long)]
        service: Option<String>,
        /// Only this route (`http_route`, e.g. /users/*).
        #[arg(long)]
        route: Option<String>,
        /// Only this status: a code (404), a class (5xx), or error (5xx
        /// and the gRPC codes a server is to blame for).
        #[arg(long)]
        status: Option<String>,
        /// Only requests that took at least this long (100ms, 2s).
        #[arg(long)]
        min_duration: Option<String>,
        /// The slowest first (of the recent ones and the slowest per route
        /// of the last 15 minutes), not the newest first.
        #[arg(long)]
        slowest: bool,
        /// At most this many (0: every one kept).
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
    /// Measure a part of sonde on realistic data (see BENCHMARKS.md).
    Bench {
        #[command(subcommand)]
        what: Bench,
    },
}

#[derive(Subcommand)]
enum ProgramsWhat {
    /// Check NAME.yaml configs against their NAME.bpf.o objects (the maps'
    /// key and value sizes) without loading anything into the kernel; exits
    /// non-zero when one would be refused.
    Check {
        /// The directory of NAME.yaml and NAME.bpf.o pairs.
        dir: PathBuf,
        /// The configs to check; default: every NAME.yaml with a NAME.bpf.o.
        names: Vec<String>,
    },
}

#[derive(Subcommand)]
enum CheckWhat {
    /// Check Prometheus rule files (`promtool check rules`): exits non-zero
    /// when any file does not load.
    Rules {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Lint checks: duplicate-rules (rules of one name and labels), all
        /// (the same), or none.
        #[arg(long, value_name = "CHECKS", default_value = "duplicate-rules",
              value_parser = ["all", "duplicate-rules", "none"])]
        lint: String,
        /// Exit with status 3 when the lint finds problems.
        #[arg(long)]
        lint_fatal: bool,
    },
}

#[derive(Subcommand)]
enum TestWhat {
    /// Run rule unit-test files in promtool's format (`promtool test
    /// rules`): exits non-zero when any test fails.
    Rules {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Only run test groups whose name matches this regular expression
        /// (repeatable: any of them).
        #[arg(long, value_name = "REGEX")]
        run: Vec<String>,
    },
}

#[derive(Subcommand)]
enum Bench {
    /// The storage engine: bytes per sample, ingest and read rates, beside
    /// Prometheus's TSDB (promtool) on the same samples.
    Store {
        /// Print one JSON object on one line.
        #[arg(long)]
        json: bool,
        /// Keep the databases in this directory (default: a temporary one,
        /// removed afterwards).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Hours of data at a 10 s interval.
        #[arg(long, default_value_t = 24)]
        hours: u32,
        /// Series: a seeded uniform sample of the recorded ones, or "all".
        #[arg(long, default_value = "1000", value_parser = parse_series)]
        series: SeriesCount,
        /// Skip the Prometheus comparison (needs promtool).
        #[arg(long)]
        no_prometheus: bool,
        /// Instead of measuring, build the benchmark fixture from the data
        /// directory of a sonde run at a 10 s interval.
        #[arg(long, value_name = "DATA_DIR", requires = "fixture")]
        record_from: Option<PathBuf>,
        /// Where --record-from writes the fixture.
        #[arg(long, value_name = "FILE")]
        fixture: Option<PathBuf>,
    },
    /// Nanoseconds the syscalls collector adds per syscall (getppid loop),
    /// detached vs attached, beside bpftrace doing the same work.
    Syscalls {
        /// getppid calls per measurement.
        #[arg(long, default_value_t = 5_000_000)]
        calls: u64,
        /// Rounds (detached, sonde, bpftrace each); medians are reported.
        #[arg(long, default_value_t = 5)]
        rounds: u32,
        /// Leave bpftrace out (when it is not installed).
        #[arg(long)]
        no_bpftrace: bool,
    },
    /// Hold an empty program on sys_exit (raw_tp) for a while, printing
    /// "attached" once it is: the floor any capture at syscall exits pays,
    /// for a benchmark to run a workload under (benches/http_wrk.sh).
    EmptyExit {
        /// How long to hold it.
        #[arg(long, default_value_t = 60)]
        seconds: u64,
        /// Hold empty programs on the socket length tracepoints instead
        /// (sock_send_length, sock_recv_length, tp_btf): the floor of a
        /// capture run at socket I/O only.
        #[arg(long)]
        sockets: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Checks and tests print their own verdicts; a rule that fails under
    // test is part of the report, not a warning beside it.
    let default_level = match cli.command {
        Command::Check { .. } | Command::Test { .. } => "error",
        _ => "info",
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("SONDE_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level)),
        )
        .with_writer(std::io::stderr)
        // Colour codes only help a person at a terminal; in a file or the
        // journal they are noise.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let result = match cli.command {
        Command::Run { config } => load_config(config.clone())
            .and_then(|loaded| sonde::run::run(loaded, config.as_deref())),
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
        Command::Programs {
            what: ProgramsWhat::Check { dir, names },
        } => {
            let checked = sonde::collect::programs::check_dir(&dir, &names);
            for (name, result) in &checked {
                match result {
                    Ok(()) => println!("{name}: ok"),
                    Err(err) => println!("{name}: {err}"),
                }
            }
            return if !checked.is_empty() && checked.iter().all(|(_, r)| r.is_ok()) {
                ExitCode::SUCCESS
            } else {
                if checked.is_empty() {
                    eprintln!("sonde: no NAME.yaml with a NAME.bpf.o in {}", dir.display());
                }
                ExitCode::FAILURE
            };
        }
        Command::Check {
            what:
                CheckWhat::Rules {
                    files,
                    lint,
                    lint_fatal,
                },
        } => {
            use sonde::alert::check::{check_rules, Verdict};
            let checked = check_rules(
                &files,
                lint != "none",
                &mut std::io::stdout(),
                &mut std::io::stderr(),
            );
            return match checked {
                Ok(Verdict::LintProblems) if lint_fatal => ExitCode::from(3),
                Ok(Verdict::Passed | Verdict::LintProblems) => ExitCode::SUCCESS,
                Ok(Verdict::Failed) => ExitCode::FAILURE,
                Err(err) => {
                    eprintln!("sonde: {err}");
                    ExitCode::FAILURE
                }
            };
        }
        Command::Test {
            what: TestWhat::Rules { files, run },
        } => {
            let run = match run_filter(&run) {
                Ok(run) => run,
                Err(err) => {
                    eprintln!("sonde: --run: {err}");
                    return ExitCode::from(2);
                }
            };
            let passed = sonde::alert::unittest::test_rules(
                &files,
                run.as_ref(),
                &mut std::io::stdout(),
                &mut std::io::stderr(),
            );
            return verdict(passed);
        }
        Command::Requests {
            url,
            config,
            service,
            route,
            status,
            min_duration,
            slowest,
            limit,
        } => {
            let url = match url {
                Some(url) => Ok(url),
                None => load_config(config).map(|c| c.server.url()),
            };
            let params = [
                ("service", service),
                ("route", route),
                ("status", status),
                ("min_duration", min_duration),
                ("order", slowest.then(|| "slowest".to_string())),
                ("limit", Some(limit.to_string())),
            ]
            .into_iter()
            .filter_map(|(name, value)| Some((name, value?)))
            .collect();
            url.and_then(|url| {
                sonde::requests::print(
                    &sonde::requests::Ask { url, params },
                    &mut std::io::stdout(),
                )
            })
        }
        Command::Bench { what } => bench(what),
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

/// A test's exit status: 1 when something failed, as promtool.
fn verdict(passed: std::io::Result<bool>) -> ExitCode {
    match passed {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(err) => {
            eprintln!("sonde: {err}");
            ExitCode::FAILURE
        }
    }
}

/// `test rules --run`: any of the given expressions.
fn run_filter(patterns: &[String]) -> Result<Option<regex::Regex>, regex::Error> {
    if patterns.is_empty() {
        return Ok(None);
    }
    regex::Regex::new(&patterns.join("|")).map(Some)
}

fn load_config(path: Option<PathBuf>) -> anyhow::Result<Config> {
    match path {
        Some(path) => Config::load(&path),
        None => Ok(Config::default()),
    }
}

fn bench(what: Bench) -> anyhow::Result<()> {
    match what {
        Bench::Store {
            json,
            dir,
            hours,
            series,
            no_prometheus,
            record_from,
            fixture,
        } => {
            if let (Some(data), Some(out)) = (record_from, fixture) {
                let bytes = sonde::store::bench::record_fixture(&data)?;
                std::fs::write(&out, bytes)
                    .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", out.display()))?;
                return Ok(());
            }
            let options = sonde::store::bench::BenchOptions {
                dir,
                hours,
                series: series.0,
                prometheus: !no_prometheus,
            };
            let figures = sonde::store::bench::run(&options)?;
            if json {
                println!("{figures}");
            } else {
                println!("{}", serde_json::to_string_pretty(&figures)?);
            }
            Ok(())
        }
        Bench::Syscalls {
            calls,
            rounds,
            no_bpftrace,
        } => sonde::bench::syscalls::run(calls, rounds, !no_bpftrace),
        Bench::EmptyExit { seconds, sockets } => {
            sonde::bench::syscalls::hold_empty_exit(seconds, sockets)
        }
    }
}

/// `bench store --series`: how many recorded series, or all of them.
#[derive(Clone)]
struct SeriesCount(Option<usize>);

fn parse_series(arg: &str) -> Result<SeriesCount, String> {
    if arg == "all" {
        return Ok(SeriesCount(None));
    }
    arg.parse()
        .map(|n| SeriesCount(Some(n)))
        .map_err(|_| format!("expected a number of series or \"all\", got {arg:?}"))
}
