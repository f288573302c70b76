//! `dofs submit`, `get`, `list`, `failed` and `retry`: one order at a time,
//! and the two listings.

use crate::commands::client::{encode_query, encode_segment, Api, CliError, Exit, Reply, Target};
use crate::commands::format::{
    human_duration, parse_duration, parse_timestamp, print_table, text, truncate,
};
use clap::Args;
use serde_json::{Map, Value};
use std::io::{IsTerminal, Read};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// `dofs submit`.
#[derive(Args, Debug)]
pub struct SubmitArgs {
    #[command(flatten)]
    pub target: Target,
    /// A JSON file holding the order, or `-` for stdin; sent byte for byte.
    /// Without it and without order flags, the order is read from stdin.
    #[arg(long, short = 'f', value_name = "FILE", conflicts_with_all = ["customer_id", "product_id", "quantity", "price", "metadata", "meta"])]
    pub file: Option<PathBuf>,
    /// customerId, e.g. CUST-1001.
    #[arg(long, value_name = "ID")]
    pub customer_id: Option<String>,
    /// productId, e.g. PROD-2001.
    #[arg(long, value_name = "ID")]
    pub product_id: Option<String>,
    /// quantity (sent as a JSON number when it is one).
    #[arg(long, value_name = "N")]
    pub quantity: Option<String>,
    /// price, e.g. 29.99 (sent as a JSON number when it is one).
    #[arg(long, value_name = "AMOUNT")]
    pub price: Option<String>,
    /// metadata as a JSON object, e.g. '{"source":"cli"}'.
    #[arg(long, value_name = "JSON")]
    pub metadata: Option<String>,
    /// One metadata entry with a string value; repeatable.
    #[arg(long = "meta", value_name = "KEY=VALUE")]
    pub meta: Vec<String>,
    /// Idempotency-Key header: the same key and body return the first response again.
    #[arg(long, value_name = "KEY")]
    pub idempotency_key: Option<String>,
    /// After the 202, wait until the order is FULFILLED or FAILED and show it.
    #[arg(long)]
    pub wait: bool,
    /// How long --wait waits.
    #[arg(long, default_value = "60s", value_parser = parse_duration, value_name = "DURATION")]
    pub wait_timeout: Duration,
}

/// `dofs get`.
#[derive(Args, Debug)]
pub struct GetArgs {
    #[command(flatten)]
    pub target: Target,
    /// The order id.
    pub id: String,
    /// Wait until the order is FULFILLED or FAILED.
    #[arg(long)]
    pub wait: bool,
    /// How long --wait waits.
    #[arg(long, default_value = "60s", value_parser = parse_duration, value_name = "DURATION")]
    pub wait_timeout: Duration,
}

/// Paging flags shared by the listings.
#[derive(Args, Debug, Clone)]
pub struct Paging {
    /// Items per page, 1 to 500 [server default: 50].
    #[arg(long, value_name = "N")]
    pub limit: Option<u32>,
    /// Start where a previous page ended (its nextCursor).
    #[arg(long, value_name = "CURSOR")]
    pub cursor: Option<String>,
    /// Follow every page to the end.
    #[arg(long, conflicts_with = "limit")]
    pub all: bool,
}

/// `dofs list`.
#[derive(Args, Debug)]
pub struct ListArgs {
    #[command(flatten)]
    pub target: Target,
    /// Only orders of this status: PENDING, PROCESSING, FULFILLED or FAILED.
    #[arg(long, value_name = "STATUS")]
    pub status: Option<String>,
    #[command(flatten)]
    pub paging: Paging,
}

/// `dofs failed`.
#[derive(Args, Debug)]
pub struct FailedArgs {
    #[command(flatten)]
    pub target: Target,
    #[command(flatten)]
    pub paging: Paging,
}

/// `dofs retry`.
#[derive(Args, Debug)]
pub struct RetryArgs {
    #[command(flatten)]
    pub target: Target,
    /// The id of a FAILED order.
    pub id: String,
}

/// `dofs cancel`.
#[derive(Args)]
pub struct CancelArgs {
    #[command(flatten)]
    pub target: Target,
    /// The id of a PENDING or FAILED order.
    pub id: String,
    /// Why (at most 256 characters); shown as the order's cancelReason.
    #[arg(long)]
    pub reason: Option<String>,
}

