//! What a `dofs load` run measured, and how it is printed (text or JSON).

use super::*;

/// What the run measured.
#[derive(Debug)]
pub struct Report {
    pub endpoint: String,
    pub mode: Mode,
    pub requests: u64,
    pub valid_sent: u64,
    pub invalid_sent: u64,
    pub elapsed: Duration,
    /// By status code; transport failures under 0.
    pub statuses: BTreeMap<u16, u64>,
    /// Requests whose status was not the expected one (202 valid, 400 invalid).
    pub errors: u64,
    pub error_samples: Vec<String>,
    /// Open loop: from the intended send time; closed loop: response time.
    pub latency: Histogram<u64>,
    /// The same, of the 202 answers only: what an accepted order waited
    /// while others were refused (429) under overload.
    pub accepted_latency: Histogram<u64>,
    /// Open loop only: from the actual send time.
    pub service_time: Option<Histogram<u64>>,
    pub late_sends: u64,
    pub client_cpu: Option<Duration>,
    pub terminal: Option<Terminal>,
}

/// The `--wait-terminal` outcome.
#[derive(Debug, Clone)]
pub struct Terminal {
    pub orders: u64,
    pub fulfilled: u64,
    pub failed: u64,
    /// Still not terminal when the wait gave up.
    pub pending: u64,
    /// From the end of the load to the poll round that found all terminal.
    pub after_load: Duration,
    pub timed_out: bool,
    /// Polls that could not read an order.
    pub poll_errors: u64,
}

impl Report {
    /// No unexpected status, no transport failure, and every accepted order terminal if asked.
    pub fn passed(&self) -> bool {
        self.errors == 0
            && self
                .terminal
                .as_ref()
                .is_none_or(|t| !t.timed_out && t.poll_errors == 0)
    }

