//! Starting a server as a child process and reading the line that says
//! where it listens (`dofs serve`, `dofs-local-aws`).

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

/// Spawns `cmd` with its stdout piped and reads the first line it prints,
/// which must be `banner` followed by the base URL (how `dofs serve` and
/// `dofs-local-aws` say that they listen). Answers the child and the base
/// URL, or the line printed instead of the banner. The rest of stdout is
/// drained on a thread, so the child never blocks on a full pipe. Fails
/// when the child cannot be started or its stdout cannot be read.
pub fn try_spawn_listening(
    cmd: &mut Command,
    banner: &str,
) -> std::io::Result<(Child, Result<String, String>)> {
    let mut child = cmd.stdout(Stdio::piped()).spawn()?;
    let Some(stdout) = child.stdout.take() else {
        return Err(std::io::Error::other("the child has no stdout"));
    };
    let mut reader = BufReader::new(stdout);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    std::thread::spawn(move || {
        let mut sink = String::new();
        while matches!(reader.read_line(&mut sink), Ok(n) if n > 0) {
            sink.clear();
        }
    });
    let base = match line.trim().strip_prefix(banner) {
        Some(base) => Ok(base.to_owned()),
        None => Err(line),
    };
    Ok((child, base))
}

/// [`try_spawn_listening`] for tests: panics when the child cannot be
/// started or read.
pub fn spawn_listening(cmd: &mut Command, banner: &str) -> (Child, Result<String, String>) {
    try_spawn_listening(cmd, banner)
        .unwrap_or_else(|e| panic!("spawn {:?}: {e}", cmd.get_program()))
}
