//! `dofs migrate`: on the first release's database (the embedded crate's
//! fixture), `--check` says what it would do and changes nothing; without
//! it the file is migrated; a file from a newer release is refused (exit 2).

mod common;

use common::{db_fixture, dofs_migrate, schema_version};
use dofs_embedded::db::SCHEMA_VERSION;

#[test]
fn migrate_checks_migrates_and_refuses_a_newer_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("dofs.db");

    let (code, out, _) = dofs_migrate(dir.path(), true);
    assert_eq!(code, 0);
    assert!(out.contains("no database yet"), "{out}");

    std::fs::copy(db_fixture("schema-1.db"), &db).expect("copy the fixture");
    let (code, out, err) = dofs_migrate(dir.path(), true);
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
    assert_eq!(schema_version(&db), 0, "--check changes nothing");

    let (code, out, err) = dofs_migrate(dir.path(), false);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains(&format!("to {SCHEMA_VERSION} in one transaction: done")),
        "{out}"
    );
    assert_eq!(schema_version(&db), SCHEMA_VERSION);
    let (code, out, _) = dofs_migrate(dir.path(), true);
    assert_eq!(code, 0);
    assert!(out.contains("is current; nothing to do"), "{out}");

    rusqlite::Connection::open(&db)
        .and_then(|c| c.pragma_update(None, "user_version", 99))
        .expect("pretend a newer release wrote it");
    let (code, _, err) = dofs_migrate(dir.path(), true);
    assert_eq!(code, 2);
    assert!(err.contains("written by a newer DOFS"), "{err}");
}
