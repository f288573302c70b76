//! The order event feed: `GET /events?after&limit&orderId`.

use crate::error::ApiError;
use crate::extract::excerpt;
use crate::routes::{cursor_error, query_pairs};
use crate::state::AppState;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::routing::get;
use axum::{Json, Router};
use dofs_core::{FieldError, OrderId};
use dofs_wire::EventPage;

/// The default page of the feed.
pub const DEFAULT_LIMIT: usize = 100;
/// The largest page of the feed.
pub const MAX_LIMIT: usize = 1000;

/// The event routes any API key may use (the reader group).
pub fn routes() -> Router<AppState> {
    Router::new().route("/events", get(events))
}

/// What a feed request asks for.
#[derive(Debug, Default, PartialEq)]
struct FeedQuery {
    after: Option<String>,
    limit: Option<usize>,
    order: Option<OrderId>,
}

fn feed_query(pairs: &[(String, String)]) -> Result<FeedQuery, ApiError> {
    let mut q = FeedQuery::default();
    let mut details: Vec<FieldError> = Vec::new();
    let mut bad = |field: &str, message: &str| {
        details.push(FieldError {
            field: field.to_owned(),
            message: message.to_owned(),
        })
    };
    for (i, (name, value)) in pairs.iter().enumerate() {
        if pairs[..i].iter().any(|(n, _)| n == name) {
            bad(&excerpt(name), "appears more than once");
            continue;
        }
        match name.as_str() {
            "after" => {
                if !value.is_empty()
                    && value.len() <= 64
                    && value.bytes().all(|b| b.is_ascii_graphic())
                {
                    q.after = Some(value.clone());
                } else {
                    bad("after", "must be an eventId from this feed");
                }
            }
            "limit" => match value.parse::<usize>() {
                Ok(n) if (1..=MAX_LIMIT).contains(&n) => q.limit = Some(n),
                _ => bad("limit", "must be an integer from 1 to 1000"),
            },
            "orderId" => match OrderId::parse(value) {
                Ok(id) => q.order = Some(id),
                Err(_) => bad("orderId", "must be an order id"),
            },
            other => bad(&excerpt(other), "is not a known parameter"),
        }
    }
    if q.order.is_some() && (q.after.is_some() || q.limit.is_some()) {
        bad("orderId", "cannot be combined with after or limit");
    }
    if details.is_empty() {
        Ok(q)
    } else {
        Err(ApiError::Validation {
            message: "query parameters are invalid",
            details,
        })
    }
}

/// `GET /events`: the events in the order they were recorded, after the
/// event `after`; or, with `orderId`, every kept event of one order.
#[utoipa::path(
    get,
    path = "/events",
    tag = "events",
    operation_id = "listEvents",
    summary = "Read the order event feed, oldest first",
    params(
        ("after" = Option<String>, Query, max_length = 64, description = "Only events recorded after this eventId (pass the last page's nextCursor). From the oldest kept when absent."),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 1000, description = "Page size, 1 to 1000 (default 100)."),
        ("orderId" = Option<String>, Query, description = "Only this order's events (every one kept, oldest first); not with after or limit."),
    ),
    responses(
        (status = 200, description = "One page; `nextCursor` is what to pass as `after` next (the last item's eventId, or `after` again when nothing newer exists).", body = dofs_wire::EventPage),
        (status = 400, description = "A bad or unknown query parameter, or an `after` that is not an eventId.", body = dofs_wire::Error),
        (status = 401, description = "A key is required and missing or wrong.", body = dofs_wire::Error),
    )
)]
async fn events(
    State(state): State<AppState>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Json<EventPage>, ApiError> {
    let q = feed_query(&query_pairs(query)?)?;
    let log = &state.backend().events;
    if let Some(order) = q.order {
        let items = log.of_order(order).await?;
        return Ok(Json(EventPage {
            items: items.iter().map(dofs_wire::OrderEvent::from).collect(),
            next_cursor: None,
        }));
    }
    let page = log
        .after(q.after.as_deref(), q.limit.unwrap_or(DEFAULT_LIMIT))
        .await
        .map_err(|e| match cursor_error(e, q.after.is_some()) {
            ApiError::Validation { .. } => ApiError::invalid_field(
                "query parameters are invalid",
                "after",
                "must be an eventId from this feed",
            ),
            other => other,
        })?;
    Ok(Json(EventPage {
        items: page.items.iter().map(dofs_wire::OrderEvent::from).collect(),
        next_cursor: page.next_cursor,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn a_feed_query_takes_after_limit_or_an_order() {
        let q = feed_query(&pairs(&[("after", "41"), ("limit", "1000")])).expect("valid");
        assert_eq!((q.after.as_deref(), q.limit), (Some("41"), Some(1000)));
        assert_eq!(feed_query(&[]).expect("empty"), FeedQuery::default());
        for bad in [
            vec![("limit", "0")],
            vec![("limit", "1001")],
            vec![("after", "")],
            vec![("after", "4 2")],
            vec![("orderId", "nope")],
            vec![("since", "1")],
            vec![("after", "1"), ("after", "2")],
        ] {
            assert!(feed_query(&pairs(&bad)).is_err(), "{bad:?}");
        }
    }
}
