//! Turning SDK errors into [`PortError`]s with the right [`ErrorKind`], so
//! callers retry what is worth retrying and never branch on message text.

use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use dofs_core::ports::{ErrorKind, PortError};

/// Error codes that mean "try again later" on DynamoDB and Step Functions. SQS
/// errors are classified by the SDK's typed checks instead ([`sqs_error`]):
/// its codes are not the bare names (`KMS.ThrottlingException`, not
/// `KmsThrottled`), and a string compared by hand never matched.
const TRANSIENT_CODES: &[&str] = &[
    "ThrottlingException",
    "Throttling",
    "ProvisionedThroughputExceededException",
    "RequestLimitExceeded",
    "InternalServerError",
    "InternalFailure",
    "ServiceUnavailable",
    "ServiceUnavailableException",
    "TransactionConflictException",
    "TransactionInProgressException",
];

/// The error code of an SDK error (`ConditionalCheckFailedException`, ...), if the service sent one.
pub fn code_of<E, R>(e: &SdkError<E, R>) -> Option<&str>
where
    E: ProvideErrorMetadata,
{
    match e {
        SdkError::ServiceError(s) => s.err().code(),
        _ => None,
    }
}

/// An SQS operation's error type that tells, by the SDK's typed checks,
/// whether the service throttled the call (`RequestThrottled`, and
/// `KMS.ThrottlingException` where the operation encrypts or decrypts).
pub trait SqsThrottling {
    fn is_throttling(&self) -> bool;
}

macro_rules! sqs_throttling {
    ($($op:ident :: $err:ident => |$e:ident| $check:expr),* $(,)?) => {
        $(impl SqsThrottling for aws_sdk_sqs::operation::$op::$err {
            fn is_throttling(&self) -> bool {
                let $e = self;
                $check
            }
        })*
    };
}

sqs_throttling! {
    send_message::SendMessageError => |e| e.is_request_throttled() || e.is_kms_throttled(),
    send_message_batch::SendMessageBatchError => |e| e.is_request_throttled() || e.is_kms_throttled(),
    receive_message::ReceiveMessageError => |e| e.is_request_throttled() || e.is_kms_throttled(),
    delete_message::DeleteMessageError => |e| e.is_request_throttled(),
    delete_message_batch::DeleteMessageBatchError => |e| e.is_request_throttled(),
    change_message_visibility::ChangeMessageVisibilityError => |e| e.is_request_throttled(),
    change_message_visibility_batch::ChangeMessageVisibilityBatchError => |e| e.is_request_throttled(),
    get_queue_attributes::GetQueueAttributesError => |e| e.is_request_throttled(),
}

/// [`port_error`] for an SQS call: throttling (typed check) is `Transient`.
pub fn sqs_error<E, R>(operation: &str, e: SdkError<E, R>) -> PortError
where
    E: SqsThrottling + ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    let throttled = e
        .as_service_error()
        .is_some_and(SqsThrottling::is_throttling);
    classified(operation, e, throttled)
}

/// A port error for a failed call of `operation`: `Transient` for timeouts,
/// connection failures and throttling, `Internal` otherwise.
pub fn port_error<E, R>(operation: &str, e: SdkError<E, R>) -> PortError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    classified(operation, e, false)
}

fn classified<E, R>(operation: &str, e: SdkError<E, R>, throttled: bool) -> PortError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    let kind = match &e {
        _ if throttled => ErrorKind::Transient,
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            ErrorKind::Transient
        }
        SdkError::ServiceError(s) => match s.err().code() {
            Some(c) if TRANSIENT_CODES.contains(&c) => ErrorKind::Transient,
            _ => ErrorKind::Internal,
        },
        _ => ErrorKind::Internal,
    };
    let detail = match &e {
        SdkError::ServiceError(s) => format!(
            "{}: {}",
            s.err().code().unwrap_or("unknown"),
            s.err().message().unwrap_or("")
        ),
        other => format!("{other}"),
    };
    PortError::with_source(kind, format!("{operation} failed ({detail})"), e)
}

/// An item that does not have the shape this crate writes.
pub fn corrupt(what: &str) -> PortError {
    PortError::new(ErrorKind::Internal, format!("corrupt item: {what}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_sqs::error::ErrorMetadata;
    use aws_sdk_sqs::operation::change_message_visibility::ChangeMessageVisibilityError;
    use aws_sdk_sqs::operation::receive_message::ReceiveMessageError;
    use aws_sdk_sqs::types::error::{KmsThrottled, MessageNotInflight};

    fn meta(code: &str) -> ErrorMetadata {
        ErrorMetadata::builder().code(code).message("m").build()
    }

    #[test]
    fn sqs_throttling_is_transient_by_the_sdks_typed_checks() {
        // The code the SDK reports for SQS's KMS throttling is not "KmsThrottled".
        let err = ReceiveMessageError::KmsThrottled(
            KmsThrottled::builder()
                .meta(meta("KMS.ThrottlingException"))
                .build(),
        );
        let e = SdkError::<_, ()>::service_error(err, ());
        assert_eq!(code_of(&e), Some("KMS.ThrottlingException"));
        assert_eq!(sqs_error("ReceiveMessage", e).kind, ErrorKind::Transient);
    }

    #[test]
    fn a_message_not_in_flight_is_recognised_by_type_not_by_code() {
        let err = ChangeMessageVisibilityError::MessageNotInflight(
            MessageNotInflight::builder()
                .meta(meta("AWS.SimpleQueueService.MessageNotInflight"))
                .build(),
        );
        let e = SdkError::<_, ()>::service_error(err, ());
        assert_ne!(code_of(&e), Some("MessageNotInflight"));
        assert!(e
            .as_service_error()
            .is_some_and(|s| s.is_message_not_inflight()));
        // Not throttling: an internal error if it ever reached port_error.
        assert_eq!(
            sqs_error("ChangeMessageVisibility", e).kind,
            ErrorKind::Internal
        );
    }
}
