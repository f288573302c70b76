//! Turning SDK errors into [`PortError`]s with the right [`ErrorKind`], so
//! callers retry what is worth retrying and never branch on message text.

use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::create_table::CreateTableError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::operation::update_time_to_live::UpdateTimeToLiveError;
use aws_sdk_sfn::operation::describe_execution::DescribeExecutionError;
use aws_sdk_sfn::operation::start_execution::StartExecutionError;
use dofs_core::ports::{ErrorKind, PortError};

/// Error codes that mean "try again later" and that reach us as an operation's
/// `Unhandled` error, because the SDK does not model them for that operation:
/// only the code (`ProvideErrorMetadata::code()`) tells them apart, so a string
/// is the only way. They are the protocol-level errors every AWS service may
/// send (`Throttling` on awsQuery services such as CloudWatch, `InternalFailure`,
/// `ServiceUnavailable`), and `ThrottlingException` where the operation does not
/// model it: Step Functions (none of its operations do) and DynamoDB's table
/// operations (`CreateTable`, `DescribeTable`, `UpdateTimeToLive`). What the
/// SDK does model is checked by type ([`Transient`]); SQS by [`sqs_error`]:
/// its codes are not the bare names (`KMS.ThrottlingException`, not
/// `KmsThrottled`), and a string compared by hand never matched.
const UNMODELLED_TRANSIENT_CODES: &[&str] = &[
    "ThrottlingException",
    "Throttling",
    "InternalFailure",
    "ServiceUnavailable",
    "ServiceUnavailableException",
];

/// The error code of an SDK error (`ConditionalCheckFailedException`, ...), if
/// the service sent one. For errors the SDK does not model for the operation
/// (they arrive as `Unhandled`) and for messages; branch on the typed checks
/// (`e.as_service_error()` and the `is_...()` methods) wherever the SDK has one.
pub fn code_of<E, R>(e: &SdkError<E, R>) -> Option<&str>
where
    E: ProvideErrorMetadata,
{
    match e {
        SdkError::ServiceError(s) => s.err().code(),
        _ => None,
    }
}

/// An operation's error type that tells, by the SDK's typed checks, whether
/// the service asked to be called again later (throttling, capacity, a
/// transient server error or a conflict with a transaction in progress).
/// [`port_error`] takes only these, so an operation added without saying
/// which of its modelled errors are transient does not compile.
pub trait Transient {
    fn is_transient(&self) -> bool;
}

macro_rules! transient {
    ($($sdk:ident :: $op:ident :: $err:ident => |$e:ident| $check:expr),* $(,)?) => {
        $(impl Transient for $sdk::operation::$op::$err {
            #[allow(unused_variables)]
            fn is_transient(&self) -> bool {
                let $e = self;
                $check
            }
        })*
    };
}

