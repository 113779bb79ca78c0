//! Work done on a copy of the process taken in an instant: a child process (`fork`)
//! that sees the memory as it was when forked (the kernel copies a page only when one
//! side writes to it), so the parent can let go of its locks at once and go on changing
//! its state while the child writes it out. This is how a snapshot of the projections
//! is written without holding up new events for the whole write (the way Redis writes
//! its RDB files).
//!
//! The child runs one closure and ends with `_exit`: no destructor, no `atexit` handler,
//! nothing of the parent's (its store, its sockets) touched; the descriptors it inherited
//! are closed first, so the work opens what it writes itself. It dies with the thread that
//! forked it (`PR_SET_PDEATHSIG`), so it never outlives a parent that stopped. The work
//! must only read memory and write files: the other threads of the parent do not exist
//! in the child, so a lock one of them held at the fork stays held there (the allocator
//! takes care of its own). Linux only; elsewhere [`fork`] says it cannot.

use std::io::{Read, Write};

/// A child process running work, seen from the parent.
#[derive(Debug)]
pub struct Forked {
    pid: libc::pid_t,
    outcome: std::io::PipeReader,
}

/// Starts `work` in a child process and returns in the parent at once (the child's
/// memory is the parent's at this instant). `work`'s outcome is read back with
/// [`Forked::wait`].
#[cfg(target_os = "linux")]
pub fn fork(work: impl FnOnce() -> std::io::Result<u64>) -> std::io::Result<Forked> {
    let (outcome, mut report) = std::io::pipe()?;
    // SAFETY: getpid has no preconditions.
    let parent = unsafe { libc::getpid() };
    // SAFETY: the child only runs `work` (which reads memory and writes files, as this
    // module's contract says) and ends with `_exit`; see the module docs.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(std::io::Error::last_os_error());
    }
    if pid > 0 {
        drop(report);
        return Ok(Forked { pid, outcome });
    }
    // The child. A panic ends it at once: the default hook would take locks (standard
    // error's) that a thread of the parent may have held at the fork.
    std::panic::set_hook(Box::new(|_| {
        // SAFETY: _exit ends the process without running anything of the parent's.
        unsafe { libc::_exit(101) }
    }));
    // SAFETY: prctl and getppid only read their integer arguments.
    let orphan = unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 || libc::getppid() != parent
    };
    let code = if orphan {
        2
    } else {
        default_signal_handling();
        let_go_of_the_parents_files(std::os::fd::AsRawFd::as_raw_fd(&report));
        let message = match work() {
            Ok(value) => format!("ok {value} {}", private_bytes().unwrap_or(0)),
            Err(e) => format!("error {e}"),
        };
        i32::from(report.write_all(message.as_bytes()).is_err())
    };
    // SAFETY: as above.
    unsafe { libc::_exit(code) }
}

/// Every signal back to its default action: the parent's handlers (a server's, for
/// SIGTERM) would write to descriptors the child closes, or that its own files reuse; a
/// SIGTERM to the whole group (a service manager's stop) now ends the child too.
#[cfg(target_os = "linux")]
fn default_signal_handling() {
    for signal in 1..32 {
        if signal != libc::SIGKILL && signal != libc::SIGSTOP {
            // SAFETY: sets this (child) process's action for a valid signal number.
            unsafe { libc::signal(signal, libc::SIG_DFL) };
        }
    }
}

/// Closes every descriptor the child inherited but standard input, output, error and
/// `keep`: a connection or file the parent closes is then closed at once, not when the
/// child ends (a client waiting for the end of a connection the server closed would wait
/// for the whole write). Mappings stay: they need no descriptor.
#[cfg(target_os = "linux")]
fn let_go_of_the_parents_files(keep: std::os::fd::RawFd) {
    let close_range = |first: i32, last: u32| {
        // SAFETY: close_range only closes descriptors of this process, none of which
        // anything in the child uses but `keep`.
        unsafe { libc::syscall(libc::SYS_close_range, first as u32, last, 0u32) == 0 }
    };
    let closed = (keep <= 3 || close_range(3, keep as u32 - 1)) && close_range(keep + 1, u32::MAX);
    if !closed {
        // Kernels before 5.9: one at a time, as listed.
        let listed: Vec<i32> = std::fs::read_dir("/proc/self/fd")
            .map(|dir| {
                dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                    .collect()
            })
            .unwrap_or_default();
        for fd in listed.into_iter().filter(|fd| *fd > 2 && *fd != keep) {
            // SAFETY: as above.
            unsafe { libc::close(fd) };
        }
    }
}

/// Elsewhere than on Linux: refused, the caller does the work itself.
#[cfg(not(target_os = "linux"))]
pub fn fork(_work: impl FnOnce() -> std::io::Result<u64>) -> std::io::Result<Forked> {
    Err(std::io::Error::new(
        std::io::ErrorKind::Unsupported,
        "work in a child process needs Linux",
    ))
}

/// The memory this process holds alone (not shared with another): in a child, the
/// pages it or its parent wrote since the fork, i.e. what the fork cost.
#[cfg(target_os = "linux")]
fn private_bytes() -> Option<u64> {
    let rollup = std::fs::read_to_string("/proc/self/smaps_rollup").ok()?;
    let kib = |field: &str| -> Option<u64> {
        let line = rollup.lines().find(|l| l.starts_with(field))?;
        line[field.len()..]
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .ok()
    };
    Some((kib("Private_Clean:")? + kib("Private_Dirty:")?) * 1024)
}

