//! Backing up a live data directory and restoring a backup into a new one.
//!
//! A backup is one SQLite file, made with `VACUUM INTO` rather than the
//! online backup API (`sqlite3_backup_*`):
//!
//! - It copies inside one read transaction, so the file is a consistent
//!   snapshot. In WAL mode a reader never blocks the writer: `dofs serve`
//!   keeps committing orders while the copy runs; only its checkpoints cannot
//!   move past the snapshot until the copy ends (the WAL grows meanwhile).
//!   The backup API, stepped in small pieces so as to let writes in, restarts
//!   from the first page every time another connection writes, which under
//!   steady intake may never finish; stepped in one piece it holds the same
//!   read transaction as `VACUUM INTO` and gains nothing.
//! - The copy is compact (no free pages) and has no WAL beside it: one file
//!   to keep, move or check.
//! - It needs no extra rusqlite feature.
//!
//! The writer is never held: the copy takes no write lock. What intake does
//! feel is the disk: the copy's pages, left in memory and then written out in
//! large amounts, made the commits of `dofs serve` wait behind them (on ext4,
//! ordered data; a plain `VACUUM INTO` with no sync at all stalled intake as
//! much). So they are written behind the copy as it goes ([`write_behind`]).
//! Measured by `bench/backup.sh` (release, 2 cores, intake at 2,000 orders/s
//! on a 170 to 240 MB database, 8 s windows, one run for both builds): with a
//! backup of about 0.45 s in the window, accepted orders' p99 was 24 to 86 ms
//! (max 93 to 176 ms) before, 9 to 11 ms (max 37 to 50 ms) after, against
//! 4.2 to 7.3 ms (max 13 to 79 ms) in the windows without a backup.
//!
//! SQLite does not fsync a `VACUUM INTO` target, and a crash midway leaves a
//! partial file, so the copy is written beside the target under a temporary
//! name, synced, then linked to its name (which fails if the name exists, so
//! nothing is ever overwritten).

use crate::db::{db_path, schema_plan, SchemaPlan};
use anyhow::{anyhow, bail, Context};
use rusqlite::{Connection, OpenFlags};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// What a backup wrote.
#[derive(Debug)]
pub struct BackupReport {
    /// The backup file.
    pub file: PathBuf,
    /// Its size in bytes.
    pub bytes: u64,
    /// How long the copy's read transaction lasted.
    pub took: Duration,
}

/// Copies the database of `data_dir` (which `dofs serve` may be using) to
/// `to`, which must not exist. The copy is a consistent snapshot, synced to
/// disk before this returns.
pub fn backup(data_dir: &Path, to: &Path) -> anyhow::Result<BackupReport> {
    let source = db_path(data_dir);
    if !source.is_file() {
        bail!(
            "there is no database at {}: is --data-dir the directory `dofs serve` uses?",
            source.display()
        );
    }
    if to.exists() {
        bail!(
            "{} already exists; a backup never overwrites a file: choose a new name (e.g. with the date)",
            to.display()
        );
    }
    let partial = partial_name(to);
    let _ = std::fs::remove_file(&partial);
    let conn = Connection::open_with_flags(&source, OpenFlags::SQLITE_OPEN_READ_WRITE)
        .with_context(|| format!("cannot open {}", source.display()))?;
    conn.busy_timeout(Duration::from_secs(10))?;
    let target = partial
        .to_str()
        .ok_or_else(|| anyhow!("{} is not valid UTF-8", partial.display()))?;
    let started = Instant::now();
    let copied = {
        let done = AtomicBool::new(false);
        std::thread::scope(|s| {
            s.spawn(|| write_behind(&partial, &done));
            // Set however the copy ends, so that the scope's join returns.
            let _done = SetOnDrop(&done);
            conn.execute("VACUUM INTO ?1", [target])
        })
    };
    let took = started.elapsed();
    drop(conn);
    if let Err(e) = copied {
        let _ = std::fs::remove_file(&partial);
        return Err(anyhow!(
            "cannot copy {} to {}: {e}",
            source.display(),
            to.display()
        ));
    }
    let placed = sync_file(&partial).and_then(|()| place(&partial, to));
    if let Err(e) = placed {
        let _ = std::fs::remove_file(&partial);
        return Err(e);
    }
    let bytes = std::fs::metadata(to).map(|m| m.len()).unwrap_or(0);
    Ok(BackupReport {
        file: to.to_owned(),
        bytes,
        took,
    })
}

/// What a restore found in the backup.
#[derive(Debug)]
pub struct RestoreReport {
    /// The restored database.
    pub file: PathBuf,
    /// What `dofs serve` will do to its schema at start.
    pub plan: SchemaPlan,
}

