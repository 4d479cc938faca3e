//! `gatehouse`: run a node from its config, or a local demo node with embedded defaults.

use clap::{Parser, Subcommand};
use gatehouse_node::config::{demo_config, Config};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "gatehouse", version, about = "Gatehouse VPN headend node")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run a node from its TOML config.
    Run {
        /// Config file.
        #[arg(short, long, default_value = "/etc/gatehouse/node.toml")]
        config: PathBuf,
    },
    /// Check a config file and exit (0 = valid, 64 = invalid).
    Check {
        /// Config file.
        #[arg(short, long)]
        config: PathBuf,
    },
    /// Write a cluster: a cluster CA, and per node a certificate and a config
    /// (`DIR/node-<id>/node.toml`). Nodes form the group on first start.
    Init {
        /// Cluster name.
        #[arg(long)]
        cluster: String,
        /// Number of nodes (ids 1..=N).
        #[arg(long)]
        nodes: usize,
        /// Output directory.
        #[arg(long, default_value = "gatehouse-cluster")]
        dir: PathBuf,
        /// Node addresses, comma-separated, in id order (default 127.0.0.1..N on loopback).
        #[arg(long, value_delimiter = ',')]
        addrs: Vec<std::net::IpAddr>,
        /// Client-facing port.
        #[arg(long, default_value_t = 443)]
        client_port: u16,
        /// Cluster port.
        #[arg(long, default_value_t = 7443)]
        cluster_port: u16,
        /// Address pool shared by the cluster.
        #[arg(long, default_value = "10.99.0.0/24")]
        pool: String,
        /// Director addresses, comma-separated (writes DIR/director-<j>/).
        #[arg(long, value_delimiter = ',')]
        directors: Vec<std::net::IpAddr>,
    },
    /// Run a local node with embedded defaults: writes DIR/node.toml and a demo user on first
    /// start, a self-signed certificate, sled in DIR/data; prints how to connect.
    Demo {
        /// Directory for config, users and data.
        #[arg(long, default_value = "gatehouse-demo")]
        dir: PathBuf,
        /// Client-facing listener.
        #[arg(long, default_value = "127.0.0.1:8443")]
        listen: String,
    },
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,openraft=warn,sled=warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let path = match cli.cmd {
        Cmd::Run { config } => config,
        Cmd::Check { config } => {
            return match Config::load(&config) {
                Ok(_) => {
                    eprintln!("{}: ok", config.display());
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("gatehouse: bad config: {e}");
                    ExitCode::from(64)
                }
            };
        }
        Cmd::Init { cluster, nodes, dir, addrs, client_port, cluster_port, pool, directors } => {
            let addrs = if addrs.is_empty() {
                (1..=nodes)
                    .map(|i| std::net::IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, i as u8)))
                    .collect()
            } else {
                addrs
            };
            if nodes == 0 || addrs.len() != nodes {
                eprintln!(
                    "gatehouse init: --nodes {nodes} needs {nodes} --addrs (got {})",
                    addrs.len()
                );
                return ExitCode::from(64);
            }
            let plan = gatehouse_node::cluster::pki::InitPlan {
                cluster: &cluster,
                dir: &dir,
                addrs,
                client_port,
                cluster_port,
                pool: &pool,
                directors,
            };
            return match gatehouse_node::cluster::pki::init(plan) {
                Ok(()) => {
                    eprintln!(
                        "wrote {}/ca.pem and node-1 … node-{nodes}: start each with `gatehouse run --config {}/node-<id>/node.toml`",
                        dir.display(),
                        dir.display()
                    );
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("gatehouse init: {e:#}");
                    ExitCode::from(1)
                }
            };
        }
        Cmd::Demo { dir, listen } => match prepare_demo(&dir, &listen) {
            Ok(p) => p,
            Err(e) => {
                eprintln!("gatehouse: {e:#}");
                return ExitCode::from(1);
            }
        },
    };
    let cfg = match Config::load(&path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("gatehouse: bad config: {e}");
            return ExitCode::from(64);
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("gatehouse: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match rt.block_on(gatehouse_node::app::run(cfg)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("gatehouse: {e:#}");
            ExitCode::from(1)
        }
    }
}

/// Demo user created on first start of `gatehouse demo`.
const DEMO_USER: &str = "demo";
const DEMO_PASSWORD: &str = "gatehouse-demo";

fn prepare_demo(dir: &std::path::Path, listen: &str) -> anyhow::Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    let cfg = dir.join("node.toml");
    if !cfg.exists() {
        std::fs::write(&cfg, demo_config("data", listen))?;
    }
    let users = dir.join("users.toml");
    if !users.exists() {
        gatehouse_node::edge::users::add_user(&users, DEMO_USER, DEMO_PASSWORD)?;
    }
    let c = Config::load(&cfg).map_err(|e| anyhow::anyhow!("{e}"))?;
    let pin = gatehouse_node::tls::load_or_generate(c.tls.as_ref(), &c.data_dir)?.pin;
    eprintln!(
        "\nGatehouse demo node\n  config : {}\n  user   : {DEMO_USER} / {DEMO_PASSWORD}\n  connect: echo {DEMO_PASSWORD} | sudo openconnect --protocol=anyconnect --servercert {pin} -u {DEMO_USER} --passwd-on-stdin https://{}/\n  sessions: gatehousectl show vpn-sessiondb detail\n",
        cfg.display(),
        c.listen
    );
    Ok(cfg)
}
