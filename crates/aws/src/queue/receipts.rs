//! What [`SqsQueue`](super::SqsQueue) remembers of the messages it handed
//! out, by receipt handle.
//!
//! SQS cannot read a message by its receipt, yet moving a received message
//! to the DLQ at once ([`Queue::dead_letter`](dofs_core::ports::Queue::dead_letter))
//! means sending its body and attributes there. So every message received
//! through the queue (or, in a Lambda, handed over by the event source and
//! [`remembered`](super::SqsQueue::remember)) is kept here until its receipt
//! is settled: deleted, hidden again or dead-lettered.
//!
//! The map is bounded: a receipt never settled (a crashed attempt) is
//! dropped oldest first once [`MAX_HELD`] are held.

use aws_sdk_sqs::types::MessageAttributeValue;
use std::collections::HashMap;
use std::sync::Mutex;

/// The most receipts held at once.
pub const MAX_HELD: usize = 10_000;

/// A received message's content.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Held {
    pub body: String,
    pub attributes: HashMap<String, MessageAttributeValue>,
}

/// Received messages by receipt, oldest dropped first beyond [`MAX_HELD`].
#[derive(Debug, Default)]
pub struct Receipts {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    next: u64,
    held: HashMap<String, (u64, Held)>,
}

impl Receipts {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves a map that is still consistent.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Keeps `held` under `receipt`.
    pub fn hold(&self, receipt: &str, held: Held) {
        let mut inner = self.lock();
        inner.next += 1;
        let seq = inner.next;
        inner.held.insert(receipt.to_owned(), (seq, held));
        if inner.held.len() > MAX_HELD {
            let oldest = inner
                .held
                .iter()
                .min_by_key(|(_, (seq, _))| *seq)
                .map(|(k, _)| k.clone());
            if let Some(k) = oldest {
                inner.held.remove(&k);
            }
        }
    }

    /// The message received under `receipt`, if this process received it.
    pub fn get(&self, receipt: &str) -> Option<Held> {
        self.lock().held.get(receipt).map(|(_, h)| h.clone())
    }

    /// Forgets `receipt` (settled).
    pub fn forget(&self, receipt: &str) {
        self.lock().held.remove(receipt);
    }

    /// How many receipts are held.
    pub fn len(&self) -> usize {
        self.lock().held.len()
    }

    /// Whether none is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn receipts_are_kept_until_forgotten_and_the_oldest_go_first_beyond_the_bound() {
        let r = Receipts::default();
        for i in 0..MAX_HELD + 5 {
            r.hold(
                &format!("r{i}"),
                Held {
                    body: format!("b{i}"),
                    ..Held::default()
                },
            );
        }
        assert_eq!(r.len(), MAX_HELD);
        assert!(r.get("r0").is_none(), "the oldest went first");
        assert_eq!(
            r.get(&format!("r{}", MAX_HELD + 4)).map(|h| h.body),
            Some(format!("b{}", MAX_HELD + 4))
        );
        r.forget(&format!("r{}", MAX_HELD + 4));
        assert!(r.get(&format!("r{}", MAX_HELD + 4)).is_none());
    }
}