/// Checks `from` (integrity, a schema version this build can open) and puts
/// it into `data_dir`, which must be empty or not exist.
pub fn restore(from: &Path, data_dir: &Path) -> anyhow::Result<RestoreReport> {
    if !from.is_file() {
        bail!("{} is not a file", from.display());
    }
    let plan = check_file(from)?;
    if plan == SchemaPlan::Create {
        bail!(
            "{} holds no DOFS tables: it is not a DOFS backup",
            from.display()
        );
    }
    match std::fs::read_dir(data_dir) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                bail!(
                    "{} is not empty; restore into a new or empty directory, then point \
                     `dofs serve --data-dir` at it (nothing was changed)",
                    data_dir.display()
                );
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(data_dir)
                .with_context(|| format!("cannot create {}", data_dir.display()))?;
        }
        Err(e) => return Err(anyhow!("cannot read {}: {e}", data_dir.display())),
    }
    let target = db_path(data_dir);
    let partial = partial_name(&target);
    let copied = std::fs::copy(from, &partial)
        .with_context(|| format!("cannot copy {} to {}", from.display(), partial.display()))
        .and_then(|_| sync_file(&partial))
        .and_then(|()| place(&partial, &target));
    if let Err(e) = copied {
        let _ = std::fs::remove_file(&partial);
        return Err(e);
    }
    Ok(RestoreReport { file: target, plan })
}

/// Runs `PRAGMA integrity_check` on `file` and reads its schema version: an
/// error naming the first problems, or one for a file a newer DOFS wrote.
pub fn check_file(file: &Path) -> anyhow::Result<SchemaPlan> {
    let conn = Connection::open_with_flags(file, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .with_context(|| format!("cannot open {}", file.display()))?;
    let problems = integrity_problems(&conn, "integrity_check")
        .map_err(|e| anyhow!("{} is not a readable SQLite database: {e}", file.display()))?;
    if !problems.is_empty() {
        bail!(
            "{} fails SQLite's integrity check: {}",
            file.display(),
            problems.join("; ")
        );
    }
    schema_plan(&conn).map_err(|e| anyhow!("{}: {e:#}", file.display()))
}

/// The first problems `PRAGMA <check>` (`integrity_check` or `quick_check`)
/// reports; empty when the file is sound.
pub fn integrity_problems(conn: &Connection, check: &str) -> rusqlite::Result<Vec<String>> {
    let mut st = conn.prepare(&format!("PRAGMA {check}(5)"))?;
    let rows = st.query_map([], |r| r.get::<_, String>(0))?;
    let mut problems = Vec::new();
    for row in rows {
        let line = row?;
        if line != "ok" {
            problems.push(line);
        }
    }
    Ok(problems)
}

fn partial_name(target: &Path) -> PathBuf {
    let mut name = target.as_os_str().to_owned();
    name.push(format!(".partial-{}", std::process::id()));
    PathBuf::from(name)
}

/// Sets its flag when dropped.
struct SetOnDrop<'a>(&'a AtomicBool);

impl Drop for SetOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// How often [`write_behind`] pushes the copy's written pages to disk.
const WRITE_BEHIND_EVERY: Duration = Duration::from_millis(10);

/// While `VACUUM INTO` writes `partial`, sends what it has written to the disk
/// every [`WRITE_BEHIND_EVERY`], until `done`.
///
/// Left to the kernel, the copy's pages stay in memory and go to the disk in
/// large amounts (at the final sync, or when the kernel flushes them): on
/// ext4 (ordered data) a commit of `dofs serve` then waits for such a write,
/// stalls of about 100 ms per 200 MB here (bench/backup.sh). Written behind,
/// a little at a time, no commit waits for more than a few milliseconds of it.
fn write_behind(partial: &Path, done: &AtomicBool) {
    let mut file = None;
    while !done.load(Ordering::Relaxed) {
        std::thread::sleep(WRITE_BEHIND_EVERY);
        if file.is_none() {
            file = File::open(partial).ok();
        }
        if let Some(f) = &file {
            write_out(f);
        }
    }
}

#[cfg(target_os = "linux")]
fn write_out(file: &File) {
    use std::os::fd::AsRawFd;
    // SAFETY: sync_file_range reads no memory of ours; the descriptor is
    // open for the call. Its result is advisory: the final sync decides.
    unsafe {
        libc::sync_file_range(
            file.as_raw_fd(),
            0,
            0,
            libc::SYNC_FILE_RANGE_WAIT_BEFORE
                | libc::SYNC_FILE_RANGE_WRITE
                | libc::SYNC_FILE_RANGE_WAIT_AFTER,
        );
    }
}

#[cfg(not(target_os = "linux"))]
fn write_out(_: &File) {}

fn sync_file(path: &Path) -> anyhow::Result<()> {
    File::open(path)
        .and_then(|f| f.sync_all())
        .with_context(|| format!("cannot sync {}", path.display()))
}

/// Gives `partial` the name `target` unless `target` exists, then syncs the
/// directory so the name survives a crash.
fn place(partial: &Path, target: &Path) -> anyhow::Result<()> {
    match std::fs::hard_link(partial, target) {
        Ok(()) => {
            let _ = std::fs::remove_file(partial);
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            bail!(
                "{} appeared while the copy was made; it was left alone",
                target.display()
            );
        }
        // A file system without hard links: check, then rename.
        Err(_) => {
            if target.exists() {
                bail!("{} already exists; it was left alone", target.display());
            }
            std::fs::rename(partial, target)
                .with_context(|| format!("cannot name the copy {}", target.display()))?;
        }
    }
    if let Some(dir) = target.parent().filter(|d| !d.as_os_str().is_empty()) {
        File::open(dir)
            .and_then(|d| d.sync_all())
            .with_context(|| format!("cannot sync {}", dir.display()))?;
    }
    Ok(())
}