/// What a child's work returned, and what the child cost in memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    pub value: u64,
    /// The memory the child held alone when its work was done: pages it wrote, and
    /// pages the parent wrote meanwhile (each then held twice); 0 when unknown.
    pub private_bytes: u64,
}

impl Forked {
    /// Waits for the child to end; what its work returned.
    pub fn wait(mut self) -> std::io::Result<Outcome> {
        let mut message = String::new();
        let read = self.outcome.read_to_string(&mut message);
        let mut status = 0;
        loop {
            // SAFETY: waits for our own child, writing its status into a local.
            let waited = unsafe { libc::waitpid(self.pid, &mut status, 0) };
            if waited == self.pid {
                break;
            }
            let error = std::io::Error::last_os_error();
            if error.kind() != std::io::ErrorKind::Interrupted {
                return Err(error);
            }
        }
        read?;
        if let Some(outcome) = message.strip_prefix("ok ") {
            let mut numbers = outcome.split(' ').map(str::parse::<u64>);
            if let (Some(Ok(value)), Some(Ok(private_bytes)), None) =
                (numbers.next(), numbers.next(), numbers.next())
            {
                return Ok(Outcome {
                    value,
                    private_bytes,
                });
            }
            return Err(std::io::Error::other(format!(
                "the child reported {message:?}"
            )));
        }
        if let Some(error) = message.strip_prefix("error ") {
            return Err(std::io::Error::other(error.to_string()));
        }
        Err(std::io::Error::other(if libc::WIFSIGNALED(status) {
            format!(
                "the child process was killed by signal {}",
                libc::WTERMSIG(status)
            )
        } else {
            format!(
                "the child process ended with status {} and no outcome",
                libc::WEXITSTATUS(status)
            )
        }))
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    /// Waits (up to ten seconds) for `path` to exist; whether it did.
    fn appears(path: &std::path::Path) -> bool {
        (0..1_000).any(|_| {
            std::thread::sleep(std::time::Duration::from_millis(10));
            path.exists()
        })
    }

    /// The child writes the state as it was at the fork while the parent changes it: the
    /// child waits until the parent has changed it, then writes.
    #[test]
    fn the_child_sees_the_state_as_it_was_at_the_fork() {
        let dir = tempfile::tempdir().unwrap();
        let (file, changed) = (dir.path().join("state"), dir.path().join("changed"));
        let mut state: Vec<u64> = (0..100_000).collect();
        let forked = fork(|| {
            if !appears(&changed) {
                return Err(std::io::Error::other("the parent never changed it"));
            }
            let text: Vec<String> = state.iter().map(u64::to_string).collect();
            std::fs::write(&file, text.join(","))?;
            Ok(state.iter().sum())
        })
        .unwrap();
        // The parent goes on at once, changing what the child is about to write.
        for n in &mut state {
            *n += 1;
        }
        state.push(7);
        std::fs::write(&changed, "").unwrap();
        let outcome = forked.wait().unwrap();
        assert_eq!(outcome.value, (0..100_000).sum::<u64>());
        // At least the pages of the state the parent changed are the child's alone now.
        assert!(
            outcome.private_bytes >= 800_000,
            "{} bytes",
            outcome.private_bytes
        );
        let written = std::fs::read_to_string(&file).unwrap();
        assert!(written.starts_with("0,1,2,"), "{}", &written[..20]);
        assert!(written.ends_with(",99999"));
        assert_eq!(state.len(), 100_001);
    }

    /// What the parent closes is closed at once: the child holds no copy of it.
    #[test]
    fn the_child_lets_go_of_the_parents_files_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let go = dir.path().join("go");
        let (mut reader, writer) = std::io::pipe().unwrap();
        let forked = fork(|| Ok(u64::from(appears(&go)))).unwrap();
        drop(writer);
        // The end of the pipe now, not when the child ends (it waits for `go`).
        let mut rest = Vec::new();
        reader.read_to_end(&mut rest).unwrap();
        std::fs::write(&go, "").unwrap();
        let outcome = forked.wait().unwrap();
        assert_eq!(outcome.value, 1, "the pipe ended only with the child");
    }

    extern "C" fn ignore(_: libc::c_int) {}

    /// The parent's signal handlers are not the child's.
    #[test]
    fn the_child_takes_signals_the_default_way() {
        let handler = ignore as extern "C" fn(libc::c_int) as libc::sighandler_t;
        // SAFETY: a handler that does nothing, for a signal nothing else here uses.
        unsafe { libc::signal(libc::SIGUSR2, handler) };
        let action = || {
            // SAFETY: reads this process's action for SIGUSR2 into a zeroed struct.
            unsafe {
                let mut action: libc::sigaction = std::mem::zeroed();
                libc::sigaction(libc::SIGUSR2, std::ptr::null(), &mut action);
                action.sa_sigaction
            }
        };
        assert_eq!(action(), handler);
        let forked = fork(|| Ok(u64::from(action() == libc::SIG_DFL))).unwrap();
        assert_eq!(forked.wait().unwrap().value, 1);
    }

    #[test]
    fn a_child_that_fails_or_panics_says_so() {
        let failed = fork(|| Err(std::io::Error::other("no room"))).unwrap();
        assert_eq!(failed.wait().unwrap_err().to_string(), "no room");
        let panicked = fork(|| panic!("boom")).unwrap();
        let error = panicked.wait().unwrap_err().to_string();
        assert!(error.contains("status 101"), "{error}");
    }
}
