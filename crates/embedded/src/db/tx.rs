//! [`Tx`]: the writer's connection as the closures it runs see it, with
//! the statements it holds prepared and what a transaction keeps in memory.

use dofs_core::OrderStatus;
use rusqlite::{Connection, PrepFlags, Statement};
use std::cell::{Cell, RefCell};
use std::ops::Deref;

/// The writer's connection as the closures given to [`crate::db::Db::write`] see it:
/// the connection itself (through `Deref`), the statements of the hot path
/// held prepared for the writer's life ([`Tx::held`]), and what the current
/// transaction keeps in memory until it ends.
pub struct Tx<'c> {
    conn: &'c Connection,
    /// A slot per statement text, holding its statement while no use has
    /// it out. Slots are only ever added, so a use puts its statement back
    /// by the slot's place.
    held: RefCell<Vec<(&'static str, Option<Statement<'c>>)>>,
    /// The number the transaction's next event takes, once it has read the
    /// newest event ([`crate::events::next_seq`]): `MAX(seq)` read once per
    /// transaction rather than once per change.
    pub(crate) next_seq: Cell<Option<i64>>,
    /// The transaction's changes to the counts of orders by status, in the
    /// order of [`OrderStatus::ALL`], written once before it commits
    /// ([`crate::store::flush_counts`]): one upsert per status per
    /// transaction rather than two per change.
    pub(crate) counts: Cell<[i64; OrderStatus::ALL.len()]>,
}

impl Deref for Tx<'_> {
    type Target = Connection;

    fn deref(&self) -> &Connection {
        self.conn
    }
}

impl<'c> Tx<'c> {
    /// The writer's `conn`, holding no statement yet.
    pub(super) fn new(conn: &'c Connection) -> Tx<'c> {
        Tx {
            conn,
            held: RefCell::new(Vec::new()),
            next_seq: Cell::new(None),
            counts: Cell::new([0; OrderStatus::ALL.len()]),
        }
    }

    /// Runs `f` with the statement for `sql`, prepared at its first use and
    /// held by the writer from then on. For the statements every order
    /// runs: rusqlite's cache ([`Connection::prepare_cached`]) hashes and
    /// copies a statement's text at each use and again when it takes it
    /// back, which came to a twentieth of the writer's time under load and
    /// a tenth of its instructions (bench/PROFILE.md). `sql` is found by its
    /// address, which a `static` keeps, and else by its text.
    pub(crate) fn held<T>(
        &self,
        sql: &'static str,
        f: impl FnOnce(&mut Statement<'c>) -> rusqlite::Result<T>,
    ) -> rusqlite::Result<T> {
        let (slot, taken) = {
            let mut held = self.held.borrow_mut();
            let found = held
                .iter()
                .position(|(text, _)| std::ptr::eq(*text, sql))
                .or_else(|| held.iter().position(|(text, _)| *text == sql));
            match found {
                Some(slot) => (slot, held[slot].1.take()),
                None => {
                    held.push((sql, None));
                    (held.len() - 1, None)
                }
            }
        };
        let mut statement = match taken {
            Some(statement) => statement,
            // Persistent: kept out of the connection's lookaside memory,
            // which the statements of each use then have to themselves.
            None => self
                .conn
                .prepare_with_flags(sql, PrepFlags::SQLITE_PREPARE_PERSISTENT)?,
        };
        let result = f(&mut statement);
        // A use of the same text inside `f` (its statement being out) may
        // have filled the slot already; then this one is dropped.
        let mut held = self.held.borrow_mut();
        if let Some((_, empty @ None)) = held.get_mut(slot) {
            *empty = Some(statement);
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::Db;

    #[tokio::test]
    async fn the_writer_prepares_a_held_statement_once_and_runs_it_again() {
        static SQL: &str = "SELECT ?1 + 1";
        let dir = tempfile::tempdir().expect("tempdir");
        let db = Db::open(dir.path()).expect("open");
        let add =
            |tx: &Tx<'_>, n: i64| tx.held(SQL, |st| st.query_row([n], |r| r.get::<_, i64>(0)));
        let (sums, nested, runs, held) = db
            .write(move |tx| {
                let sums = (1..=3).map(|n| add(tx, n)).collect::<Result<Vec<_>, _>>();
                let runs = tx.held(SQL, |st| Ok(st.get_status(rusqlite::StatementStatus::Run)));
                // The same text used while its statement is in use: a second
                // statement, and one of the two kept.
                let nested = tx.held(SQL, |outer| {
                    let inner = add(tx, 10)?;
                    outer.query_row([inner], |r| r.get::<_, i64>(0))
                });
                let held = tx.held.borrow().len();
                Ok((sums, nested, runs, held))
            })
            .await
            .expect("write");
        assert_eq!(sums.expect("sums"), [2, 3, 4]);
        assert_eq!(nested.expect("nested"), 12);
        assert_eq!(
            runs.expect("runs"),
            3,
            "the three runs were of one statement"
        );
        assert_eq!(held, 1, "one statement held for the text");
    }
}
