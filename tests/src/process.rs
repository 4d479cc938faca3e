//! Running external commands with bounded waits.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::clock;

/// Absolute path of a system tool, searched in `$PATH` and then in the sbin directories (which a
/// non-login root shell may lack from its `$PATH`). Falls back to the bare name.
pub fn tool(name: &str) -> PathBuf {
    find_tool(name).unwrap_or_else(|| PathBuf::from(name))
}

/// Like [`tool`], but `None` when the tool is not installed.
pub fn find_tool(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let extra = ["/usr/local/sbin", "/usr/sbin", "/sbin", "/usr/local/bin", "/usr/bin", "/bin"];
    std::env::split_paths(&path)
        .chain(extra.iter().map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// Runs `cmd` to completion with stdout and stderr captured, killing it after `timeout`
/// (then the error says so). A non-zero exit is *not* an error here; see [`run_ok`].
pub fn output_with_timeout(cmd: &mut Command, timeout: Duration) -> Result<Output> {
    let desc = describe(cmd);
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("spawning `{desc}`"))?;
    let mut out = child.stdout.take().context("stdout pipe")?;
    let mut err = child.stderr.take().context("stderr pipe")?;
    let t_out = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = out.read_to_end(&mut v);
        v
    });
    let t_err = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = err.read_to_end(&mut v);
        v
    });
    let status = wait_timeout(&mut child, timeout)?;
    let Some(status) = status else {
        kill_and_reap(&mut child);
        bail!("`{desc}` did not finish within {timeout:?}; killed");
    };
    let stdout = t_out.join().unwrap_or_default();
    let stderr = t_err.join().unwrap_or_default();
    Ok(Output { status, stdout, stderr })
}

/// Runs `cmd` with a timeout and returns its stdout; a non-zero exit is an error that quotes
/// the command and its stderr.
pub fn run_ok(cmd: &mut Command, timeout: Duration) -> Result<String> {
    let desc = describe(cmd);
    let out = output_with_timeout(cmd, timeout)?;
    if !out.status.success() {
        bail!(
            "`{desc}` failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim(),
            String::from_utf8_lossy(&out.stdout).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Waits up to `timeout` for `child` to exit. `Ok(None)` on timeout (the child keeps running).
pub fn wait_timeout(child: &mut Child, timeout: Duration) -> Result<Option<ExitStatus>> {
    let mut err = None;
    let r = clock::poll_until(timeout, Duration::from_millis(20), || match child.try_wait() {
        Ok(s) => s,
        Err(e) => {
            err = Some(e);
            Some(ExitStatus::default())
        }
    });
    if let Some(e) = err {
        return Err(e).context("waiting for child");
    }
    Ok(r)
}

/// SIGKILLs `child` (if still running) and reaps it, so no zombie is left behind.
pub fn kill_and_reap(child: &mut Child) {
    if let Ok(None) = child.try_wait() {
        let _ = child.kill();
    }
    let _ = child.wait();
}

/// Sends `sig` (a name `kill -s` accepts: STOP, CONT, INT, TERM, KILL, HUP, USR2...) to `pid`
/// using the `kill` command, so this crate needs no unsafe code.
pub fn signal_pid(pid: u32, sig: &str) -> Result<()> {
    let st = Command::new(tool("kill"))
        .args(["-s", sig, &pid.to_string()])
        .stderr(Stdio::null())
        .status()
        .context("running kill")?;
    if !st.success() {
        bail!("kill -s {sig} {pid} failed ({st})");
    }
    Ok(())
}

/// True while `pid` exists and is not a zombie.
pub fn pid_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => s.rsplit_once(") ").map(|(_, rest)| !rest.starts_with('Z')).unwrap_or(false),
        Err(_) => false,
    }
}

/// A shell-like rendering of a command line, for error messages.
pub fn describe(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}
