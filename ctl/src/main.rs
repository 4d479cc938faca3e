//! `gatehousectl`: the operator's command line, in the reference headend's words.
//! Exit codes: 0 ok, 1 the node could not be reached or refused, 2 usage.
// Printing the answer is this binary's job.
#![allow(clippy::print_stdout)]

use clap::{Parser, Subcommand};
use gatehouse_ctl::client::{Admin, RpcError, ADMIN_ENV, DEFAULT_ADMIN};
use gatehouse_ctl::words::{self, SelectorText, UsageError};
use gatehouse_ctl::{json, show};
use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "gatehousectl", version, about = "Operate a Gatehouse VPN headend node")]
struct Cli {
    /// Admin API address of the node (its admin_listen) [default: 127.0.0.1:8444, or $GATEHOUSE_ADMIN]
    #[arg(long, global = true, value_name = "ADDR")]
    admin: Option<String>,
    /// Print JSON instead of the headend layout.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Show state.
    Show {
        #[command(subcommand)]
        what: ShowCmd,
    },
    /// Act on sessions.
    #[command(name = "vpn-sessiondb")]
    VpnSessiondb {
        #[command(subcommand)]
        action: SessionDbCmd,
    },
    /// Manage local users (works offline, on the users file).
    User {
        #[command(subcommand)]
        action: UserCmd,
    },
    /// Failover of slots.
    Failover {
        #[command(subcommand)]
        action: FailoverCmd,
    },
    /// Failover drill: move a slot (crash its owner, or switch gracefully, or watch a fault
    /// you inject yourself) and report sessions lost, resumes, re-logins and blackout. Run a
    /// kill or watch drill from another node.
    Drill {
        /// The slot.
        #[arg(long)]
        slot: u32,
        /// Crash the owner's process.
        #[arg(long, conflicts_with_all = ["switch", "watch"])]
        kill: bool,
        /// Graceful switchover (default).
        #[arg(long, conflicts_with = "watch")]
        switch: bool,
        /// Request no move: watch while you inject the fault (docker kill, docker pause,
        /// kill -STOP, a partition), then report.
        #[arg(long)]
        watch: bool,
        /// Seconds to wait for the sessions to come back.
        #[arg(long, default_value_t = 30)]
        timeout: u64,
    },
    /// Cluster membership (run on the leader).
    Cluster {
        #[command(subcommand)]
        action: ClusterCmd,
    },
}

#[derive(Subcommand)]
enum FailoverCmd {
    /// Move slot N to its standby without a kill (run on the slot's owner).
    Switch {
        #[arg(long)]
        slot: u32,
    },
}

#[derive(Subcommand)]
enum ClusterCmd {
    /// Add node ID reachable at ADDR (host:cluster-port): learner, then voter.
    #[command(name = "add-node")]
    AddNode { id: u64, addr: String },
    /// Remove node ID from the voters.
    #[command(name = "remove-node")]
    RemoveNode { id: u64 },
}

#[derive(Subcommand)]
enum ShowCmd {
    /// Raft members, leader, term, commit and applied index, each node's lag.
    Cluster,
    /// Slots, owners, standbys, epochs, lease ages, sessions.
    Failover,
    /// show vpn-sessiondb [detail] [filter inactive | filter name U | filter ipaddress A | filter tunnel-group G]
    #[command(name = "vpn-sessiondb")]
    VpnSessiondb {
        /// [detail] [filter inactive | name U | ipaddress A | tunnel-group G]
        #[arg(value_name = "WORDS")]
        words: Vec<String>,
    },
}

#[derive(Subcommand)]
enum SessionDbCmd {
    /// vpn-sessiondb logoff index N | name U | tunnel-group G | protocol P | inactive | all
    Logoff {
        /// index N | name U | tunnel-group G | protocol P | inactive | all [noconfirm]
        #[arg(value_name = "WORDS", required = true)]
        words: Vec<String>,
        /// Do not ask for confirmation (it is asked only when stdin is a terminal).
        #[arg(long)]
        noconfirm: bool,
    },
}

#[derive(Subcommand)]
enum UserCmd {
    /// Add or replace a user; the password is read from stdin (first line).
    Add {
        /// User name.
        name: String,
        /// Users file of the node (its users_file).
        #[arg(long, default_value = "/etc/gatehouse/users.toml")]
        users_file: PathBuf,
    },
}

