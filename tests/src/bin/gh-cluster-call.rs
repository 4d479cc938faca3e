//! `gh-cluster-call`: one call to a node's cluster port with a certificate of our choosing, as
//! an attacker holding a director's (or another node's) key would make it. Prints `OK` or the
//! gRPC status code's name (`PermissionDenied`, …) and the message, exit 0; exit 1 only when
//! no call could be made (no connection, bad files).
//!
//! ```text
//! gh-cluster-call CA CERT KEY ADDR TARGET_NODE forward|append|vote|drill|watch [AS_NODE]
//! ```
//! - `forward`: a `Login` of user `intruder` with a token hash of our choosing, forwarded as a
//!   follower forwards writes;
//! - `append` / `vote`: an AppendEntries (empty) / a Vote with term 1,000,000 claiming to come
//!   from node `AS_NODE` (default 1);
//! - `drill`: a crash drill move of slot 1;
//! - `watch`: the directors' slot-table stream (its first table).
#![allow(clippy::print_stdout)]

use anyhow::{bail, Context, Result};
use gatehouse_core::{Command, NewSession, PoolRange, SessionTimers, TokenHash, UnixMillis};
use gatehouse_node::cluster::pb::{
    drill_client::DrillClient, forwarded_writes_client::ForwardedWritesClient,
    raft_client::RaftClient, slot_watch_client::SlotWatchClient, Payload,
};
use gatehouse_node::cluster::ClusterTls;
use gatehouse_node::db::Tc;
use openraft::raft::{AppendEntriesRequest, VoteRequest};
use openraft::Vote;
use std::net::Ipv4Addr;
use tonic::transport::{Certificate, Endpoint, Identity};

fn payload<T: serde::Serialize>(v: &T) -> Result<tonic::Request<Payload>> {
    Ok(tonic::Request::new(Payload { json: serde_json::to_vec(v)? }))
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<()> {
    let a: Vec<String> = std::env::args().skip(1).collect();
    if a.len() < 6 {
        bail!("usage: gh-cluster-call CA CERT KEY ADDR TARGET_NODE forward|append|vote|drill|watch [AS_NODE]");
    }
    let read = |p: &str| std::fs::read(p).with_context(|| format!("reading {p}"));
    let tls = ClusterTls {
        identity: Identity::from_pem(read(&a[1])?, read(&a[2])?),
        ca: Certificate::from_pem(read(&a[0])?),
    };
    let target: u64 = a[4].parse().context("TARGET_NODE")?;
    let as_node: u64 = a.get(6).map_or(Ok(1), |s| s.parse()).context("AS_NODE")?;
    let ch = Endpoint::from_shared(format!("https://{}", a[3]))?
        .tls_config(tls.client(target))?
        .connect()
        .await
        .with_context(|| format!("connecting {}", a[3]))?;
    let vote = Vote::new_committed(1_000_000, as_node);
    let result = match a[5].as_str() {
        "forward" => {
            let login = Command::Login(NewSession {
                at: UnixMillis(0),
                user: "intruder".into(),
                tunnel_group: "DefaultWEBVPNGroup".into(),
                group_policy: "DfltGrpPolicy".into(),
                timers: SessionTimers {
                    idle_timeout: None,
                    disconnected_timeout: None,
                    max_connect_time: None,
                    simultaneous_logins: 100,
                    auto_reconnect: true,
                },
                pool: PoolRange {
                    name: "intruder".into(),
                    first: Ipv4Addr::new(10, 250, 0, 2),
                    last: Ipv4Addr::new(10, 250, 0, 200),
                },
                token_hash: TokenHash([7; 32]),
                client_version: "gh-cluster-call".into(),
                public_ip: "192.0.2.1".into(),
                slot: None,
            });
            ForwardedWritesClient::new(ch).forward(payload(&vec![login])?).await.map(|_| ())
        }
        "append" => {
            let req = AppendEntriesRequest::<Tc> {
                vote,
                prev_log_id: None,
                entries: vec![],
                leader_commit: None,
            };
            RaftClient::new(ch).append_entries(payload(&req)?).await.map(|_| ())
        }
        "vote" => {
            let req = VoteRequest::<u64>::new(vote, None);
            RaftClient::new(ch).vote(payload(&req)?).await.map(|_| ())
        }
        "drill" => {
            let m = serde_json::json!({ "slot": 1, "crash": true });
            DrillClient::new(ch).drill_move(payload(&m)?).await.map(|_| ())
        }
        "watch" => match SlotWatchClient::new(ch).watch_slots(payload(&())?).await {
            Ok(r) => r.into_inner().message().await.map(|_| ()),
            Err(e) => Err(e),
        },
        other => bail!("unknown call {other}"),
    };
    match result {
        Ok(()) => println!("OK"),
        Err(s) => println!("{:?} {}", s.code(), s.message()),
    }
    Ok(())
}
