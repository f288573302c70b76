//! Checks made before the database is opened for serving: the data
//! directory takes writes, and an existing file is not damaged. Either
//! failure is a [`StartupRefused`] whose message says what to do; nothing
//! is changed, and `dofs serve` exits 2 on it.

use crate::backup::integrity_problems;
use rusqlite::{Connection, ErrorCode, OpenFlags};
use std::io::Write;
use std::path::Path;

/// Start-up refused: the data directory or its database cannot be used as
/// they are. The text names the path, the cause and what to do.
#[derive(Debug)]
pub struct StartupRefused(pub String);

impl std::fmt::Display for StartupRefused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for StartupRefused {}

/// Creates `data_dir` if needed, checks that a file can be written and
/// synced in it, and runs `PRAGMA integrity_check` on an existing database.
///
/// The full check, not `quick_check`: it also matches every index with its
/// table, so a file whose indexes disagree with their rows (queries would
/// answer wrongly) is refused too. It costs start-up about 2.4 times
/// `quick_check`'s time, both growing with the file: 0.94 s against 0.39 s
/// for a 269 MB file of 312,000 orders (bench/backup.sh).
pub fn check(data_dir: &Path, db: &Path) -> Result<(), StartupRefused> {
    let dir = data_dir.display();
    let fix = format!(
        "make it writable by the user running dofs (e.g. `chown -R <user> {dir}`), or choose \
         another directory with --data-dir or DOFS_STORAGE_DATA_DIR"
    );
    std::fs::create_dir_all(data_dir).map_err(|e| {
        StartupRefused(format!(
            "cannot create the data directory {dir}: {e}; create it and {fix}"
        ))
    })?;
    let probe = data_dir.join(".dofs-write-check");
    let written = std::fs::File::create(&probe)
        .and_then(|mut f| f.write_all(b"dofs").and_then(|()| f.sync_all()));
    let _ = std::fs::remove_file(&probe);
    written.map_err(|e| {
        StartupRefused(format!(
            "the data directory {dir} cannot be written: {e}; {fix}"
        ))
    })?;
    if !db.exists() {
        return Ok(());
    }
    let damaged = |what: String| {
        StartupRefused(format!(
            "{} {what}: the file is damaged. Keep it for investigation, restore the last \
             backup into a new directory (`dofs restore --from BACKUP --data-dir NEW`) and \
             start `dofs serve --data-dir NEW`",
            db.display()
        ))
    };
    let conn = Connection::open_with_flags(db, OpenFlags::SQLITE_OPEN_READ_WRITE)
        .map_err(|e| StartupRefused(format!("cannot open {}: {e}; {fix}", db.display())))?;
    match integrity_problems(&conn, "integrity_check") {
        Ok(problems) if problems.is_empty() => Ok(()),
        Ok(problems) => Err(damaged(format!(
            "fails SQLite's integrity check ({})",
            problems.join("; ")
        ))),
        Err(e) => match e.sqlite_error_code() {
            Some(ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase) => {
                Err(damaged(format!("is not a sound SQLite database ({e})")))
            }
            Some(ErrorCode::ReadOnly | ErrorCode::CannotOpen | ErrorCode::PermissionDenied) => Err(
                StartupRefused(format!("cannot use {}: {e}; {fix}", db.display())),
            ),
            _ => Err(StartupRefused(format!(
                "cannot check {}: {e}",
                db.display()
            ))),
        },
    }
}

/// The bytes free for this user on the file system holding `path` (a
/// directory or a file); `None` where they cannot be read.
#[cfg(unix)]
pub fn free_bytes(path: &Path) -> Option<u64> {
    use std::os::fd::AsRawFd;
    let file = std::fs::File::open(path).ok()?;
    // SAFETY: fstatvfs writes only into `stat`, a zeroed struct of ours; the
    // descriptor is open for the call.
    let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::fstatvfs(file.as_raw_fd(), &mut stat) } != 0 {
        return None;
    }
    // The fields' types differ between platforms.
    #[allow(clippy::unnecessary_cast)]
    let free = stat.f_bavail as u64 * stat.f_frsize as u64;
    Some(free)
}

#[cfg(not(unix))]
pub fn free_bytes(_: &Path) -> Option<u64> {
    None
}