/// Statuses after which nothing happens unless an operator acts.
pub fn is_terminal(status: &str) -> bool {
    matches!(status, "FULFILLED" | "FAILED" | "CANCELLED")
}

/// Sends an order and prints the 202 body; with `--wait`, then the order.
pub async fn submit(args: SubmitArgs) -> Result<Exit, CliError> {
    let body = submit_body(&args)?;
    let api = Api::new(&args.target)?;
    let mut headers = Vec::new();
    if let Some(key) = &args.idempotency_key {
        headers.push(("Idempotency-Key", key.as_str()));
    }
    let reply = api.post_json("/order", body, &headers).await?;
    if reply.status != 202 {
        return Err(refused(reply, args.target.json));
    }
    let accepted = reply.json();
    let replayed = reply.header("idempotent-replayed") == Some("true");
    if !args.wait {
        if args.target.json {
            print_json(&accepted);
        } else {
            print_accepted(&accepted, replayed);
        }
        return Ok(Exit::Ok);
    }
    let id = accepted["orderId"]
        .as_str()
        .ok_or_else(|| CliError::Failed("the 202 body has no orderId".into()))?;
    if !args.target.json {
        print_accepted(&accepted, replayed);
        println!();
    }
    let order = wait_terminal(&api, id, args.wait_timeout).await?;
    if args.target.json {
        print_json(&order);
    } else {
        print_order(&order);
    }
    Ok(Exit::Ok)
}

/// The request body: the file or stdin as is, or a JSON object built from the flags.
fn submit_body(args: &SubmitArgs) -> Result<Vec<u8>, CliError> {
    let from_flags = args.customer_id.is_some()
        || args.product_id.is_some()
        || args.quantity.is_some()
        || args.price.is_some()
        || args.metadata.is_some()
        || !args.meta.is_empty();
    match &args.file {
        Some(path) if path.as_os_str() == "-" => read_stdin(),
        Some(path) => std::fs::read(path)
            .map_err(|e| CliError::Usage(format!("cannot read {}: {e}", path.display()))),
        None if from_flags => order_from_flags(args),
        None if std::io::stdin().is_terminal() => Err(CliError::Usage(
            "give the order by flags (--customer-id, --product-id, --quantity, --price), \
             by --file FILE, or as JSON on stdin"
                .into(),
        )),
        None => read_stdin(),
    }
}

fn read_stdin() -> Result<Vec<u8>, CliError> {
    let mut body = Vec::new();
    std::io::stdin()
        .read_to_end(&mut body)
        .map_err(|e| CliError::Usage(format!("cannot read the order from stdin: {e}")))?;
    Ok(body)
}

/// Builds the order from flags. Numbers go as JSON numbers when they parse as
/// one and as strings otherwise, so that the server, not the client, says
/// which rule is broken (it lists them all).
fn order_from_flags(args: &SubmitArgs) -> Result<Vec<u8>, CliError> {
    let mut order = Map::new();
    let string = |s: &String| Value::String(s.clone());
    let number = |s: &String| match serde_json::from_str::<Value>(s.trim()) {
        Ok(v @ Value::Number(_)) => v,
        _ => Value::String(s.clone()),
    };
    if let Some(v) = &args.customer_id {
        order.insert("customerId".into(), string(v));
    }
    if let Some(v) = &args.product_id {
        order.insert("productId".into(), string(v));
    }
    if let Some(v) = &args.quantity {
        order.insert("quantity".into(), number(v));
    }
    if let Some(v) = &args.price {
        order.insert("price".into(), number(v));
    }
    let mut metadata = match &args.metadata {
        Some(text) => match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(m)) => Some(m),
            _ => {
                return Err(CliError::Usage(format!(
                    "--metadata must be a JSON object, e.g. '{{\"source\":\"cli\"}}', not {text:?}"
                )))
            }
        },
        None => None,
    };
    for entry in &args.meta {
        let Some((key, value)) = entry.split_once('=') else {
            return Err(CliError::Usage(format!(
                "--meta must be KEY=VALUE, not {entry:?}"
            )));
        };
        metadata
            .get_or_insert_with(Map::new)
            .insert(key.to_owned(), Value::String(value.to_owned()));
    }
    if let Some(m) = metadata {
        order.insert("metadata".into(), Value::Object(m));
    }
    serde_json::to_vec(&Value::Object(order))
        .map_err(|e| CliError::Failed(format!("cannot encode the order: {e}")))
}

