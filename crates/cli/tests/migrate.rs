//! `dofs migrate`: on the first release's database (the embedded crate's
//! fixture), `--check` says what it would do and changes nothing; without
//! it the file is migrated; a file from a newer release is refused (exit 2).

use dofs_embedded::db::SCHEMA_VERSION;
use std::path::{Path, PathBuf};
use std::process::Command;

fn fixture() -> PathBuf {
    let dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    Path::new(&dir).join("../embedded/tests/fixtures/schema-1.db")
}

fn migrate(data: &Path, check: bool) -> (i32, String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_dofs"));
    cmd.arg("migrate").arg("--data-dir").arg(data);
    if check {
        cmd.arg("--check");
    }
    let out = cmd.output().expect("run dofs migrate");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn version(db: &Path) -> i64 {
    rusqlite::Connection::open(db)
        .and_then(|c| c.query_row("PRAGMA user_version", [], |r| r.get(0)))
        .expect("read the schema version")
}

#[test]
fn migrate_checks_migrates_and_refuses_a_newer_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("dofs.db");

    let (code, out, _) = migrate(dir.path(), true);
    assert_eq!(code, 0);
    assert!(out.contains("no database yet"), "{out}");

    std::fs::copy(fixture(), &db).expect("copy the fixture");
    let (code, out, err) = migrate(dir.path(), true);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains(&format!(
            "migrate schema version 1 to {SCHEMA_VERSION} in one transaction"
        )),
        "{out}"
    );
    assert!(
        out.contains("the migration writes the order tables again and needs about"),
        "{out}"
    );
    assert_eq!(version(&db), 0, "--check changes nothing");

    let (code, out, err) = migrate(dir.path(), false);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains(&format!("to {SCHEMA_VERSION} in one transaction: done")),
        "{out}"
    );
    assert_eq!(version(&db), SCHEMA_VERSION);
    let (code, out, _) = migrate(dir.path(), true);
    assert_eq!(code, 0);
    assert!(out.contains("is current; nothing to do"), "{out}");

    rusqlite::Connection::open(&db)
        .and_then(|c| c.pragma_update(None, "user_version", 99))
        .expect("pretend a newer release wrote it");
    let (code, _, err) = migrate(dir.path(), true);
    assert_eq!(code, 2);
    assert!(err.contains("written by a newer DOFS"), "{err}");
}
