//! The DLQ side of [`SqsQueue`]: leasing dead letters (receiving them with a
//! visibility timeout, since SQS cannot peek), releasing, deleting and
//! requeueing them, and moving a received message there at once.

use super::*;
use dofs_core::ports::OutOfTime;
use std::time::Instant;

/// The most dead letters one search for an order's looks at.
const MAX_SEARCHED: usize = 10_000;

/// What [`SqsQueue::lease_every_dead_letter_until`] got.
#[derive(Debug, Default)]
pub(crate) struct Sweep {
    /// The dead letters leased.
    pub leased: Vec<LeasedDeadLetter>,
    /// Whether it stopped because no other dead letter could be leased (none
    /// left, or the rest held by another reader past the wait), rather than
    /// at `max` or at the deadline.
    pub whole: bool,
}

/// Whether `until` has passed.
fn passed(until: Option<Instant>) -> bool {
    until.is_some_and(|u| Instant::now() >= u)
}

/// A lease long enough for work that ends by `until`: the time left to it
/// and [`DEAD_LETTER_LEASE`] more to release or delete what is held.
pub fn lease_until(until: Instant) -> Duration {
    until.saturating_duration_since(Instant::now()) + DEAD_LETTER_LEASE
}

impl SqsQueue {
    /// Receives up to `max` dead letters (at most 10 per call to SQS) and hides
    /// them for `lease`. Stops after two empty receives in a row.
    pub async fn lease_dead_letters(
        &self,
        max: usize,
        lease: Duration,
    ) -> Result<Vec<LeasedDeadLetter>, PortError> {
        self.lease_dead_letters_until(max, lease, None).await
    }

    /// [`SqsQueue::lease_dead_letters`], receiving no more once `until` has
    /// passed (the first receive is always made, so a call makes progress).
    pub async fn lease_dead_letters_until(
        &self,
        max: usize,
        lease: Duration,
        until: Option<Instant>,
    ) -> Result<Vec<LeasedDeadLetter>, PortError> {
        let mut out: Vec<LeasedDeadLetter> = Vec::new();
        let mut empty = 0;
        let mut first = true;
        while out.len() < max && empty < 2 && (first || !passed(until)) {
            first = false;
            let got = self
                .client
                .receive_message()
                .queue_url(&self.dlq_url)
                .max_number_of_messages((max - out.len()).clamp(1, SQS_BATCH_MAX) as i32)
                .visibility_timeout(secs(lease).max(1))
                .wait_time_seconds(0)
                .message_system_attribute_names(MessageSystemAttributeName::All)
                .send()
                .await
                .map_err(|e| sqs_error("ReceiveMessage DLQ", e))?
                .messages
                .unwrap_or_default();
            if got.is_empty() {
                empty += 1;
                continue;
            }
            empty = 0;
            let now = self.clock.now();
            for m in got {
                let (Some(id), Some(receipt)) = (m.message_id.clone(), m.receipt_handle.clone())
                else {
                    continue;
                };
                if out.iter().any(|l| l.letter.id == id) {
                    continue;
                }
                let sent_at =
                    Timestamp(attr_i64(&m, MessageSystemAttributeName::SentTimestamp).unwrap_or(0));
                out.push(LeasedDeadLetter {
                    letter: DeadLetter {
                        id,
                        body: m.body.unwrap_or_default(),
                        receive_count: self.max_receive_count,
                        sent_at,
                        dead_at: now,
                    },
                    receipt,
                });
            }
        }
        Ok(out)
    }

    /// Leases every dead letter (at most `max`). Another reader (the
    /// dlq_processor, an operator's listing) may hold some for a moment, so
    /// while fewer were leased than the DLQ holds, it waits briefly and
    /// receives again, for up to about five seconds.
    pub async fn lease_every_dead_letter(
        &self,
        max: usize,
        lease: Duration,
    ) -> Result<Vec<LeasedDeadLetter>, PortError> {
        Ok(self
            .lease_every_dead_letter_until(max, lease, None)
            .await?
            .leased)
    }

