//! The devnet's child processes: each in its own process group, writing to its own log file,
//! stopped with SIGTERM (then SIGKILL) on the way out, and killed with its whole group if it is
//! dropped still running (an error, a panic, an interrupted step), so none outlives `morpheus`.

use std::{
    fs::File,
    path::{Path, PathBuf},
    process::{ExitStatus, Stdio},
    time::Duration,
};

use tokio::process::{Child, Command};

use crate::{Error, Result};

/// Lines of a log quoted in an error.
const TAIL_LINES: usize = 15;

/// A running child process.
#[derive(Debug)]
pub(crate) struct Service {
    name: &'static str,
    child: Child,
    log: PathBuf,
}

impl Service {
    /// Starts `command` as `name`, in `cwd`, with stdout and stderr appended to `log`. The
    /// child leads a new process group: a Ctrl-C at the terminal reaches only `morpheus`, which
    /// then stops the children in order, and a signal to the group also reaches what the child
    /// started itself (forge's solc, the model converter's Python).
    pub(crate) fn spawn(
        name: &'static str,
        mut command: Command,
        cwd: &Path,
        log: PathBuf,
    ) -> Result<Self> {
        let out = File::create(&log).map_err(|e| Error::io(&log, e))?;
        let err = out.try_clone().map_err(|e| Error::io(&log, e))?;
        command
            .current_dir(cwd)
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0)
            .kill_on_drop(true);
        let program = command.as_std().get_program().to_owned();
        let child = command.spawn().map_err(|e| {
            Error::Devnet(format!(
                "cannot start {name} ({}): {e}",
                Path::new(&program).display()
            ))
        })?;
        Ok(Self { name, child, log })
    }

    /// The name it was started under.
    pub(crate) fn name(&self) -> &'static str {
        self.name
    }

    /// The log file.
    pub(crate) fn log(&self) -> &Path {
        &self.log
    }

    /// The process id, while the child has not been reaped.
    #[cfg(test)]
    pub(crate) fn id(&self) -> Option<u32> {
        self.child.id()
    }

    /// An error when the child has exited: a service must not end on its own.
    pub(crate) fn check_running(&mut self) -> Result<()> {
        match self.child.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => Err(self.failure(&format!("exited ({status})"))),
            Err(e) => Err(self.failure(&format!("cannot be waited on: {e}"))),
        }
    }

    /// Waits for a one-shot step (a conversion, a deployment) to finish, and fails unless it
    /// exits with success.
    pub(crate) async fn finish(mut self) -> Result<()> {
        let status = self
            .child
            .wait()
            .await
            .map_err(|e| self.failure(&format!("cannot be waited on: {e}")))?;
        if status.success() {
            Ok(())
        } else {
            Err(self.failure(&format!("failed ({status})")))
        }
    }

    /// Stops the child: SIGTERM to its group (the services finish what they are serving and
    /// exit), SIGKILL once `grace` has passed. Returns how it ended.
    pub(crate) async fn stop(mut self, grace: Duration) -> Option<ExitStatus> {
        if let Ok(Some(status)) = self.child.try_wait() {
            return Some(status);
        }
        if let Some(pid) = self.child.id() {
            signal_group(pid, "TERM");
        }
        match tokio::time::timeout(grace, self.child.wait()).await {
            Ok(status) => status.ok(),
            Err(_) => {
                tracing::warn!(target: "devnet", service = self.name, ?grace, "still running after SIGTERM: killing it");
                if let Some(pid) = self.child.id() {
                    signal_group(pid, "KILL");
                }
                self.child.wait().await.ok()
            }
        }
    }

    /// The error for a child that ended or failed: its name, why, its log and the log's end.
    fn failure(&self, what: &str) -> Error {
        Error::Devnet(format!(
            "{} {what}; its log is {}{}",
            self.name,
            self.log.display(),
            tail(&self.log)
        ))
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        // Only while the leader is unreaped is its pid still this group's id; `kill_on_drop`
        // then kills the leader itself as well.
        if let (Ok(None), Some(pid)) = (self.child.try_wait(), self.child.id()) {
            signal_group(pid, "KILL");
        }
    }
}

/// Sends `signal` to the process group `pgid` with kill(1) (the standard library only kills a
/// single process, and with SIGKILL alone); a group already gone is no error.
fn signal_group(pgid: u32, signal: &str) {
    let sent = std::process::Command::new("kill")
        .arg(format!("-{signal}"))
        .arg("--")
        .arg(format!("-{pgid}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    if let Err(e) = sent {
        tracing::warn!(target: "devnet", pgid, signal, %e, "cannot run kill");
    }
}

/// The last lines of `log`, as a block to append to an error ("" when it is empty).
pub(crate) fn tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    if lines.is_empty() {
        return String::new();
    }
    let start = lines.len().saturating_sub(TAIL_LINES);
    format!(", ending:\n  {}", lines[start..].join("\n  "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alive(pid: u32) -> bool {
        // A zombie has exited: only a process still running counts.
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| {
                !s.rsplit(')')
                    .next()
                    .unwrap_or("")
                    .trim_start()
                    .starts_with('Z')
            })
            .unwrap_or(false)
    }

    fn sleeper(dir: &Path, script: &str) -> Service {
        let mut command = Command::new("sh");
        command.arg("-c").arg(script);
        Service::spawn("sleeper", command, dir, dir.join("sleeper.log")).expect("spawn sh")
    }

    #[tokio::test]
    async fn dropping_a_service_kills_its_whole_group() {
        let dir = tempfile::tempdir().expect("tempdir");
        // The grandchild writes its pid, then both sleep.
        let service = sleeper(dir.path(), "sleep 60 & echo $! > grandchild; wait");
        let pid = service.id().expect("running");
        let file = dir.path().join("grandchild");
        for _ in 0..100 {
            if std::fs::read_to_string(&file).is_ok_and(|s| s.ends_with('\n')) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let grandchild: u32 = std::fs::read_to_string(&file)
            .expect("the grandchild's pid")
            .trim()
            .parse()
            .expect("a pid");
        assert!(alive(pid) && alive(grandchild));
        drop(service);
        for _ in 0..100 {
            if !alive(grandchild) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(
            !alive(grandchild),
            "the grandchild {grandchild} outlived the drop"
        );
    }

    #[tokio::test]
    async fn stop_ends_a_service_with_sigterm() {
        let dir = tempfile::tempdir().expect("tempdir");
        let service = sleeper(dir.path(), "exec sleep 60");
        let status = service.stop(Duration::from_secs(5)).await.expect("status");
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(15), "{status:?}");
    }

    #[tokio::test]
    async fn a_failed_step_quotes_its_log() {
        let dir = tempfile::tempdir().expect("tempdir");
        let service = sleeper(dir.path(), "echo first; echo 'the reason' >&2; exit 3");
        match service.finish().await {
            Err(Error::Devnet(m)) => {
                assert!(m.contains("sleeper failed"), "{m}");
                assert!(m.contains("sleeper.log"), "{m}");
                assert!(m.ends_with("first\n  the reason"), "{m}");
            }
            other => panic!("expected a devnet error, got {other:?}"),
        }
    }
}
