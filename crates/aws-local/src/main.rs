//! `dofs-local-aws`: the AWS shape of DOFS on one machine, with no AWS account.
//!
//! moto server (started by `scripts/local-aws.sh`, or any endpoint given with
//! `--aws-endpoint`) plays DynamoDB and SQS, including the orders queue's
//! redrive to the DLQ. This binary creates the tables and queues with the AWS
//! adapters' own setup code, runs the five real Lambda binaries behind a
//! local Lambda runtime API, and plays the three parts the emulator cannot:
//!
//! - API Gateway ([`apigw`]): HTTP on `--bind` → proxy event → `api_handler`;
//! - Step Functions ([`sfn`]): the ASL workflow run by the embedded
//!   interpreter, its Lambda tasks invoked through the Lambda invoke API;
//! - the SQS event source mapping and the EventBridge schedule ([`esm`]).
//!
//! With `--count-calls` it counts every AWS call, Lambda invocation and
//! state transition ([`count`]), served at `GET /local/counts`.
//!
//! Its first line on stdout is `dofs-local-aws listening on http://ADDR`.
//! docs/aws-local.md says precisely what is emulated and what differs.

mod apigw;
mod count;
mod esm;
mod lambda;
mod sfn;

use anyhow::Context;
use clap::Parser;
use dofs_aws::setup::{self, QueueOptions, ResourceNames};
use std::collections::HashMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use tokio::process::Command;
use tokio::sync::watch;

const REGION: &str = "us-east-1";
const ACCOUNT: &str = "123456789012";

/// The functions: binary name, timeout (Terraform's defaults) and instances per unit.
const FUNCTIONS: [(&str, u64, usize); 5] = [
    ("api_handler", 15, 2),
    ("validator", 10, 2),
    ("order_storage", 10, 2),
    ("fulfill_order", 30, 1),
    ("dlq_processor", 60, 1),
];

