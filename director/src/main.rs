//! `gatehouse-director`: answers each new AnyConnect client with a redirect to the least
//! loaded slot of the cluster (DESIGN.md §6). Stateless: run as many replicas as you like.

mod app;
mod config;
mod metrics;
mod placer;
mod redirect;
mod watch;

use clap::Parser;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "gatehouse-director",
    version,
    about = "Gatehouse director: redirects new clients to a slot"
)]
struct Cli {
    /// Config file (`gatehouse init --directors ...` writes `director-<j>/director.toml`).
    #[arg(short, long, default_value = "/etc/gatehouse/director.toml")]
    config: PathBuf,
    /// Check the config file and exit (0 = valid, 64 = invalid).
    #[arg(long)]
    check: bool,
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let cfg = match config::DirectorConfig::load(&cli.config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("gatehouse-director: bad config: {e}");
            return ExitCode::from(64);
        }
    };
    if cli.check {
        eprintln!("{}: ok", cli.config.display());
        return ExitCode::SUCCESS;
    }
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("gatehouse-director: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match rt.block_on(app::run(cfg)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("gatehouse-director: {e:#}");
            ExitCode::from(1)
        }
    }
}
