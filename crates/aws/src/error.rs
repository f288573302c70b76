//! Turning SDK errors into [`PortError`]s with the right [`ErrorKind`], so
//! callers retry what is worth retrying and never branch on message text.

use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use dofs_core::ports::{ErrorKind, PortError};

/// Error codes that mean "try again later" on DynamoDB, SQS and Step Functions.
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
    "RequestThrottled",
    "KmsThrottled",
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

/// A port error for a failed call of `operation`: `Transient` for timeouts,
/// connection failures and throttling, `Internal` otherwise.
pub fn port_error<E, R>(operation: &str, e: SdkError<E, R>) -> PortError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    let kind = match &e {
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