#[derive(Parser, Debug)]
#[command(
    name = "dofs-local-aws",
    version,
    about = "DOFS's AWS shape on moto server: the real Lambdas, with API Gateway, Step Functions task dispatch and the SQS event source played locally"
)]
struct Args {
    /// Where the contract's HTTP API listens (the API Gateway stand-in).
    #[arg(long, default_value = "127.0.0.1:8080")]
    bind: String,
    /// The emulator's endpoint (moto server).
    #[arg(long, env = "AWS_ENDPOINT_URL")]
    aws_endpoint: String,
    /// Name prefix of tables, queues, functions and the state machine (Terraform's name_prefix).
    #[arg(long, default_value = "dofs-local")]
    prefix: String,
    /// DOFS_ENVIRONMENT given to the functions.
    #[arg(long = "env", default_value = "local")]
    environment: String,
    /// Directory holding the five Lambda binaries [default: this binary's directory].
    #[arg(long)]
    lambda_dir: Option<PathBuf>,
    /// Use this Lambda invoke API (for example `cargo lambda watch` on
    /// http://127.0.0.1:9000) instead of running the binaries here.
    #[arg(long)]
    invoke_endpoint: Option<String>,
    /// Instances per function (api_handler gets twice as many).
    #[arg(long, default_value_t = 2)]
    instances: usize,
    #[arg(long, env = "DOFS_FULFILLMENT_SUCCESS_RATE", default_value_t = 0.7)]
    success_rate: f64,
    #[arg(long, env = "DOFS_FULFILLMENT_SEED")]
    seed: Option<u64>,
    /// What a fulfillment attempt does: simulated or http (CONTRACT §7).
    /// These and the `--fulfillment-http-*` values are given to fulfill_order
    /// as Terraform gives them, and checked by it at its cold start.
    #[arg(long, env = "DOFS_FULFILLMENT_MODE", default_value = "simulated")]
    fulfillment_mode: String,
    /// The user's fulfillment service (http mode).
    #[arg(long, env = "DOFS_FULFILLMENT_HTTP_URL")]
    fulfillment_http_url: Option<String>,
    /// The `whsec_` signing secret itself (on AWS it comes from an SSM parameter).
    #[arg(long, env = "DOFS_FULFILLMENT_HTTP_SECRET", hide_env_values = true)]
    fulfillment_http_secret: Option<String>,
    /// The name of an SSM SecureString parameter holding the secret, as on AWS.
    #[arg(long, env = "DOFS_FULFILLMENT_HTTP_SECRET_PARAMETER")]
    fulfillment_http_secret_parameter: Option<String>,
    #[arg(
        long,
        env = "DOFS_FULFILLMENT_HTTP_TIMEOUT_MS",
        default_value_t = 10_000
    )]
    fulfillment_http_timeout_ms: u64,
    #[arg(long, env = "DOFS_FULFILLMENT_HTTP_CONCURRENCY", default_value_t = 64)]
    fulfillment_http_concurrency: usize,
    /// The attempt limit (`queue.max_receive_count`), given to the functions
    /// as DOFS_QUEUE_MAX_RECEIVE_COUNT: attempts that ran, counted on the order.
    #[arg(long, default_value_t = 3)]
    max_receive_count: u32,
    /// Receives the orders queue's redrive policy allows beyond the attempt
    /// limit before SQS itself dead-letters a message (Terraform's
    /// redrive_margin): deliveries that never reach the function, such as
    /// throttled ones, are received but are no attempt.
    #[arg(long, default_value_t = setup::REDRIVE_MARGIN)]
    redrive_margin: u32,
    /// The event source mapping drops each message's first K deliveries
    /// before fulfill_order runs, as a throttled function does (and makes
    /// them visible again at once, where SQS waits out the visibility
    /// timeout). To show that such deliveries cost no attempt.
    #[arg(long, value_name = "K", default_value_t = 0)]
    drop_first_deliveries: u32,
    /// The orders queue's visibility timeout, in seconds.
    #[arg(long, default_value_t = 30)]
    visibility_timeout: u64,
    /// api_handler's timeout in milliseconds [default: Terraform's, 15 s]:
    /// each invocation's deadline. The function answers a second before it,
    /// so a short one shows the DLQ actions stopping in time (`more`).
    #[arg(long, value_name = "MS")]
    api_timeout_ms: Option<u64>,
    #[arg(long, default_value_t = 1000)]
    backoff_base_ms: u64,
    #[arg(long, default_value_t = 30_000)]
    backoff_max_ms: u64,
    /// How often dlq_processor runs (the EventBridge rule: every minute).
    #[arg(long, default_value_t = 60_000)]
    dlq_interval_ms: u64,
    /// Concurrent SQS pollers for fulfill_order.
    #[arg(long, default_value_t = 2)]
    pollers: usize,
    /// The ASL definition [default: workflow/order-processing.asl.json, built in].
    #[arg(long)]
    workflow: Option<PathBuf>,
    /// Where the functions' logs go [default: a directory under the system temp dir].
    #[arg(long)]
    log_dir: Option<PathBuf>,
    /// Client API keys of the usage plan (comma-separated). With no key at all,
    /// the gateway requires none and every request is an operator's.
    #[arg(
        long,
        env = "DOFS_LOCAL_API_KEYS",
        value_delimiter = ',',
        hide_env_values = true
    )]
    api_key: Vec<String>,
    /// Operator API keys of the usage plan (comma-separated).
    #[arg(
        long,
        env = "DOFS_LOCAL_OPERATOR_KEYS",
        value_delimiter = ',',
        hide_env_values = true
    )]
    operator_key: Vec<String>,
    /// Count every AWS API call (by caller, service and action), Lambda
    /// invocation and Step Functions state transition, and serve the counts
    /// at `GET /local/counts` on the internal port (its URL is printed on
    /// stderr). Each caller's calls pass through a counting forwarder on
    /// their way to the emulator, unchanged.
    #[arg(long)]
    count_calls: bool,
}

/// An SQS client of `config` whose calls go to `endpoint`.
fn sqs_at(config: &aws_config::SdkConfig, endpoint: &str) -> aws_sdk_sqs::Client {
    aws_sdk_sqs::Client::from_conf(
        aws_sdk_sqs::config::Builder::from(config)
            .endpoint_url(endpoint)
            .build(),
    )
}