    /// [`SqsQueue::lease_every_dead_letter`], stopping once `until` has passed
    /// (after its first receive); [`Sweep::whole`] says whether it got every
    /// dead letter it could.
    async fn lease_every_dead_letter_until(
        &self,
        max: usize,
        lease: Duration,
        until: Option<Instant>,
    ) -> Result<Sweep, PortError> {
        let mut all: Vec<LeasedDeadLetter> = Vec::new();
        for round in 0..25 {
            if round > 0 && passed(until) {
                return Ok(Sweep {
                    leased: all,
                    whole: false,
                });
            }
            for l in self
                .lease_dead_letters_until(max - all.len(), lease, until)
                .await?
            {
                if !all.iter().any(|a| a.letter.id == l.letter.id) {
                    all.push(l);
                }
            }
            if all.len() >= max {
                return Ok(Sweep {
                    leased: all,
                    whole: false,
                });
            }
            let (visible, in_flight, _) = self.queue_attrs(&self.dlq_url).await?;
            if all.len() as u64 >= visible + in_flight {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        // Every one, or the rest held by another reader for longer than the wait.
        Ok(Sweep {
            leased: all,
            whole: true,
        })
    }

    /// Makes leased dead letters visible again at once.
    pub async fn release_dead_letters(&self, leased: &[LeasedDeadLetter]) -> Result<(), PortError> {
        for chunk in leased.chunks(SQS_BATCH_MAX) {
            let entries = chunk
                .iter()
                .enumerate()
                .map(|(i, l)| {
                    ChangeMessageVisibilityBatchRequestEntry::builder()
                        .id(i.to_string())
                        .receipt_handle(&l.receipt)
                        .visibility_timeout(0)
                        .build()
                })
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| PortError::with_source(ErrorKind::Internal, "build batch", e))?;
            self.client
                .change_message_visibility_batch()
                .queue_url(&self.dlq_url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|e| sqs_error("ChangeMessageVisibilityBatch DLQ", e))?;
        }
        Ok(())
    }

    /// Deletes leased dead letters from the DLQ.
    pub async fn delete_dead_letters(&self, leased: &[LeasedDeadLetter]) -> Result<(), PortError> {
        for chunk in leased.chunks(SQS_BATCH_MAX) {
            let entries = chunk
                .iter()
                .enumerate()
                .map(|(i, l)| {
                    DeleteMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .receipt_handle(&l.receipt)
                        .build()
                })
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| PortError::with_source(ErrorKind::Internal, "build batch", e))?;
            let out = self
                .client
                .delete_message_batch()
                .queue_url(&self.dlq_url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|e| sqs_error("DeleteMessageBatch DLQ", e))?;
            // One left on the DLQ would be redriven or purged again: not done.
            if !out.failed.is_empty() {
                return Err(PortError::new(
                    ErrorKind::Transient,
                    format!("{} dead letters could not be deleted", out.failed.len()),
                ));
            }
        }
        Ok(())
    }

    /// Sends leased dead letters back to the orders queue as new messages
    /// (their receive count starts again), then deletes them from the DLQ.
    pub async fn requeue_dead_letters(&self, leased: &[LeasedDeadLetter]) -> Result<(), PortError> {
        for chunk in leased.chunks(SQS_BATCH_MAX) {
            let entries = chunk
                .iter()
                .enumerate()
                .map(|(i, l)| {
                    SendMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .message_body(&l.letter.body)
                        .build()
                })
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| PortError::with_source(ErrorKind::Internal, "build batch", e))?;
            let out = self
                .client
                .send_message_batch()
                .queue_url(&self.queue_url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|e| sqs_error("SendMessageBatch", e))?;
            if !out.failed.is_empty() {
                return Err(PortError::new(
                    ErrorKind::Transient,
                    format!("{} messages could not be requeued", out.failed.len()),
                ));
            }
            self.delete_dead_letters(chunk).await?;
        }
        Ok(())
    }

    /// Leases every dead letter and splits them: those of `order`, still
    /// leased (delete or release them), and the others, released already.
    ///
    /// The search ends by `until`: when it could not look at every dead
    /// letter by then (a DLQ too large for one request), it releases all it
    /// leased and answers `Transient` with an [`OutOfTime`] source, holding
    /// nothing, so that the caller changes nothing either.
    pub async fn lease_dead_letters_of(
        &self,
        order: OrderId,
        until: Instant,
    ) -> Result<Vec<LeasedDeadLetter>, PortError> {
        let sweep = self
            .lease_every_dead_letter_until(MAX_SEARCHED, lease_until(until), Some(until))
            .await?;
        if !sweep.whole {
            self.release_dead_letters(&sweep.leased).await?;
            return Err(PortError::with_source(
                ErrorKind::Transient,
                format!(
                    "looked at {} dead letters for those of order {order}, not every one, by the deadline",
                    sweep.leased.len()
                ),
                OutOfTime(
                    "the dead-letter queue is too large to search for this order's dead letters \
                     within one request; nothing changed. Retry later, or act on the whole DLQ \
                     first (POST /dlq/redrive or POST /dlq/purge)"
                        .into(),
                ),
            ));
        }
        let (mine, others): (Vec<_>, Vec<_>) = sweep.leased.into_iter().partition(|l| {
            OrderMessage::parse(&l.letter.body).is_some_and(|m| m.order_id == order)
        });
        self.release_dead_letters(&others).await?;
        Ok(mine)
    }

    /// Moves a message received under `receipt` to the DLQ now: its lease is
    /// renewed first (so a stale receipt is `Conflict` and a deleted message
    /// `NotFound` before anything is sent), then its body and attributes are
    /// sent to the DLQ and it is deleted from the orders queue. If the delete
    /// is lost (a crash), the message returns once; its order is terminal by
    /// then, so the fulfiller deletes it.
    ///
    /// Only a message this process received (or [`SqsQueue::remember`]ed) can
    /// be moved: SQS cannot read a message by its receipt.
    pub(super) async fn dead_letter_now(&self, receipt: &str) -> Result<(), PortError> {
        let Some(held) = self.receipts.get(receipt) else {
            return Err(PortError::new(
                ErrorKind::Internal,
                "the message of this receipt was not received here: its body is unknown",
            ));
        };
        self.hide(receipt, DEAD_LETTER_LEASE).await?;
        self.client
            .send_message()
            .queue_url(&self.dlq_url)
            .message_body(&held.body)
            .set_message_attributes((!held.attributes.is_empty()).then_some(held.attributes))
            .send()
            .await
            .map_err(|e| sqs_error("SendMessage DLQ", e))?;
        self.delete(receipt).await
    }
}