transient! {
    // DynamoDB's data operations model their throttling and transient errors.
    aws_sdk_dynamodb::get_item::GetItemError => |e| e.is_provisioned_throughput_exceeded_exception()
        || e.is_request_limit_exceeded() || e.is_throttling_exception() || e.is_internal_server_error(),
    aws_sdk_dynamodb::batch_get_item::BatchGetItemError => |e| e.is_provisioned_throughput_exceeded_exception()
        || e.is_request_limit_exceeded() || e.is_throttling_exception() || e.is_internal_server_error(),
    aws_sdk_dynamodb::query::QueryError => |e| e.is_provisioned_throughput_exceeded_exception()
        || e.is_request_limit_exceeded() || e.is_throttling_exception() || e.is_internal_server_error(),
    aws_sdk_dynamodb::put_item::PutItemError => |e| e.is_provisioned_throughput_exceeded_exception()
        || e.is_request_limit_exceeded() || e.is_throttling_exception() || e.is_internal_server_error()
        || e.is_transaction_conflict_exception(),
    aws_sdk_dynamodb::update_item::UpdateItemError => |e| e.is_provisioned_throughput_exceeded_exception()
        || e.is_request_limit_exceeded() || e.is_throttling_exception() || e.is_internal_server_error()
        || e.is_transaction_conflict_exception(),
    aws_sdk_dynamodb::delete_item::DeleteItemError => |e| e.is_provisioned_throughput_exceeded_exception()
        || e.is_request_limit_exceeded() || e.is_throttling_exception() || e.is_internal_server_error()
        || e.is_transaction_conflict_exception(),
    aws_sdk_dynamodb::transact_write_items::TransactWriteItemsError => |e| e.is_provisioned_throughput_exceeded_exception()
        || e.is_request_limit_exceeded() || e.is_throttling_exception() || e.is_internal_server_error()
        || e.is_transaction_in_progress_exception(),
    // Table operations: only InternalServerError is modelled (throttling is
    // unmodelled, see UNMODELLED_TRANSIENT_CODES).
    aws_sdk_dynamodb::create_table::CreateTableError => |e| e.is_internal_server_error(),
    aws_sdk_dynamodb::describe_table::DescribeTableError => |e| e.is_internal_server_error(),
    aws_sdk_dynamodb::update_time_to_live::UpdateTimeToLiveError => |e| e.is_internal_server_error(),
    // Step Functions models no throttling or server error for these operations
    // (KmsThrottlingException is modelled, but was never treated as transient
    // here; kept so).
    aws_sdk_sfn::start_execution::StartExecutionError => |e| false,
    aws_sdk_sfn::describe_execution::DescribeExecutionError => |e| false,
    aws_sdk_sfn::get_execution_history::GetExecutionHistoryError => |e| false,
    // Nor do these (EventBridge's InternalException, CloudWatch's
    // InternalServiceFault were not transient here before either; kept so).
    // SQS calls made in setup (crates/aws/src/setup.rs) go through
    // port_error too, and RequestThrottled was never transient there; the
    // queue adapter's SQS calls are classified by sqs_error.
    aws_sdk_eventbridge::put_events::PutEventsError => |e| false,
    aws_sdk_cloudwatch::put_metric_data::PutMetricDataError => |e| false,
    aws_sdk_cloudwatch::get_metric_data::GetMetricDataError => |e| false,
    aws_sdk_cloudwatch::list_metrics::ListMetricsError => |e| false,
    aws_sdk_sqs::create_queue::CreateQueueError => |e| false,
    aws_sdk_sqs::get_queue_attributes::GetQueueAttributesError => |e| false,
}

/// A conditional write's error type that tells, by the SDK's typed check,
/// whether its condition expression failed.
pub trait ConditionalWrite {
    fn is_condition_failed(&self) -> bool;
}

macro_rules! conditional_write {
    ($($op:ident :: $err:ident),* $(,)?) => {
        $(impl ConditionalWrite for aws_sdk_dynamodb::operation::$op::$err {
            fn is_condition_failed(&self) -> bool {
                self.is_conditional_check_failed_exception()
            }
        })*
    };
}

conditional_write! {
    put_item::PutItemError,
    update_item::UpdateItemError,
    delete_item::DeleteItemError,
}

/// Whether a conditional `PutItem`, `UpdateItem` or `DeleteItem` failed
/// because its condition did not hold (typed, not by code).
pub fn condition_failed<E: ConditionalWrite, R>(e: &SdkError<E, R>) -> bool {
    e.as_service_error()
        .is_some_and(ConditionalWrite::is_condition_failed)
}

/// The cancellation reason of a transaction item whose condition failed.
/// `CancellationReason::code` is a plain string in the SDK's model (there is
/// no enum for it), so comparing it with this string is the only way.
pub const CONDITION_FAILED_REASON: &str = "ConditionalCheckFailed";

/// The reasons a `TransactWriteItems` was cancelled (typed check of
/// `TransactionCanceledException`), without the `None` of items that were not
/// the cause; `None` when the error is not a cancellation. The list is empty
/// when the service gave no reasons (emulators may not).
pub fn cancellation_reasons<R>(e: &SdkError<TransactWriteItemsError, R>) -> Option<Vec<String>> {
    match e.as_service_error()? {
        TransactWriteItemsError::TransactionCanceledException(c) => Some(
            c.cancellation_reasons()
                .iter()
                .filter_map(|r| r.code().map(str::to_owned))
                .filter(|c| c != "None")
                .collect(),
        ),
        _ => None,
    }
}

