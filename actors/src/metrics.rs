//! Process metrics in Prometheus text form: labelled counters, gauges and
//! latency histograms, kept in memory and rendered on `/metrics`.
//!
//! Labels never carry personal data: agencies, event types, outcomes, states.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::time::Duration;

/// Upper bounds of the latency histogram buckets, in seconds.
pub const LATENCY_BUCKETS_SECONDS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

#[derive(Default)]
struct Histogram {
    buckets: [u64; LATENCY_BUCKETS_SECONDS.len()],
    count: u64,
    sum_micros: u64,
}

#[derive(Default)]
struct Inner {
    counters: BTreeMap<(String, String), u64>,
    gauges: BTreeMap<(String, String), i64>,
    histograms: BTreeMap<(String, String), Histogram>,
}

#[derive(Default)]
pub struct Metrics {
    inner: Mutex<Inner>,
}

fn label_text(labels: &[(&str, &str)]) -> String {
    if labels.is_empty() {
        return String::new();
    }
    let mut text = String::from("{");
    for (index, (name, value)) in labels.iter().enumerate() {
        if index > 0 {
            text.push(',');
        }
        let value = value.replace('\\', "\\\\").replace('"', "\\\"");
        let _ = write!(text, "{name}=\"{value}\"");
    }
    text.push('}');
    text
}

impl Metrics {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn add(&self, name: &str, labels: &[(&str, &str)], delta: u64) {
        *self
            .lock()
            .counters
            .entry((name.to_owned(), label_text(labels)))
            .or_insert(0) += delta;
    }

    pub fn inc(&self, name: &str, labels: &[(&str, &str)]) {
        self.add(name, labels, 1);
    }

    pub fn set(&self, name: &str, labels: &[(&str, &str)], value: i64) {
        self.lock()
            .gauges
            .insert((name.to_owned(), label_text(labels)), value);
    }

    pub fn observe(&self, name: &str, labels: &[(&str, &str)], elapsed: Duration) {
        let mut inner = self.lock();
        let histogram = inner
            .histograms
            .entry((name.to_owned(), label_text(labels)))
            .or_default();
        let seconds = elapsed.as_secs_f64();
        for (bucket, bound) in histogram.buckets.iter_mut().zip(LATENCY_BUCKETS_SECONDS) {
            if seconds <= bound {
                *bucket += 1;
            }
        }
        histogram.count += 1;
        histogram.sum_micros += u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
    }

    /// A counter's value, for tests and summaries.
    pub fn counter(&self, name: &str, labels: &[(&str, &str)]) -> u64 {
        self.lock()
            .counters
            .get(&(name.to_owned(), label_text(labels)))
            .copied()
            .unwrap_or(0)
    }

    /// The sum of a counter over all its label sets.
    pub fn counter_total(&self, name: &str) -> u64 {
        self.lock()
            .counters
            .iter()
            .filter(|((counter, _), _)| counter == name)
            .map(|(_, value)| value)
            .sum()
    }

    pub fn render(&self) -> String {
        let inner = self.lock();
        let mut text = String::new();
        let mut last = "";
        for ((name, labels), value) in &inner.counters {
            if name != last {
                let _ = writeln!(text, "# TYPE {name} counter");
                last = name;
            }
            let _ = writeln!(text, "{name}{labels} {value}");
        }
        last = "";
        for ((name, labels), value) in &inner.gauges {
            if name != last {
                let _ = writeln!(text, "# TYPE {name} gauge");
                last = name;
            }
            let _ = writeln!(text, "{name}{labels} {value}");
        }
        last = "";
        for ((name, labels), histogram) in &inner.histograms {
            if name != last {
                let _ = writeln!(text, "# TYPE {name} histogram");
                last = name;
            }
            let inner_labels = labels.trim_start_matches('{').trim_end_matches('}');
            let separator = if inner_labels.is_empty() { "" } else { "," };
            for (count, bound) in histogram.buckets.iter().zip(LATENCY_BUCKETS_SECONDS) {
                let _ = writeln!(
                    text,
                    "{name}_bucket{{{inner_labels}{separator}le=\"{bound}\"}} {count}"
                );
            }
            let _ = writeln!(
                text,
                "{name}_bucket{{{inner_labels}{separator}le=\"+Inf\"}} {}",
                histogram.count
            );
            let _ = writeln!(
                text,
                "{name}_sum{labels} {}.{:06}",
                histogram.sum_micros / 1_000_000,
                histogram.sum_micros % 1_000_000
            );
            let _ = writeln!(text, "{name}_count{labels} {}", histogram.count);
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_histograms() {
        let metrics = Metrics::default();
        metrics.inc("dfm_events_total", &[("agency", "population")]);
        metrics.inc("dfm_events_total", &[("agency", "population")]);
        metrics.observe("dfm_latency_seconds", &[], Duration::from_millis(3));
        let text = metrics.render();
        assert!(text.contains("dfm_events_total{agency=\"population\"} 2"));
        assert!(text.contains("dfm_latency_seconds_bucket{le=\"0.005\"} 1"));
        assert!(text.contains("dfm_latency_seconds_bucket{le=\"0.0025\"} 0"));
        assert!(text.contains("dfm_latency_seconds_count 1"));
        assert_eq!(metrics.counter_total("dfm_events_total"), 2);
    }
}
