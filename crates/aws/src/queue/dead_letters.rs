//! The DLQ side of [`SqsQueue`]: leasing dead letters (receiving them with a
//! visibility timeout, since SQS cannot peek), releasing, deleting and
//! requeueing them, and moving a received message there at once.

use super::*;

impl SqsQueue {
    /// Receives up to `max` dead letters (at most 10 per call to SQS) and hides
    /// them for `lease`. Stops after two empty receives in a row.
    pub async fn lease_dead_letters(
        &self,
        max: usize,
        lease: Duration,
    ) -> Result<Vec<LeasedDeadLetter>, PortError> {
        let mut out: Vec<LeasedDeadLetter> = Vec::new();
        let mut empty = 0;
        while out.len() < max && empty < 2 {
            let got = self
                .client
                .receive_message()
                .queue_url(&self.dlq_url)
                .max_number_of_messages((max - out.len()).clamp(1, 10) as i32)
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
        let mut all: Vec<LeasedDeadLetter> = Vec::new();
        for _ in 0..25 {
            for l in self.lease_dead_letters(max - all.len(), lease).await? {
                if !all.iter().any(|a| a.letter.id == l.letter.id) {
                    all.push(l);
                }
            }
            if all.len() >= max {
                break;
            }
            let (visible, in_flight, _) = self.queue_attrs(&self.dlq_url).await?;
            if all.len() as u64 >= visible + in_flight {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Ok(all)
    }

    /// Makes leased dead letters visible again at once.
    pub async fn release_dead_letters(&self, leased: &[LeasedDeadLetter]) -> Result<(), PortError> {
        for chunk in leased.chunks(10) {
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
        for chunk in leased.chunks(10) {
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
            self.client
                .delete_message_batch()
                .queue_url(&self.dlq_url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|e| sqs_error("DeleteMessageBatch DLQ", e))?;
        }
        Ok(())
    }

    /// Sends leased dead letters back to the orders queue as new messages
    /// (their receive count starts again), then deletes them from the DLQ.
    pub async fn requeue_dead_letters(&self, leased: &[LeasedDeadLetter]) -> Result<(), PortError> {
        for chunk in leased.chunks(10) {
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
    pub async fn lease_dead_letters_of(
        &self,
        order: OrderId,
    ) -> Result<Vec<LeasedDeadLetter>, PortError> {
        let leased = self
            .lease_every_dead_letter(10_000, DEAD_LETTER_LEASE)
            .await?;
        let (mine, others): (Vec<_>, Vec<_>) = leased.into_iter().partition(|l| {
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