/// Whether `CreateTable` failed because the table exists.
pub fn table_exists<R>(e: &SdkError<CreateTableError, R>) -> bool {
    e.as_service_error()
        .is_some_and(CreateTableError::is_resource_in_use_exception)
}

/// Whether `UpdateTimeToLive` was refused with `ValidationException`, which
/// is what it answers when TTL is already enabled. UpdateTimeToLive does not
/// model ValidationException (it arrives as `Unhandled`), so its code is the
/// only way to tell.
pub fn ttl_unchanged<R>(e: &SdkError<UpdateTimeToLiveError, R>) -> bool {
    code_of(e) == Some("ValidationException")
}

/// Whether `StartExecution` failed because an execution of that name exists.
pub fn execution_already_exists<R>(e: &SdkError<StartExecutionError, R>) -> bool {
    e.as_service_error()
        .is_some_and(StartExecutionError::is_execution_already_exists)
}

/// Whether `DescribeExecution` failed because there is no such execution.
pub fn execution_does_not_exist<R>(e: &SdkError<DescribeExecutionError, R>) -> bool {
    e.as_service_error()
        .is_some_and(DescribeExecutionError::is_execution_does_not_exist)
}

/// Whether `DescribeExecution` failed because the ARN is not a valid one.
pub fn invalid_execution_arn<R>(e: &SdkError<DescribeExecutionError, R>) -> bool {
    e.as_service_error()
        .is_some_and(DescribeExecutionError::is_invalid_arn)
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
    E: Transient + ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    let transient = e.as_service_error().is_some_and(Transient::is_transient);
    classified(operation, e, transient)
}