/// fulfill_order's timeout in seconds: Terraform's 30, or in http mode the
/// HTTP timeout plus 10 s for the order's reads and writes, if longer.
fn fulfill_order_timeout(args: &Args) -> u64 {
    let terraform = FUNCTIONS
        .iter()
        .find(|(bin, _, _)| *bin == "fulfill_order")
        .map_or(30, |(_, t, _)| *t);
    if args.fulfillment_mode.trim() != "http" {
        return terraform;
    }
    terraform.max(args.fulfillment_http_timeout_ms.div_ceil(1000) + 10)
}

/// The `DOFS_FULFILLMENT_*` variables of the http mode, as given.
fn fulfillment_env(args: &Args) -> Vec<(String, String)> {
    let mut env = vec![
        (
            "DOFS_FULFILLMENT_MODE".into(),
            args.fulfillment_mode.clone(),
        ),
        (
            "DOFS_FULFILLMENT_HTTP_TIMEOUT_MS".into(),
            args.fulfillment_http_timeout_ms.to_string(),
        ),
        (
            "DOFS_FULFILLMENT_HTTP_CONCURRENCY".into(),
            args.fulfillment_http_concurrency.to_string(),
        ),
    ];
    let optional = [
        ("DOFS_FULFILLMENT_HTTP_URL", &args.fulfillment_http_url),
        (
            "DOFS_FULFILLMENT_HTTP_SECRET",
            &args.fulfillment_http_secret,
        ),
        (
            "DOFS_FULFILLMENT_HTTP_SECRET_PARAMETER",
            &args.fulfillment_http_secret_parameter,
        ),
    ];
    for (name, value) in optional {
        if let Some(v) = value {
            env.push((name.into(), v.clone()));
        }
    }
    env
}

fn function_name(prefix: &str, bin: &str) -> String {
    format!("{prefix}-{}", bin.replace('_', "-"))
}