fn print_accepted(accepted: &Value, replayed: bool) {
    let status = text(&accepted["status"]);
    println!("{status:<10}order {}", text(&accepted["orderId"]));
    println!("{:<10}{}", "execution", text(&accepted["executionArn"]));
    println!("{:<10}{}", "message", text(&accepted["message"]));
    if replayed {
        println!(
            "{:<10}replayed: the first response to this Idempotency-Key",
            "note"
        );
    }
}

/// Shows one order; with `--wait`, once it is terminal.
pub async fn get(args: GetArgs) -> Result<Exit, CliError> {
    let api = Api::new(&args.target)?;
    let order = if args.wait {
        wait_terminal(&api, &args.id, args.wait_timeout).await
    } else {
        let reply = api
            .get(&format!("/orders/{}", encode_segment(&args.id)))
            .await?;
        ok_json(reply, args.target.json)
    }?;
    if args.target.json {
        print_json(&order);
    } else {
        print_order(&order);
    }
    Ok(Exit::Ok)
}

/// Polls an order until it is FULFILLED or FAILED, or fails after `limit`.
pub async fn wait_terminal(api: &Api, id: &str, limit: Duration) -> Result<Value, CliError> {
    let started = Instant::now();
    let path = format!("/orders/{}", encode_segment(id));
    let mut pause = Duration::from_millis(50);
    loop {
        let order = api.get_json(&path).await?;
        let status = order["status"].as_str().unwrap_or_default();
        if is_terminal(status) {
            return Ok(order);
        }
        if started.elapsed() >= limit {
            return Err(CliError::Failed(format!(
                "order {id} is still {status} after {}",
                human_duration(limit)
            )));
        }
        tokio::time::sleep(pause.min(limit.saturating_sub(started.elapsed()))).await;
        pause = (pause * 2).min(Duration::from_millis(500));
    }
}

/// Prints an order as aligned `name value` lines.
pub fn print_order(o: &Value) {
    let attempts = o["attempts"].as_u64().unwrap_or(0);
    let plural = if attempts == 1 { "" } else { "s" };
    let row = |name: &str, value: String| println!("{name:<11}{value}");
    row("order", text(&o["orderId"]));
    row(
        "status",
        format!("{} ({attempts} attempt{plural})", text(&o["status"])),
    );
    row("customer", text(&o["customerId"]));
    row("product", text(&o["productId"]));
    row("quantity", text(&o["quantity"]));
    row("price", text(&o["price"]));
    if !o["metadata"].is_null() {
        row("metadata", o["metadata"].to_string());
    }
    row("created", text(&o["createdAt"]));
    let took = match (
        o["createdAt"].as_str().and_then(parse_timestamp),
        o["updatedAt"].as_str().and_then(parse_timestamp),
    ) {
        (Some(c), Some(u)) if u >= c => format!(
            " (+{})",
            human_duration(Duration::from_millis((u - c) as u64))
        ),
        _ => String::new(),
    };
    row("updated", format!("{}{took}", text(&o["updatedAt"])));
    row("execution", text(&o["executionArn"]));
    if !o["failureReason"].is_null() {
        row("failure", text(&o["failureReason"]));
    }
    if !o["fulfillmentReference"].is_null() {
        row("reference", text(&o["fulfillmentReference"]));
    }
    if !o["cancelReason"].is_null() {
        row("cancelled", text(&o["cancelReason"]));
    }
}