    /// Requests answered per second.
    pub fn throughput(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    fn mode_text(&self) -> String {
        match self.mode {
            Mode::Open {
                rate,
                max_in_flight,
            } => format!("open loop at {rate}/s, at most {max_in_flight} in flight"),
            Mode::Closed { concurrency } => format!("closed loop, concurrency {concurrency}"),
        }
    }

    /// The report as text.
    pub fn human(&self) -> String {
        let mut out = format!(
            "dofs load: {} requests in {} ({}) against {}\n",
            self.requests,
            human_duration(self.elapsed),
            self.mode_text(),
            self.endpoint
        );
        let row = |out: &mut String, name: &str, value: String| {
            out.push_str(&format!("  {name:<13}{value}\n"));
        };
        row(
            &mut out,
            "throughput",
            format!(
                "{:.1} requests/s ({} valid, {} invalid sent)",
                self.throughput(),
                self.valid_sent,
                self.invalid_sent
            ),
        );
        let statuses: Vec<String> = self
            .statuses
            .iter()
            .map(|(s, n)| match s {
                0 => format!("transport error: {n}"),
                s => format!("{s}: {n}"),
            })
            .collect();
        row(&mut out, "status codes", statuses.join(", "));
        row(
            &mut out,
            "errors",
            if self.errors == 0 {
                "0".into()
            } else {
                format!(
                    "{} (not 202 for a valid order or 400 for an invalid one)",
                    self.errors
                )
            },
        );
        for sample in &self.error_samples {
            row(&mut out, "", format!("e.g. {sample}"));
        }
        row(&mut out, "latency", percentiles_text(&self.latency));
        if self.accepted_latency.len() != self.latency.len() {
            row(
                &mut out,
                "202 latency",
                percentiles_text(&self.accepted_latency),
            );
        }
        if let Some(service) = &self.service_time {
            row(
                &mut out,
                "",
                "(open loop: from each request's intended send time)".into(),
            );
            row(&mut out, "service time", percentiles_text(service));
            row(&mut out, "", "(from the actual send time)".into());
            if self.late_sends > 0 {
                row(
                    &mut out,
                    "late sends",
                    format!(
                        "{} requests left more than {} ms after their intended time{}",
                        self.late_sends,
                        LATE.as_millis(),
                        if self.late_sends * 100 > self.requests {
                            ": the server or the --concurrency cap held them back"
                        } else {
                            ""
                        }
                    ),
                );
            }
        }
        if let Some(cpu) = self.client_cpu {
            row(
                &mut out,
                "client cpu",
                format!(
                    "{:.2} s ({:.0}% of one core, {:.1} µs per request)",
                    cpu.as_secs_f64(),
                    100.0 * cpu.as_secs_f64() / self.elapsed.as_secs_f64().max(1e-9),
                    cpu.as_secs_f64() * 1e6 / self.requests.max(1) as f64
                ),
            );
        }
        if let Some(t) = &self.terminal {
            let share = |n: u64| 100.0 * n as f64 / t.orders.max(1) as f64;
            let when = if t.timed_out {
                format!(
                    "{} still not terminal after {}",
                    t.pending,
                    human_duration(t.after_load)
                )
            } else {
                format!(
                    "all terminal {} after the load",
                    human_duration(t.after_load)
                )
            };
            row(
                &mut out,
                "terminal",
                format!(
                    "{} accepted orders: {} FULFILLED ({:.1}%), {} FAILED ({:.1}%); {when}",
                    t.orders,
                    t.fulfilled,
                    share(t.fulfilled),
                    t.failed,
                    share(t.failed)
                ),
            );
            if t.poll_errors > 0 {
                row(
                    &mut out,
                    "",
                    format!("{} polls could not read an order", t.poll_errors),
                );
            }
        }
        out
    }

    /// The report as JSON.
    pub fn json(&self) -> Value {
        let statuses: serde_json::Map<String, Value> = self
            .statuses
            .iter()
            .map(|(s, n)| {
                let key = if *s == 0 {
                    "transportError".to_owned()
                } else {
                    s.to_string()
                };
                (key, json!(n))
            })
            .collect();
        let (mode, rate, concurrency) = match self.mode {
            Mode::Open {
                rate,
                max_in_flight,
            } => ("open", Some(rate), max_in_flight),
            Mode::Closed { concurrency } => ("closed", None, concurrency),
        };
        json!({
            "endpoint": self.endpoint,
            "mode": mode,
            "rate": rate,
            "concurrency": concurrency,
            "requests": self.requests,
            "validSent": self.valid_sent,
            "invalidSent": self.invalid_sent,
            "elapsedSeconds": self.elapsed.as_secs_f64(),
            "throughputPerSecond": self.throughput(),
            "statusCodes": statuses,
            "errors": self.errors,
            "errorSamples": self.error_samples,
            "latencyMs": percentiles_json(&self.latency),
            "acceptedLatencyMs": percentiles_json(&self.accepted_latency),
            "serviceTimeMs": self.service_time.as_ref().map(percentiles_json),
            "lateSends": self.late_sends,
            "clientCpuSeconds": self.client_cpu.map(|d| d.as_secs_f64()),
            "terminal": self.terminal.as_ref().map(|t| json!({
                "orders": t.orders,
                "fulfilled": t.fulfilled,
                "failed": t.failed,
                "pending": t.pending,
                "secondsAfterLoad": t.after_load.as_secs_f64(),
                "timedOut": t.timed_out,
                "pollErrors": t.poll_errors,
            })),
            "passed": self.passed(),
        })
    }
}

const QUANTILES: [(&str, f64); 4] = [("p50", 0.5), ("p90", 0.9), ("p99", 0.99), ("p99.9", 0.999)];

fn percentiles_text(h: &Histogram<u64>) -> String {
    if h.is_empty() {
        return "no answers".into();
    }
    let mut parts: Vec<String> = QUANTILES
        .iter()
        .map(|(name, q)| format!("{name} {}", ms(h.value_at_quantile(*q))))
        .collect();
    parts.push(format!("max {}", ms(h.max())));
    parts.join("  ")
}

fn percentiles_json(h: &Histogram<u64>) -> Value {
    let mut out = serde_json::Map::new();
    for (name, q) in QUANTILES {
        out.insert(
            name.replace('.', ""),
            json!(h.value_at_quantile(q) as f64 / 1000.0),
        );
    }
    out.insert("max".into(), json!(h.max() as f64 / 1000.0));
    out.insert("mean".into(), json!(h.mean() / 1000.0));
    out.insert("count".into(), json!(h.len()));
    Value::Object(out)
}
