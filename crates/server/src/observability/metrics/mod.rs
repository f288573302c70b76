//! The metrics registry and its Prometheus text exposition (format 0.0.4).
//!
//! [`Registry`] is a [`metrics::Recorder`]: code anywhere in the process (the
//! embedded workers and engine included) records through the `metrics` facade
//! macros, and `GET /metrics` renders what was recorded plus the gauges read
//! from durable state at scrape time. Histograms have explicit buckets, chosen
//! per metric name in [`CATALOG`]; there are no summaries. Label values are
//! always from small fixed sets (statuses, outcomes, route templates), never
//! ids.
//!
//! One registry serves the process ([`Registry::global`]); tests that need
//! isolation build their own with [`Registry::new`].
//!
//! Layout: the metric catalog in [`catalog`], histograms in [`histogram`],
//! the registry and the text format here.

mod catalog;
mod histogram;
#[cfg(test)]
mod tests;

pub use catalog::*;
pub use histogram::*;

use metrics::{Counter, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit};
use rustc_hash::{FxHashMap, FxHasher};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, PoisonError, RwLock};

/// Counters, gauges and histograms by name and labels.
#[derive(Default)]
pub struct Registry {
    counters: Series<AtomicU64>,
    gauges: Series<AtomicU64>,
    histograms: Series<Buckets>,
}

/// One kind's series, found by a hash of their name and labels, so that
/// recording into a series that exists builds no [`Key`] (a request records
/// three: building their keys was about nine allocations).
struct Series<T>(RwLock<FxHashMap<u64, Bucket<T>>>);

/// The series whose name and labels hash alike (nearly always one).
type Bucket<T> = Vec<(Key, Arc<T>)>;

impl<T> Default for Series<T> {
    fn default() -> Self {
        Series(RwLock::default())
    }
}

/// A hash of a series' name and labels that does not depend on the labels'
/// order, as [`Key`]'s equality does not: the name's hash plus each label's.
///
/// FxHash, not the standard library's SipHash: names and label values come
/// from the code's fixed sets, never from a client, so a hash that is fast
/// rather than proof against chosen collisions will do, and series that
/// hash alike share a [`Bucket`]. Every order records a few series; with
/// SipHash here and again in the map, this was 3.7% of the runtime threads'
/// instructions per order (callgrind).
fn fingerprint<'a>(name: &str, labels: impl Iterator<Item = (&'a str, &'a str)>) -> u64 {
    let hash = |part: &dyn Fn(&mut FxHasher)| {
        let mut hasher = FxHasher::default();
        part(&mut hasher);
        hasher.finish()
    };
    labels.fold(hash(&|h| name.hash(h)), |sum, (k, v)| {
        sum.wrapping_add(hash(&|h| (k, v).hash(h)))
    })
}

/// `key` is `name{labels}`, in any order of the labels (as [`Key`]'s equality).
fn is(key: &Key, name: &str, labels: &[(&str, &str)]) -> bool {
    key.name() == name
        && key.labels().len() == labels.len()
        && key
            .labels()
            .all(|l| labels.iter().any(|(k, v)| l.key() == *k && l.value() == *v))
}

impl<T> Series<T> {
    fn find(&self, hash: u64, is_it: impl Fn(&Key) -> bool) -> Option<Arc<T>> {
        let map = self.0.read().unwrap_or_else(PoisonError::into_inner);
        let (_, found) = map.get(&hash)?.iter().find(|(k, _)| is_it(k))?;
        Some(Arc::clone(found))
    }

    fn find_or_insert(
        &self,
        hash: u64,
        is_it: impl Fn(&Key) -> bool,
        key: impl FnOnce() -> Key,
        make: impl FnOnce() -> T,
    ) -> Arc<T> {
        if let Some(found) = self.find(hash, &is_it) {
            return found;
        }
        let mut map = self.0.write().unwrap_or_else(PoisonError::into_inner);
        let bucket = map.entry(hash).or_default();
        if let Some((_, found)) = bucket.iter().find(|(k, _)| is_it(k)) {
            return Arc::clone(found);
        }
        let made = Arc::new(make());
        bucket.push((key(), Arc::clone(&made)));
        made
    }

    /// The series `name{labels}`, made with `make` if new.
    fn get_or_insert(
        &self,
        name: &str,
        labels: &[(&str, &str)],
        make: impl FnOnce() -> T,
    ) -> Arc<T> {
        let hash = fingerprint(name, labels.iter().copied());
        self.find_or_insert(hash, |k| is(k, name, labels), || key(name, labels), make)
    }

    /// The series `key`, made with `make` if new.
    fn get_or_insert_key(&self, key: &Key, make: impl FnOnce() -> T) -> Arc<T> {
        let hash = fingerprint(key.name(), key.labels().map(|l| (l.key(), l.value())));
        self.find_or_insert(hash, |k| k == key, || key.clone(), make)
    }