/// Lists orders, one page or all of them.
pub async fn list(args: ListArgs) -> Result<Exit, CliError> {
    let api = Api::new(&args.target)?;
    let mut query = Vec::new();
    if let Some(s) = &args.status {
        query.push(format!("status={}", encode_query(&s.to_ascii_uppercase())));
    }
    let page = fetch_pages(&api, "/orders", query, &args.paging, args.target.json).await?;
    if args.target.json {
        print_json(&page.json());
        return Ok(Exit::Ok);
    }
    if page.items.is_empty() && page.next_cursor.is_none() {
        println!("no orders");
        return Ok(Exit::Ok);
    }
    let rows: Vec<Vec<String>> = page
        .items
        .iter()
        .map(|o| {
            vec![
                text(&o["orderId"]),
                text(&o["status"]),
                text(&o["attempts"]),
                text(&o["customerId"]),
                text(&o["productId"]),
                text(&o["quantity"]),
                text(&o["price"]),
                text(&o["createdAt"]),
            ]
        })
        .collect();
    print_table(
        &[
            "ORDER", "STATUS", "ATTEMPTS", "CUSTOMER", "PRODUCT", "QTY", "PRICE", "CREATED",
        ],
        &rows,
    );
    page.print_footer("orders", "dofs list");
    Ok(Exit::Ok)
}

/// Lists the failed-orders table.
pub async fn failed(args: FailedArgs) -> Result<Exit, CliError> {
    let api = Api::new(&args.target)?;
    let page = fetch_pages(
        &api,
        "/failed-orders",
        Vec::new(),
        &args.paging,
        args.target.json,
    )
    .await?;
    if args.target.json {
        print_json(&page.json());
        return Ok(Exit::Ok);
    }
    if page.items.is_empty() && page.next_cursor.is_none() {
        println!("no failed orders");
        return Ok(Exit::Ok);
    }
    let rows: Vec<Vec<String>> = page
        .items
        .iter()
        .map(|f| {
            vec![
                text(&f["orderId"]),
                text(&f["attempts"]),
                text(&f["failedAt"]),
                truncate(&text(&f["reason"]), 80),
            ]
        })
        .collect();
    print_table(&["ORDER", "ATTEMPTS", "FAILED AT", "REASON"], &rows);
    page.print_footer("failed orders", "dofs failed");
    Ok(Exit::Ok)
}

/// Retries a FAILED order.
pub async fn retry(args: RetryArgs) -> Result<Exit, CliError> {
    let api = Api::new(&args.target)?;
    let reply = api
        .send(api.request(
            reqwest::Method::POST,
            &format!("/orders/{}/retry", encode_segment(&args.id)),
        ))
        .await?;
    let order = ok_json(reply, args.target.json)?;
    print_changed(
        &order,
        args.target.json,
        "again, attempts reset, and queued for fulfillment",
    );
    Ok(Exit::Ok)
}

/// An operator action's answer: the order as JSON, or `order ID is STATUS {what}`.
fn print_changed(order: &Value, json: bool, what: &str) {
    if json {
        print_json(order);
    } else {
        println!(
            "order {} is {} {what}",
            text(&order["orderId"]),
            text(&order["status"])
        );
    }
}

/// Cancels an order and prints it.
pub async fn cancel(args: CancelArgs) -> Result<Exit, CliError> {
    let api = Api::new(&args.target)?;
    let body = match &args.reason {
        Some(reason) => serde_json::json!({ "reason": reason }).to_string(),
        None => String::new(),
    };
    let reply = api
        .post_json(
            &format!("/orders/{}/cancel", encode_segment(&args.id)),
            body,
            &[],
        )
        .await?;
    let order = ok_json(reply, args.target.json)?;
    print_changed(&order, args.target.json, "and will not be attempted again");
    Ok(Exit::Ok)
}

/// A listing: the items of one or every page, and where it stopped.
pub struct Listing {
    pub items: Vec<Value>,
    pub next_cursor: Option<String>,
    /// The first page's other fields (e.g. the DLQ's `depth`).
    pub extra: Map<String, Value>,
}

impl Listing {
    /// The listing as the server's page shape: `items`, `nextCursor`, and the extra fields.
    pub fn json(&self) -> Value {
        let mut out = self.extra.clone();
        out.insert("items".into(), Value::Array(self.items.clone()));
        out.insert(
            "nextCursor".into(),
            self.next_cursor.clone().map_or(Value::Null, Value::String),
        );
        Value::Object(out)
    }

    /// `3 orders` and, when there are more, the command for the next page.
    pub fn print_footer(&self, what: &str, command: &str) {
        println!("({} {what})", self.items.len());
        if let Some(cursor) = &self.next_cursor {
            println!("more: {command} --cursor {cursor}");
        }
    }
}

