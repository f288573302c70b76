//! The store case about paging: a listing read page by page holds every
//! order once, newest first, whatever way the store keeps the listing (one
//! index in SQLite, a listing key sharded over several partitions on
//! DynamoDB, whose pages are merged newest first). Thirty orders a page of
//! seven at a time: enough to fall into more than one shard, with ten of
//! them accepted in the same millisecond, so that ties are ordered by id
//! (ids are UUIDv7: later ids sort higher).

use super::sample_order;
use crate::ports::OrderStore;
use crate::{OrderId, Timestamp};
use std::collections::HashSet;

/// Orders the case adds.
const ORDERS: u64 = 30;
/// Orders per page.
const PAGE: usize = 7;

pub(super) async fn pages_hold_every_order_once_newest_first(store: &dyn OrderStore) {
    // Later than every order the other cases wrote.
    let t0 = Timestamp(1_795_960_800_000);
    let mut added = Vec::new();
    for n in 0..ORDERS {
        let order = sample_order(100 + n, t0.plus_millis(n.min(20) as i64));
        store.put_new(&order).await.expect("put");
        added.push(order.id);
    }

    let mut listed: Vec<OrderId> = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = store
            .list(None, PAGE, cursor.as_deref())
            .await
            .expect("a page");
        assert!(page.items.len() <= PAGE, "a page holds at most its limit");
        assert!(
            page.next_cursor.is_none() || !page.items.is_empty(),
            "a page with a cursor after it is not empty"
        );
        listed.extend(page.items.iter().map(|o| o.id));
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
        assert!(
            listed.len() <= 10_000,
            "the pages end (a cursor that loops would not)"
        );
    }
    let unique: HashSet<OrderId> = listed.iter().copied().collect();
    assert_eq!(unique.len(), listed.len(), "no order is listed twice");
    let ours: HashSet<OrderId> = added.iter().copied().collect();
    let seen: Vec<OrderId> = listed.into_iter().filter(|id| ours.contains(id)).collect();
    added.reverse();
    assert_eq!(
        seen, added,
        "every order once, newest first, ties in one millisecond by id"
    );
}