fn classified<E, R>(operation: &str, e: SdkError<E, R>, transient: bool) -> PortError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    let kind = match &e {
        _ if transient => ErrorKind::Transient,
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            ErrorKind::Transient
        }
        SdkError::ServiceError(s) => match s.err().code() {
            Some(c) if UNMODELLED_TRANSIENT_CODES.contains(&c) => ErrorKind::Transient,
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

    #[test]
    fn a_failed_condition_is_recognised_by_type() {
        use aws_sdk_dynamodb::operation::put_item::PutItemError;
        use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
        use aws_sdk_dynamodb::types::error::ConditionalCheckFailedException;

        let failed = || {
            ConditionalCheckFailedException::builder()
                .meta(meta("ConditionalCheckFailedException"))
                .message("The conditional request failed")
                .build()
        };
        let put = SdkError::<_, ()>::service_error(
            PutItemError::ConditionalCheckFailedException(failed()),
            (),
        );
        assert!(condition_failed(&put));
        // A failed condition is an answer, not a reason to try again.
        assert_eq!(port_error("PutItem", put).kind, ErrorKind::Internal);
        let update = SdkError::<_, ()>::service_error(
            UpdateItemError::ConditionalCheckFailedException(failed()),
            (),
        );
        assert!(condition_failed(&update));

        // An unmodelled error is not taken for one, whatever its message.
        let other = SdkError::<_, ()>::service_error(
            PutItemError::generic(
                ErrorMetadata::builder()
                    .code("ValidationException")
                    .message("ConditionalCheckFailedException")
                    .build(),
            ),
            (),
        );
        assert!(!condition_failed(&other));
        let timeout = SdkError::<PutItemError, ()>::timeout_error("slow");
        assert!(!condition_failed(&timeout));
    }

    #[test]
    fn a_cancelled_transaction_gives_its_reasons_by_type() {
        use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
        use aws_sdk_dynamodb::types::error::TransactionCanceledException;
        use aws_sdk_dynamodb::types::CancellationReason;

        let reason = |code: &str| CancellationReason::builder().code(code).build();
        let err = TransactWriteItemsError::TransactionCanceledException(
            TransactionCanceledException::builder()
                .meta(meta("TransactionCanceledException"))
                .cancellation_reasons(reason("None"))
                .cancellation_reasons(reason(CONDITION_FAILED_REASON))
                .cancellation_reasons(reason("TransactionConflict"))
                .build(),
        );
        let e = SdkError::<_, ()>::service_error(err, ());
        assert_eq!(
            cancellation_reasons(&e),
            Some(vec![
                CONDITION_FAILED_REASON.to_owned(),
                "TransactionConflict".to_owned()
            ])
        );

        // No reasons given (an emulator): still a cancellation.
        let bare = SdkError::<_, ()>::service_error(
            TransactWriteItemsError::TransactionCanceledException(
                TransactionCanceledException::builder()
                    .meta(meta("TransactionCanceledException"))
                    .build(),
            ),
            (),
        );
        assert_eq!(cancellation_reasons(&bare), Some(Vec::new()));

        // Not a cancellation: left to port_error, which retries throttling.
        let in_progress = SdkError::<_, ()>::service_error(
            TransactWriteItemsError::generic(meta("ValidationException")),
            (),
        );
        assert_eq!(cancellation_reasons(&in_progress), None);
        assert_eq!(
            port_error("TransactWriteItems", in_progress).kind,
            ErrorKind::Internal
        );
    }

    #[test]
    fn an_existing_execution_is_recognised_by_type() {
        use aws_sdk_sfn::operation::describe_execution::DescribeExecutionError;
        use aws_sdk_sfn::types::error::{ExecutionAlreadyExists, ExecutionDoesNotExist};

        let exists = SdkError::<_, ()>::service_error(
            StartExecutionError::ExecutionAlreadyExists(
                ExecutionAlreadyExists::builder()
                    .meta(meta("ExecutionAlreadyExists"))
                    .build(),
            ),
            (),
        );
        assert!(execution_already_exists(&exists));
        assert_eq!(
            port_error("StartExecution", exists).kind,
            ErrorKind::Internal
        );

        let other = SdkError::<_, ()>::service_error(
            StartExecutionError::generic(meta("ExecutionAlreadyExists ")),
            (),
        );
        assert!(!execution_already_exists(&other));

        let missing = SdkError::<_, ()>::service_error(
            DescribeExecutionError::ExecutionDoesNotExist(
                ExecutionDoesNotExist::builder()
                    .meta(meta("ExecutionDoesNotExist"))
                    .build(),
            ),
            (),
        );
        assert!(execution_does_not_exist(&missing));
        assert!(!invalid_execution_arn(&missing));
    }

    #[test]
    fn throttling_is_transient_typed_where_modelled_and_by_code_where_not() {
        use aws_sdk_dynamodb::operation::get_item::GetItemError;
        use aws_sdk_dynamodb::types::error::{
            ProvisionedThroughputExceededException, ThrottlingException,
        };

        // DynamoDB models throttling on its data operations.
        let throttled = SdkError::<_, ()>::service_error(
            GetItemError::ThrottlingException(
                ThrottlingException::builder()
                    .meta(meta("ThrottlingException"))
                    .build(),
            ),
            (),
        );
        assert_eq!(port_error("GetItem", throttled).kind, ErrorKind::Transient);
        let capacity = SdkError::<_, ()>::service_error(
            GetItemError::ProvisionedThroughputExceededException(
                ProvisionedThroughputExceededException::builder()
                    .meta(meta("ProvisionedThroughputExceededException"))
                    .build(),
            ),
            (),
        );
        assert_eq!(port_error("GetItem", capacity).kind, ErrorKind::Transient);

        // Step Functions does not: its throttling arrives unmodelled, by code.
        let sfn = SdkError::<_, ()>::service_error(
            StartExecutionError::generic(meta("ThrottlingException")),
            (),
        );
        assert_eq!(port_error("StartExecution", sfn).kind, ErrorKind::Transient);
        let sfn_other = SdkError::<_, ()>::service_error(
            StartExecutionError::generic(meta("AccessDeniedException")),
            (),
        );
        assert_eq!(
            port_error("StartExecution", sfn_other).kind,
            ErrorKind::Internal
        );
    }
}