/// Fetches one page, or with `--all` every page (500 at a time).
pub async fn fetch_pages(
    api: &Api,
    path: &str,
    mut query: Vec<String>,
    paging: &Paging,
    json: bool,
) -> Result<Listing, CliError> {
    if paging.all {
        query.push("limit=500".into());
    } else if let Some(limit) = paging.limit {
        query.push(format!("limit={limit}"));
    }
    let mut cursor = paging.cursor.clone();
    let mut listing = Listing {
        items: Vec::new(),
        next_cursor: None,
        extra: Map::new(),
    };
    let mut first = true;
    loop {
        let mut q = query.clone();
        if let Some(c) = &cursor {
            q.push(format!("cursor={}", encode_query(c)));
        }
        let url = if q.is_empty() {
            path.to_owned()
        } else {
            format!("{path}?{}", q.join("&"))
        };
        let page = ok_json(api.get(&url).await?, json)?;
        let Value::Object(mut page) = page else {
            return Err(CliError::Failed(format!(
                "GET {path} did not answer a JSON object"
            )));
        };
        if let Some(Value::Array(items)) = page.remove("items") {
            listing.items.extend(items);
        }
        let next = page
            .remove("nextCursor")
            .and_then(|c| c.as_str().map(str::to_owned));
        if first {
            listing.extra = page;
            first = false;
        }
        match next {
            Some(c) if paging.all => cursor = Some(c),
            next => {
                listing.next_cursor = next;
                return Ok(listing);
            }
        }
    }
}

/// The body of a 2xx reply; otherwise the error, with the body on stdout in JSON mode.
pub fn ok_json(reply: Reply, json: bool) -> Result<Value, CliError> {
    if (200..300).contains(&reply.status) {
        Ok(reply.json())
    } else {
        Err(refused(reply, json))
    }
}

/// A refusal as an error; in JSON mode the server's body also goes to stdout.
pub fn refused(reply: Reply, json: bool) -> CliError {
    let body = reply.json();
    if json && !body.is_null() {
        print_json(&body);
    }
    CliError::Http {
        status: reply.status,
        body,
    }
}

/// Pretty JSON on stdout.
pub fn print_json(v: &Value) {
    println!(
        "{}",
        serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string())
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        submit: SubmitArgs,
    }

    fn body(args: &[&str]) -> Result<Value, CliError> {
        let mut argv = vec!["submit"];
        argv.extend_from_slice(args);
        let cli = Cli::try_parse_from(argv).map_err(|e| CliError::Usage(e.to_string()))?;
        let bytes = submit_body(&cli.submit)?;
        serde_json::from_slice(&bytes).map_err(|e| CliError::Failed(e.to_string()))
    }

    #[test]
    fn flags_build_the_order_with_numbers_as_json_numbers() {
        let order = body(&[
            "--customer-id",
            "CUST-1001",
            "--product-id",
            "PROD-2001",
            "--quantity",
            "2",
            "--price",
            "29.99",
            "--meta",
            "source=cli",
        ])
        .expect("order");
        assert_eq!(
            order,
            serde_json::json!({"customerId": "CUST-1001", "productId": "PROD-2001",
                               "quantity": 2, "price": 29.99, "metadata": {"source": "cli"}})
        );
    }

    #[test]
    fn a_number_flag_that_is_not_a_number_is_sent_as_text_for_the_server_to_reject() {
        let order = body(&["--quantity", "two"]).expect("order");
        assert_eq!(order["quantity"], "two");
    }

    #[test]
    fn metadata_that_is_not_an_object_is_a_usage_error() {
        let e = body(&["--metadata", "[1]"]).expect_err("not an object");
        assert_eq!(e.exit(), Exit::Usage);
        let e = body(&["--meta", "novalue"]).expect_err("no =");
        assert_eq!(e.exit(), Exit::Usage);
    }

    #[test]
    fn a_missing_file_is_a_usage_error() {
        let e = body(&["--file", "/nonexistent/order.json"]).expect_err("missing");
        assert_eq!(e.exit(), Exit::Usage);
    }
}