fn function_arn(name: &str) -> String {
    format!("arn:aws:lambda:{REGION}:{ACCOUNT}:function:{name}")
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("dofs-local-aws: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    let credentials = [
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
    ]
    .map(|(k, d)| (k, std::env::var(k).unwrap_or_else(|_| d.to_owned())));
    let creds = aws_sdk_dynamodb::config::Credentials::new(
        credentials[0].1.clone(),
        credentials[1].1.clone(),
        None,
        None,
        "dofs-local-aws",
    );
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(&args.aws_endpoint)
        .region(aws_config::Region::new(REGION))
        .credentials_provider(creds)
        .load()
        .await;
    let dynamodb = aws_sdk_dynamodb::Client::new(&config);
    let sqs = aws_sdk_sqs::Client::new(&config);

    // fulfill_order outlives its slowest attempt, and a message stays hidden
    // while the function works on it (as Terraform sets them).
    let fulfill_timeout = fulfill_order_timeout(&args);
    if let Some(ms) = args.api_timeout_ms {
        anyhow::ensure!(
            ms > 1000,
            "--api-timeout-ms {ms} leaves api_handler no time: it answers a second before its deadline"
        );
    }
    anyhow::ensure!(
        args.visibility_timeout >= fulfill_timeout,
        "--visibility-timeout {} s must be at least fulfill_order's timeout, {fulfill_timeout} s (DOFS_FULFILLMENT_HTTP_TIMEOUT_MS plus a margin)",
        args.visibility_timeout
    );
    let created = setup::create_all(
        &dynamodb,
        &sqs,
        ResourceNames::with_prefix(&args.prefix),
        QueueOptions {
            visibility_timeout: Duration::from_secs(args.visibility_timeout),
            max_receive_count: setup::redrive_receive_count(
                args.max_receive_count,
                args.redrive_margin,
            ),
        },
    )
    .await
    .with_context(|| format!("creating the tables and queues on {}", args.aws_endpoint))?;
    tracing::info!(?created, "tables and queues ready");

    // `stop` ends the pollers and the schedule; `halt`, once they are done,
    // the function instances (a batch being worked on is finished first).
    let (stop, stopped) = watch::channel(false);
    let (halt, halted) = watch::channel(false);
    let internal = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .context("binding the internal listener")?;
    let internal_url = format!("http://{}", internal.local_addr()?);
    let counts = args.count_calls.then(|| Arc::new(count::Counts::default()));
    // Where a caller's AWS calls go: the emulator, or its counting forwarder.
    let endpoint_for = |caller: &'static str| {
        let counts = counts.clone();
        let (moto, states) = (args.aws_endpoint.clone(), internal_url.clone());
        async move {
            match counts {
                Some(c) => count::start(caller, &moto, &states, &c).await,
                None => Ok(moto),
            }
        }
    };

    let state_machine_arn = format!(
        "arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:{}-order-processing",
        args.prefix
    );
    let names: HashMap<&str, String> = FUNCTIONS
        .iter()
        .map(|(bin, _, _)| (*bin, function_name(&args.prefix, bin)))
        .collect();
    let name = |bin: &str| names.get(bin).cloned().unwrap_or_default();

    // The functions' environment: Terraform's variables, plus the emulator.
    let mut env: Vec<(String, String)> = vec![
        ("DOFS_ENVIRONMENT".into(), args.environment.clone()),
        (
            "DOFS_ORDERS_TABLE".into(),
            created.names.orders_table.clone(),
        ),
        (
            "DOFS_FAILED_ORDERS_TABLE".into(),
            created.names.failed_orders_table.clone(),
        ),
        (
            "DOFS_IDEMPOTENCY_TABLE".into(),
            created.names.idempotency_table.clone(),
        ),
        (
            "DOFS_EVENTS_TABLE".into(),
            created.names.events_table.clone(),
        ),
        (
            "DOFS_ORDERS_QUEUE_URL".into(),
            created.orders_queue_url.clone(),
        ),
        ("DOFS_DLQ_URL".into(), created.dlq_url.clone()),
        (
            "DOFS_FULFILLMENT_SUCCESS_RATE".into(),
            args.success_rate.to_string(),
        ),
        (
            "DOFS_QUEUE_MAX_RECEIVE_COUNT".into(),
            args.max_receive_count.to_string(),
        ),
        (
            "DOFS_QUEUE_BACKOFF_BASE_MS".into(),
            args.backoff_base_ms.to_string(),
        ),
        (
            "DOFS_QUEUE_BACKOFF_MAX_MS".into(),
            args.backoff_max_ms.to_string(),
        ),
        ("AWS_ENDPOINT_URL".into(), args.aws_endpoint.clone()),
        ("AWS_ENDPOINT_URL_SFN".into(), internal_url.clone()),
        ("AWS_REGION".into(), REGION.into()),
        ("AWS_DEFAULT_REGION".into(), REGION.into()),
        ("AWS_ACCESS_KEY_ID".into(), credentials[0].1.clone()),
        ("AWS_SECRET_ACCESS_KEY".into(), credentials[1].1.clone()),
    ];
    if let Some(seed) = args.seed {
        env.push(("DOFS_FULFILLMENT_SEED".into(), seed.to_string()));
    }
    env.extend(fulfillment_env(&args));
    // API Gateway's keys; api_handler learns the operator keys' ids, as Terraform sets it.
    let api_keys = Arc::new(apigw::ApiKeys::new(&args.api_key, &args.operator_key));
    env.push((
        "DOFS_OPERATOR_API_KEY_IDS".into(),
        api_keys.operator_ids_var(),
    ));

    let log_dir = match &args.log_dir {
        Some(d) => d.clone(),
        None => std::env::temp_dir().join(format!("dofs-local-aws-{}", std::process::id())),
    };
    std::fs::create_dir_all(&log_dir)
        .with_context(|| format!("creating the log directory {}", log_dir.display()))?;

    let mut functions = HashMap::new();
    let mut supervisors = Vec::new();
    let invoker = match &args.invoke_endpoint {
        Some(endpoint) => {
            let env_file = log_dir.join("lambda.env");
            let mut env = env.clone();
            if counts.is_some() {
                count::route_env(&mut env, &endpoint_for("functions").await?);
            }
            let mut text: String = env.iter().map(|(k, v)| format!("{k}={v}\n")).collect();
            text.push_str(&format!("DOFS_STATE_MACHINE_ARN={state_machine_arn}\n"));
            std::fs::write(&env_file, text)?;
            eprintln!(
                "dofs-local-aws: functions are invoked at {endpoint}; start them with the environment in {}",
                env_file.display()
            );
            // cargo lambda watch knows each function by its binary's name.
            let aliases = names
                .iter()
                .map(|(bin, n)| (n.clone(), bin.to_string()))
                .collect();
            lambda::Invoker::new(endpoint, aliases)
        }
        None => {
            let dir = match &args.lambda_dir {
                Some(d) => d.clone(),
                None => std::env::current_exe()?
                    .parent()
                    .map(PathBuf::from)
                    .context("this binary has no directory")?,
            };
            for (bin, timeout, per_unit) in FUNCTIONS {
                let timeout = match (bin, args.api_timeout_ms) {
                    ("fulfill_order", _) => Duration::from_secs(fulfill_timeout),
                    ("api_handler", Some(ms)) => Duration::from_millis(ms),
                    _ => Duration::from_secs(timeout),
                };
                let path = dir.join(bin);
                anyhow::ensure!(
                    path.is_file(),
                    "no Lambda binary {} (build them with `cargo build -p dofs-lambdas`, or pass --lambda-dir)",
                    path.display()
                );
                let fname = name(bin);
                let api = lambda::RuntimeApi::new(&fname, &function_arn(&fname), timeout);
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
                let runtime_addr = listener.local_addr()?.to_string();
                let routes = api.routes();
                tokio::spawn(async move {
                    let _ = axum::serve(listener, routes).await;
                });
                let mut fenv = env.clone();
                fenv.extend([
                    ("AWS_LAMBDA_RUNTIME_API".into(), runtime_addr),
                    ("AWS_LAMBDA_FUNCTION_NAME".into(), fname.clone()),
                    ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE".into(), "256".into()),
                    ("AWS_LAMBDA_FUNCTION_VERSION".into(), "$LATEST".into()),
                    (
                        "AWS_LAMBDA_LOG_GROUP_NAME".into(),
                        format!("/aws/lambda/{fname}"),
                    ),
                    ("AWS_LAMBDA_LOG_STREAM_NAME".into(), "local".into()),
                    (
                        "RUST_LOG".into(),
                        std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()),
                    ),
                ]);
                if bin == "api_handler" {
                    fenv.push(("DOFS_STATE_MACHINE_ARN".into(), state_machine_arn.clone()));
                }
                if counts.is_some() {
                    count::route_env(&mut fenv, &endpoint_for(bin).await?);
                }
                let count = if bin == "dlq_processor" {
                    1
                } else {
                    per_unit * args.instances.max(1)
                };
                for i in 0..count {
                    supervisors.push(tokio::spawn(supervise(
                        path.clone(),
                        fenv.clone(),
                        log_dir.join(format!("{bin}-{i}.log")),
                        halted.clone(),
                    )));
                }
                functions.insert(fname, api);
            }
            lambda::Invoker::new(&internal_url, HashMap::new())
        }
    };
    let invoker = match &counts {
        Some(c) => invoker.counting(Arc::clone(c)),
        None => invoker,
    };

    // Step Functions, with the workflow file templated as Terraform does.
    let source = match &args.workflow {
        Some(p) => std::fs::read_to_string(p)
            .with_context(|| format!("reading the workflow {}", p.display()))?,
        None => include_str!("../../../workflow/order-processing.asl.json").to_owned(),
    };
    let source = source
        .replace("${validator_arn}", &function_arn(&name("validator")))
        .replace(
            "${order_storage_arn}",
            &function_arn(&name("order_storage")),
        )
        .replace("${orders_queue_url}", &created.orders_queue_url);
    let definition = dofs_workflow::Definition::parse(&source)
        .map_err(|e| anyhow::anyhow!("workflow definition: {e}"))?;
    let tasks = sfn::Tasks {
        invoker: invoker.clone(),
        functions: ["validator", "order_storage"]
            .into_iter()
            .map(|b| (function_arn(&name(b)), name(b)))
            .collect(),
        sqs: sqs_at(&config, &endpoint_for("step-functions").await?),
    };
    let step_functions = sfn::LocalStepFunctions::new(
        state_machine_arn,
        definition,
        Arc::new(tasks),
        counts.clone(),
    );
    let mut internal_routes = lambda::invoke_routes(lambda::Functions(Arc::new(functions))).merge(
        axum::Router::new()
            .route("/", axum::routing::post(sfn::handle))
            .with_state(step_functions),
    );
    if let Some(c) = &counts {
        internal_routes = internal_routes.merge(
            axum::Router::new()
                .route("/local/counts", axum::routing::get(count::serve))
                .with_state(Arc::clone(c)),
        );
        eprintln!(
            "dofs-local-aws: counting AWS calls; the counts are at {internal_url}/local/counts"
        );
    }
    tokio::spawn(async move {
        let _ = axum::serve(internal, internal_routes).await;
    });

    // The SQS event source of fulfill_order and the schedule of dlq_processor.
    let queue_arn = format!(
        "arn:aws:sqs:{REGION}:{ACCOUNT}:{}",
        created.names.orders_queue
    );
    let mut event_sources = Vec::new();
    let event_source_sqs = sqs_at(&config, &endpoint_for("event-source").await?);
    for _ in 0..args.pollers.max(1) {
        event_sources.push(tokio::spawn(esm::poll_queue(
            esm::Poller {
                sqs: event_source_sqs.clone(),
                invoker: invoker.clone(),
                function: name("fulfill_order"),
                queue_url: created.orders_queue_url.clone(),
                queue_arn: queue_arn.clone(),
                batch_size: 10,
                drop_first: args.drop_first_deliveries,
            },
            stopped.clone(),
        )));
    }
    event_sources.push(tokio::spawn(esm::schedule(
        invoker.clone(),
        name("dlq_processor"),
        format!(
            "arn:aws:events:{REGION}:{ACCOUNT}:rule/{}-dlq-processor",
            args.prefix
        ),
        Duration::from_millis(args.dlq_interval_ms.max(100)),
        stopped.clone(),
    )));

    // API Gateway.
    let gateway = apigw::Gateway {
        invoker,
        function: name("api_handler"),
        stage: args.environment.clone(),
        keys: api_keys,
    };
    let public = tokio::net::TcpListener::bind(&args.bind)
        .await
        .with_context(|| format!("binding {}", args.bind))?;
    let addr = public.local_addr()?;
    let app = axum::Router::new()
        .fallback(apigw::handle)
        .with_state(gateway);
    println!("dofs-local-aws listening on http://{addr}");
    eprintln!(
        "dofs-local-aws: emulator {}, function logs in {}; the API is served as on AWS under \
         its stage, http://{addr}/{}/ (the dashboard), and without it",
        args.aws_endpoint,
        log_dir.display(),
        args.environment
    );
    axum::serve(public, app)
        .with_graceful_shutdown(shutdown_signal())
        .await
        .ok();
    // As Lambda does, invocations under way finish (their batches are deleted
    // or left to the queue as the function answered) before the stack stops.
    let _ = stop.send(true);
    let drained = async {
        for source in event_sources {
            let _ = source.await;
        }
    };
    if tokio::time::timeout(Duration::from_secs(70), drained)
        .await
        .is_err()
    {
        tracing::warn!("invocations still running after 70 s; stopping anyway");
    }
    let _ = halt.send(true);
    for s in supervisors {
        let _ = s.await;
    }
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(t) => t,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

/// Runs one instance of a function, starting it again if it exits (as Lambda
/// replaces a crashed execution environment), until `stop` turns true.
async fn supervise(
    path: PathBuf,
    env: Vec<(String, String)>,
    log: PathBuf,
    mut stop: watch::Receiver<bool>,
) {
    while !*stop.borrow() {
        let out = match std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
        {
            Ok(f) => f,
            Err(e) => {
                tracing::error!(error = %e, log = %log.display(), "cannot open the function log");
                return;
            }
        };
        let err = match out.try_clone() {
            Ok(f) => f,
            Err(e) => {
                tracing::error!(error = %e, "cannot open the function log");
                return;
            }
        };
        let mut cmd = Command::new(&path);
        cmd.env_clear()
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .stdin(std::process::Stdio::null())
            .stdout(out)
            .stderr(err)
            .kill_on_drop(true);
        let mut child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, binary = %path.display(), "cannot start the function");
                return;
            }
        };
        tokio::select! {
            status = child.wait() => {
                tracing::warn!(binary = %path.display(), ?status, log = %log.display(), "a function instance exited; starting another");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            _ = stop.changed() => {
                let _ = child.kill().await;
                return;
            }
        }
    }
}
