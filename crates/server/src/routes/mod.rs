//! The route handlers, grouped by what they serve, and the helpers they share.

pub mod events;
pub mod ops;
pub mod orders;

use crate::error::ApiError;
use axum::extract::rejection::QueryRejection;
use axum::extract::Query;
use dofs_core::ports::{ErrorKind, PortError};

/// The query's name-value pairs in order, decoded; a query that cannot be
/// decoded is a 400 like any other bad parameter.
pub(crate) fn query_pairs(
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Vec<(String, String)>, ApiError> {
    query.map(|Query(pairs)| pairs).map_err(|e| {
        tracing::debug!(error = %e, "query string rejected");
        ApiError::invalid_field(
            "query parameters are invalid",
            "query",
            "is not a valid query string",
        )
    })
}

/// A listing's port error: `NotFound` for a request that carried a cursor
/// means the store did not recognise the cursor, which is the client's fault.
pub(crate) fn cursor_error(e: PortError, had_cursor: bool) -> ApiError {
    if had_cursor && e.kind == ErrorKind::NotFound {
        tracing::debug!(error = %e, "cursor rejected by the store");
        ApiError::invalid_field(
            "query parameters are invalid",
            "cursor",
            "cursor is not valid",
        )
    } else {
        e.into()
    }
}