    /// The series `name{labels}`, if it was ever recorded.
    fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<Arc<T>> {
        self.find(fingerprint(name, labels.iter().copied()), |k| {
            is(k, name, labels)
        })
    }

    /// Calls `f` with every series.
    fn each(&self, mut f: impl FnMut(&Key, &T)) {
        let map = self.0.read().unwrap_or_else(PoisonError::into_inner);
        for (k, v) in map.values().flatten() {
            f(k, v);
        }
    }
}

fn buckets_for(name: &str) -> Buckets {
    Buckets::new(info(name).map_or(DEFAULT_BUCKETS, |i| i.buckets))
}

fn key(name: &str, labels: &[(&str, &str)]) -> Key {
    let labels: Vec<metrics::Label> = labels
        .iter()
        .map(|(k, v)| metrics::Label::new(k.to_string(), v.to_string()))
        .collect();
    Key::from_parts(name.to_owned(), labels)
}

fn matches(key: &Key, name: &str, filter: &[(&str, &str)]) -> bool {
    key.name() == name
        && filter
            .iter()
            .all(|(k, v)| key.labels().any(|l| l.key() == *k && l.value() == *v))
}

impl Registry {
    /// An empty registry, not installed anywhere.
    pub fn new() -> Self {
        Registry::default()
    }

    /// The process's registry, installed as the `metrics` facade's global
    /// recorder on first use. If another recorder was installed first, the
    /// facade's events go there and only direct calls reach this registry.
    pub fn global() -> Arc<Registry> {
        static GLOBAL: OnceLock<Arc<Registry>> = OnceLock::new();
        Arc::clone(GLOBAL.get_or_init(|| {
            let registry = Arc::new(Registry::new());
            if metrics::set_global_recorder(Arc::clone(&registry)).is_err() {
                tracing::warn!("another metrics recorder is installed; DOFS metrics from the facade will not reach /metrics");
            }
            registry
        }))
    }

    /// Adds `by` to the counter `name{labels}`.
    pub fn increment(&self, name: &str, labels: &[(&str, &str)], by: u64) {
        self.counters
            .get_or_insert(name, labels, || AtomicU64::new(0))
            .fetch_add(by, Ordering::Relaxed);
    }

    /// Sets the gauge `name{labels}`.
    pub fn set_gauge(&self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.gauges
            .get_or_insert(name, labels, || AtomicU64::new(0))
            .store(value.to_bits(), Ordering::Relaxed);
    }

    /// The gauge `name{labels}`, if it was ever set.
    pub fn gauge(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        self.gauges
            .get(name, labels)
            .map(|v| f64::from_bits(v.load(Ordering::Relaxed)))
    }

    /// Records one observation in the histogram `name{labels}`.
    pub fn observe(&self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.histograms
            .get_or_insert(name, labels, || buckets_for(name))
            .observe(value);
    }

    /// The sum of every counter `name` whose labels include `filter`.
    pub fn counter_sum(&self, name: &str, filter: &[(&str, &str)]) -> u64 {
        let mut sum = 0;
        self.counters.each(|k, v| {
            if matches(k, name, filter) {
                sum += v.load(Ordering::Relaxed);
            }
        });
        sum
    }

    /// The sum of every counter `name` whose labels satisfy `pick`.
    pub fn counter_sum_where(&self, name: &str, pick: impl Fn(&Key) -> bool) -> u64 {
        let mut sum = 0;
        self.counters.each(|k, v| {
            if k.name() == name && pick(k) {
                sum += v.load(Ordering::Relaxed);
            }
        });
        sum
    }

    /// Every histogram `name` whose labels include `filter`, merged.
    pub fn histogram_merged(&self, name: &str, filter: &[(&str, &str)]) -> HistogramSnapshot {
        let mut merged = HistogramSnapshot {
            bounds: info(name).map_or(DEFAULT_BUCKETS, |i| i.buckets).to_vec(),
            counts: Vec::new(),
            sum: 0.0,
        };
        merged.counts = vec![0; merged.bounds.len() + 1];
        self.histograms.each(|k, v| {
            if matches(k, name, filter) {
                merged.merge(&v.snapshot());
            }
        });
        merged
    }

    /// Every counter series: (name, labels sorted by name) and its value.
    pub fn counter_series(&self) -> Vec<(SeriesKey, u64)> {
        let mut all = Vec::new();
        self.counters
            .each(|k, v| all.push((series_key(k), v.load(Ordering::Relaxed))));
        all
    }

    /// Every histogram series: (name, labels sorted by name) and its buckets.
    pub fn histogram_series(&self) -> Vec<(SeriesKey, HistogramSnapshot)> {
        let mut all = Vec::new();
        self.histograms
            .each(|k, v| all.push((series_key(k), v.snapshot())));
        all
    }

