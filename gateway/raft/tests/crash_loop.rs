//! kill -9 crash loop: a child process appends entries and saves votes in a loop, printing each
//! index once its flush is acknowledged; the parent kills it at varying points, reopens the store
//! and checks that nothing acknowledged was lost.
//!
//! `GATEHOUSE_CRASH_ITERS` sets the number of kills (default 100, as the cluster issue asks).

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
use common::{CounterCmd, Counters, C};
use gatehouse_raft::Request;
use openraft::storage::{RaftLogStorage, RaftLogStorageExt};
use openraft::{CommittedLeaderId, Entry, EntryPayload, LogId, RaftLogReader, Vote};

const CHILD_DIR_ENV: &str = "GATEHOUSE_CRASH_DIR";
const CHILD_TEST: &str = "crash_loop_child";

/// Every entry of a batch carries the batch's last index as its term, and the vote saved after
/// the batch has that term too: the vote on disk names the batch it followed.
fn batch_entries(first: u64, last: u64) -> Vec<Entry<C>> {
    (first..=last)
        .map(|index| Entry {
            log_id: LogId::new(CommittedLeaderId::new(last, 1), index),
            payload: EntryPayload::Normal(Request(CounterCmd::add("k", index))),
        })
        .collect()
}

/// The child: runs only when re-executed by `kill_dash_9_never_loses_acknowledged_entries`.
#[tokio::test]
#[ignore = "helper process for the crash loop, run by the parent test"]
async fn crash_loop_child() -> Result<()> {
    let Some(dir) = std::env::var_os(CHILD_DIR_ENV) else {
        return Ok(());
    };
    let (mut log, _sm) = gatehouse_raft::open::<Counters>(Path::new(&dir))?;
    let mut next = log.get_log_state().await?.last_log_id.map_or(1, |l| l.index + 1);
    let mut out = std::io::stdout().lock();
    // A bound so that an orphaned child cannot run forever.
    for _ in 0..100_000 {
        let last = next + next % 3; // batches of 1 to 3 entries
        log.blocking_append(batch_entries(next, last)).await?;
        log.save_vote(&Vote::new_committed(last, 1)).await?;
        // Both flushes returned: acknowledged. A closed pipe means the parent is gone.
        writeln!(out, "ACK {last}")?;
        out.flush()?;
        next = last + 1;
    }
    Ok(())
}

#[derive(Default)]
struct Figures {
    kills: u64,
    acknowledged: u64,
    last_acknowledged: u64,
    /// Entries on disk beyond the last acknowledgement (written, not yet reported when killed).
    max_unacknowledged_tail: u64,
    lost: Vec<String>,
}

fn check_store(dir: &Path, last_acked: u64, figures: &mut Figures) -> Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(async {
        let (mut log, _sm) = gatehouse_raft::open::<Counters>(dir)?;
        let state = log.get_log_state().await?;
        ensure!(state.last_purged_log_id.is_none(), "nothing was purged");
        let entries = log.try_get_log_entries(0..).await.context("log decodes")?;
        for (i, e) in entries.iter().enumerate() {
            let want = i as u64 + 1;
            ensure!(e.log_id.index == want, "hole in the log: entry {i} has index {}", e.log_id);
            match &e.payload {
                EntryPayload::Normal(Request(CounterCmd::Add { name, by }))
                    if name == "k" && *by == want => {}
                other => bail!("entry {want} holds {other:?}"),
            }
        }
        let last_index = entries.last().map_or(0, |e| e.log_id.index);
        ensure!(state.last_log_id.map(|l| l.index) == entries.last().map(|e| e.log_id.index));
        if last_index < last_acked {
            figures.lost.push(format!("log ends at {last_index}, {last_acked} was acknowledged"));
        }
        figures.max_unacknowledged_tail =
            figures.max_unacknowledged_tail.max(last_index.saturating_sub(last_acked));

        let vote = log.read_vote().await?;
        let vote_term = vote.map_or(0, |v| v.leader_id.term);
        if vote_term < last_acked {
            figures.lost.push(format!("vote term {vote_term}, {last_acked} was acknowledged"));
        }
        // The vote is saved after its batch: it never names a batch missing from the log.
        ensure!(vote_term <= last_index, "vote {vote_term} ahead of log end {last_index}");
        Ok(())
    })
}

#[test]
fn kill_dash_9_never_loses_acknowledged_entries() -> Result<()> {
    let iterations: u64 = match std::env::var("GATEHOUSE_CRASH_ITERS") {
        Ok(v) => v.parse().with_context(|| format!("GATEHOUSE_CRASH_ITERS={v}: want a count"))?,
        Err(_) => 100,
    };
    let dir = tempfile::tempdir()?;
    let exe = std::env::current_exe()?;
    let mut figures = Figures::default();

    for iteration in 0..iterations {
        let mut child = Command::new(&exe)
            .args(["--exact", CHILD_TEST, "--ignored", "--nocapture", "--test-threads=1"])
            .env(CHILD_DIR_ENV, dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .context("re-exec the test binary as the crash-loop child")?;
        let stdout = child.stdout.take().context("child stdout")?;
        // Kill after a varying number of acknowledgements, sometimes a little later.
        let acks_before_kill = 1 + (iteration * 7) % 13;
        let mut acks = 0;
        let mut last_acked = figures.last_acknowledged;
        // Keep the pipe open until the kill: a closed pipe would let the child exit cleanly.
        let mut reader = BufReader::new(stdout);
        for line in reader.by_ref().lines() {
            let line = line?;
            let Some(index) = line.strip_prefix("ACK ") else { continue };
            last_acked = index.parse().with_context(|| format!("child printed {line:?}"))?;
            acks += 1;
            if acks >= acks_before_kill {
                break;
            }
        }
        ensure!(acks > 0, "iteration {iteration}: the child acknowledged nothing");
        std::thread::sleep(Duration::from_micros(iteration % 4 * 500));
        child.kill()?; // SIGKILL on Unix
        let status = child.wait()?;
        drop(reader);
        ensure!(
            status.signal() == Some(9),
            "iteration {iteration}: the child ended by itself ({status}) instead of by SIGKILL"
        );
        figures.kills += 1;
        figures.acknowledged += acks;
        figures.last_acknowledged = last_acked;
        check_store(dir.path(), last_acked, &mut figures)
            .with_context(|| format!("iteration {iteration}"))?;
    }

    println!(
        "crash loop: {} kills, {} acknowledged batches, last acknowledged index {}, \
         max unacknowledged tail {}, acknowledged writes lost: {}",
        figures.kills,
        figures.acknowledged,
        figures.last_acknowledged,
        figures.max_unacknowledged_tail,
        figures.lost.len()
    );
    ensure!(figures.lost.is_empty(), "sled lost acknowledged writes: {:?}", figures.lost);
    Ok(())
}