enum Failure {
    /// Exit 2, with the usage line of the command when there is one.
    Usage(String, Option<&'static str>),
    /// Exit 1.
    Failed(String),
}

impl From<RpcError> for Failure {
    fn from(e: RpcError) -> Self {
        if e.is_usage() {
            Failure::Usage(e.to_string(), None)
        } else {
            Failure::Failed(e.to_string())
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let admin = cli
        .admin
        .clone()
        .or_else(|| std::env::var(ADMIN_ENV).ok().filter(|a| !a.is_empty()))
        .unwrap_or_else(|| DEFAULT_ADMIN.to_string());
    let result = match cli.cmd {
        Cmd::User { action: UserCmd::Add { name, users_file } } => add_user(&name, &users_file),
        Cmd::Show { what: ShowCmd::Failover } => block_on(failover(None, &admin, cli.json)),
        Cmd::Failover { action: FailoverCmd::Switch { slot } } => {
            block_on(failover(Some(slot), &admin, cli.json))
        }
        Cmd::Drill { slot, kill, switch: _, watch, timeout } => {
            block_on(drill(slot, kill, watch, timeout, &admin, cli.json))
        }
        Cmd::Show { what: ShowCmd::Cluster } => {
            block_on(cluster(ClusterOp::Show, &admin, cli.json))
        }
        Cmd::Cluster { action: ClusterCmd::AddNode { id, addr } } => {
            block_on(cluster(ClusterOp::Add(id, addr), &admin, cli.json))
        }
        Cmd::Cluster { action: ClusterCmd::RemoveNode { id } } => {
            block_on(cluster(ClusterOp::Remove(id), &admin, cli.json))
        }
        Cmd::Show { what: ShowCmd::VpnSessiondb { words } } => {
            block_on(show_sessions(words, &admin, cli.json))
        }
        Cmd::VpnSessiondb { action: SessionDbCmd::Logoff { words, noconfirm } } => {
            block_on(logoff(words, noconfirm, &admin, cli.json))
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Usage(m, usage)) => {
            eprintln!("gatehousectl: {m}");
            match usage {
                Some(u) => eprintln!("usage: {u}"),
                None => eprintln!("(see gatehousectl --help)"),
            }
            ExitCode::from(2)
        }
        Err(Failure::Failed(m)) => {
            eprintln!("gatehousectl: {m}");
            ExitCode::from(1)
        }
    }
}

fn block_on(f: impl std::future::Future<Output = Result<(), Failure>>) -> Result<(), Failure> {
    match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt.block_on(f),
        Err(e) => Err(Failure::Failed(format!("cannot start the runtime: {e}"))),
    }
}

async fn failover(switch: Option<u32>, addr: &str, as_json: bool) -> Result<(), Failure> {
    let mut admin = Admin::connect(addr).await?;
    let reply = match switch {
        None => admin.show_failover().await?,
        Some(slot) => admin.failover_switch(slot).await?,
    };
    if as_json {
        print_json(&gatehouse_ctl::failover::FailoverJson::from(&reply))
    } else {
        print!("{}", gatehouse_ctl::failover::render(&reply));
        Ok(())
    }
}

async fn drill(
    slot: u32,
    kill: bool,
    watch: bool,
    timeout_s: u64,
    addr: &str,
    as_json: bool,
) -> Result<(), Failure> {
    let mut admin = Admin::connect(addr).await?;
    let report = admin.drill(slot, kill, watch, timeout_s * 1000).await?;
    if as_json {
        print_json(&gatehouse_ctl::failover::DrillJson::from(&report))
    } else {
        print!("{}", gatehouse_ctl::failover::render_drill(&report));
        Ok(())
    }
}

enum ClusterOp {
    Show,
    Add(u64, String),
    Remove(u64),
}

async fn cluster(op: ClusterOp, addr: &str, as_json: bool) -> Result<(), Failure> {
    let mut admin = Admin::connect(addr).await?;
    let reply = match op {
        ClusterOp::Show => admin.show_cluster().await?,
        ClusterOp::Add(id, a) => admin.add_node(id, a).await?,
        ClusterOp::Remove(id) => admin.remove_node(id).await?,
    };
    if as_json {
        print_json(&gatehouse_ctl::cluster::ClusterJson::from(&reply))
    } else {
        print!("{}", gatehouse_ctl::cluster::render(&reply));
        Ok(())
    }
}

async fn show_sessions(words: Vec<String>, addr: &str, as_json: bool) -> Result<(), Failure> {
    let q = words::parse_show(&words).map_err(|e| usage(e, words::SHOW_USAGE))?;
    let reply = Admin::connect(addr).await?.show_sessions(q.filter).await?;
    if as_json {
        print_json(&json::SessionsJson::from(&reply))
    } else {
        print!("{}", show::render(&reply, q.detail));
        Ok(())
    }
}

async fn logoff(
    words: Vec<String>,
    noconfirm: bool,
    addr: &str,
    as_json: bool,
) -> Result<(), Failure> {
    let q = words::parse_logoff(&words).map_err(|e| usage(e, words::LOGOFF_USAGE))?;
    let mut admin = Admin::connect(addr).await?;
    // Scripts and test harnesses have no terminal to answer on: only a person is asked.
    let interactive = std::io::stdin().is_terminal();
    let confirmed = noconfirm || q.noconfirm || !interactive || confirm()?;
    if !confirmed {
        return Err(Failure::Failed("logoff not confirmed; nothing was logged off".into()));
    }
    let what = SelectorText(&q.selector).to_string();
    let reply = admin.logoff(q.selector).await?;
    if as_json {
        let logged_off = reply.indices.len();
        print_json(&json::LogoffJson { selector: what, logged_off, indices: reply.indices })
    } else {
        println!("INFO: Number of sessions from {what} logged off : {}", reply.indices.len());
        Ok(())
    }
}

fn usage(e: UsageError, line: &'static str) -> Failure {
    Failure::Usage(e.0, Some(line))
}

fn print_json<T: serde::Serialize>(v: &T) -> Result<(), Failure> {
    let text = json::to_string(v).map_err(|e| Failure::Failed(format!("JSON output: {e}")))?;
    println!("{text}");
    Ok(())
}

/// The headend's prompt; Enter, `y`, `yes` or `confirm` go ahead.
fn confirm() -> Result<bool, Failure> {
    eprint!("Do you want to logoff the VPN session(s)? [confirm] ");
    let _ = std::io::stderr().flush();
    let mut line = String::new();
    match std::io::stdin().lock().read_line(&mut line) {
        Ok(0) => Ok(false),
        Ok(_) => {
            Ok(matches!(line.trim().to_ascii_lowercase().as_str(), "" | "y" | "yes" | "confirm"))
        }
        Err(e) => Err(Failure::Failed(format!("reading the confirmation: {e}"))),
    }
}

fn add_user(name: &str, users_file: &Path) -> Result<(), Failure> {
    let password = read_password(name)?;
    if password.is_empty() {
        return Err(Failure::Usage(
            "empty password refused; give it on the first line of stdin".into(),
            Some("echo PASSWORD | gatehousectl user add NAME [--users-file PATH]"),
        ));
    }
    gatehouse_runtime::users::add_user(users_file, name, &password)
        .map_err(|e| Failure::Failed(format!("{e:#}")))?;
    println!(
        "INFO: user {name} saved in {} (the node picks it up at the next login)",
        users_file.display()
    );
    Ok(())
}

/// The first line of stdin without its line ending. On a terminal, prompt and turn echo off
/// with stty(1) (best effort: the workspace forbids the unsafe termios calls).
fn read_password(name: &str) -> Result<String, Failure> {
    let tty = std::io::stdin().is_terminal();
    let stty = |arg: &str| {
        let _ = std::process::Command::new("stty")
            .arg(arg)
            .stdin(std::process::Stdio::inherit())
            .status();
    };
    if tty {
        eprint!("Password for {name}: ");
        let _ = std::io::stderr().flush();
        stty("-echo");
    }
    let mut line = String::new();
    let r = std::io::stdin().lock().read_line(&mut line);
    if tty {
        stty("echo");
        eprintln!();
    }
    r.map_err(|e| Failure::Failed(format!("reading the password from stdin: {e}")))?;
    let line = line.strip_suffix('\n').unwrap_or(&line);
    Ok(line.strip_suffix('\r').unwrap_or(line).to_string())
}