    /// Everything in the Prometheus text exposition format 0.0.4: catalog
    /// metrics first in catalog order, then any others by name; series sorted
    /// by labels; `# HELP` and `# TYPE` once per metric.
    pub fn render(&self) -> String {
        let mut families: BTreeMap<String, Family> = BTreeMap::new();
        let mut add = |key: &Key, kind: Kind, sample: Sample| {
            let family = families
                .entry(key.name().to_owned())
                .or_insert_with(|| Family {
                    kind,
                    series: BTreeMap::new(),
                });
            if family.kind == kind {
                family.series.insert(sorted_labels(key), sample);
            }
        };
        self.counters.each(|k, v| {
            add(k, Kind::Counter, Sample::Counter(v.load(Ordering::Relaxed)));
        });
        self.gauges.each(|k, v| {
            add(
                k,
                Kind::Gauge,
                Sample::Gauge(f64::from_bits(v.load(Ordering::Relaxed))),
            );
        });
        self.histograms.each(|k, v| {
            add(k, Kind::Histogram, Sample::Histogram(v.snapshot()));
        });

        let mut order: Vec<&String> = families.keys().collect();
        order.sort_by_key(|name| {
            (
                CATALOG
                    .iter()
                    .position(|m| m.name == name.as_str())
                    .unwrap_or(usize::MAX),
                name.to_string(),
            )
        });
        let mut out = String::new();
        for name in order {
            let family = &families[name];
            let help = info(name)
                .filter(|i| i.kind == family.kind)
                .map_or("DOFS metric.", |i| i.help);
            let _ = writeln!(out, "# HELP {name} {}", escape_help(help));
            let _ = writeln!(out, "# TYPE {name} {}", family.kind.as_str());
            for (labels, sample) in &family.series {
                match sample {
                    Sample::Counter(v) => {
                        let _ = writeln!(out, "{name}{} {v}", label_text(labels, None));
                    }
                    Sample::Gauge(v) => {
                        let _ = writeln!(out, "{name}{} {}", label_text(labels, None), number(*v));
                    }
                    Sample::Histogram(h) => {
                        let mut cumulative = 0;
                        for (i, count) in h.counts.iter().enumerate() {
                            cumulative += count;
                            let le = h.bounds.get(i).map_or("+Inf".to_owned(), |b| number(*b));
                            let _ = writeln!(
                                out,
                                "{name}_bucket{} {cumulative}",
                                label_text(labels, Some(&le))
                            );
                        }
                        let _ = writeln!(
                            out,
                            "{name}_sum{} {}",
                            label_text(labels, None),
                            number(h.sum)
                        );
                        let _ =
                            writeln!(out, "{name}_count{} {cumulative}", label_text(labels, None));
                    }
                }
            }
        }
        out
    }
}

/// A series' identity: its metric name and its labels, sorted by name.
pub type SeriesKey = (String, Vec<(String, String)>);

fn series_key(key: &Key) -> SeriesKey {
    (key.name().to_owned(), sorted_labels(key))
}

struct Family {
    kind: Kind,
    series: BTreeMap<Vec<(String, String)>, Sample>,
}

enum Sample {
    Counter(u64),
    Gauge(f64),
    Histogram(HistogramSnapshot),
}

fn sorted_labels(key: &Key) -> Vec<(String, String)> {
    let mut labels: Vec<(String, String)> = key
        .labels()
        .map(|l| (l.key().to_owned(), l.value().to_owned()))
        .collect();
    labels.sort();
    labels
}

fn label_text(labels: &[(String, String)], le: Option<&str>) -> String {
    if labels.is_empty() && le.is_none() {
        return String::new();
    }
    let mut parts: Vec<String> = labels
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", escape_label(v)))
        .collect();
    if let Some(le) = le {
        parts.push(format!("le=\"{le}\""));
    }
    format!("{{{}}}", parts.join(","))
}

/// Label values escape backslash, double quote and newline.
fn escape_label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Help text escapes backslash and newline.
fn escape_help(text: &str) -> String {
    text.replace('\\', "\\\\").replace('\n', "\\n")
}

/// A sample value: whole numbers without a fraction, `+Inf`, `-Inf`, `NaN`.
pub fn number(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v == f64::INFINITY {
        "+Inf".into()
    } else if v == f64::NEG_INFINITY {
        "-Inf".into()
    } else if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

impl Recorder for Registry {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}

    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        Counter::from_arc(self.counters.get_or_insert_key(key, || AtomicU64::new(0)))
    }

    fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::from_arc(self.gauges.get_or_insert_key(key, || AtomicU64::new(0)))
    }

    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
        Histogram::from_arc(
            self.histograms
                .get_or_insert_key(key, || buckets_for(key.name())),
        )
    }
}
