//! The server's Prometheus metrics (`GET /metrics`, text format 0.0.4, names prefixed `kefu_`).
//!
//! Request metrics are recorded as requests finish ([`Metrics::observe_request`]); generation
//! metrics as each generation ends ([`Metrics::observe_generation`]); engine gauges and totals
//! are read from the engines' counters when scraped, so they cost nothing per token.
//! One [`Metrics`] belongs to one server, so servers in the same process (tests) do not mix.

use std::sync::Mutex;

use kefu_engine::{StatsSnapshot, Usage};
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder, exponential_buckets,
};

/// Why the host turned a request away before a component handled it.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Rejection {
    /// The body was over the limit (413).
    BodyTooLarge,
    /// Too many requests in flight (429).
    ConcurrencyLimit,
    /// No instance slot was free (503).
    InstancePool,
}

impl Rejection {
    fn label(self) -> &'static str {
        match self {
            Rejection::BodyTooLarge => "body_too_large",
            Rejection::ConcurrencyLimit => "concurrency_limit",
            Rejection::InstancePool => "instance_pool",
        }
    }
}

/// One finished HTTP request, as the access log and the metrics see it.
pub(crate) struct RequestSummary<'a> {
    /// The matched route pattern (`/v1/...`), a host endpoint, or `unmatched`.
    pub route: &'a str,
    /// The component that handled it, or `host`.
    pub component: &'a str,
    pub status: u16,
    pub seconds: f64,
    /// The guardrail's decision, when the component reported one.
    pub action: Option<&'a str>,
}

pub(crate) struct Metrics {
    registry: Registry,
    http_requests: IntCounterVec,
    http_duration: HistogramVec,
    in_flight: IntGauge,
    rejected: IntCounterVec,
    guardrail_actions: IntCounterVec,
    ttft: HistogramVec,
    inter_token: HistogramVec,
    prompt_tokens: HistogramVec,
    generation_tokens: HistogramVec,
    swaps: IntCounterVec,
    swap_failures: IntCounterVec,
    guest_instances: IntGauge,
    engine: EngineMetrics,
    /// Scrapes turn engine totals into counter increments; one at a time.
    scrape: Mutex<()>,
}

/// Read from each engine's counters at scrape time.
struct EngineMetrics {
    queued: IntGaugeVec,
    live: IntGaugeVec,
    kv_used: prometheus::GaugeVec,
    prompt_tokens: IntCounterVec,
    cached_prompt_tokens: IntCounterVec,
    generated_tokens: IntCounterVec,
    prefix_hits: IntCounterVec,
    cancelled: IntCounterVec,
    overloaded: IntCounterVec,
}

fn counter(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid counter");
    registry.register(Box::new(c.clone())).expect("unique name");
    c
}

fn gauge(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    let g = IntGaugeVec::new(Opts::new(name, help), labels).expect("valid gauge");
    registry.register(Box::new(g.clone())).expect("unique name");
    g
}

fn histogram(
    registry: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
    buckets: Vec<f64>,
) -> HistogramVec {
    let h = HistogramVec::new(HistogramOpts::new(name, help).buckets(buckets), labels)
        .expect("valid histogram");
    registry.register(Box::new(h.clone())).expect("unique name");
    h
}

impl Metrics {
    pub fn new() -> Metrics {
        let metrics = Metrics::unpopulated();
        // Known label values start at 0, so rates and alerts work before the first event.
        for why in [
            Rejection::BodyTooLarge,
            Rejection::ConcurrencyLimit,
            Rejection::InstancePool,
        ] {
            metrics.rejected.with_label_values(&[why.label()]);
        }
        for action in ["answer", "refuse", "handoff"] {
            metrics.guardrail_actions.with_label_values(&[action]);
        }
        metrics
    }

    fn unpopulated() -> Metrics {
        let r = Registry::new();
        let seconds = exponential_buckets(0.005, 2.0, 16).expect("valid buckets"); // 5 ms .. 164 s
        let tokens = exponential_buckets(16.0, 2.0, 10).expect("valid buckets"); // 16 .. 8192
        let in_flight = IntGauge::new(
            "kefu_http_requests_in_flight",
            "HTTP requests being served.",
        )
        .expect("valid gauge");
        r.register(Box::new(in_flight.clone()))
            .expect("unique name");
        let guest_instances = IntGauge::new(
            "kefu_guest_instances",
            "Component instances serving requests now.",
        )
        .expect("valid gauge");
        r.register(Box::new(guest_instances.clone()))
            .expect("unique name");
        let up = IntGauge::new("kefu_up", "1 while the server runs.").expect("valid gauge");
        up.set(1);
        r.register(Box::new(up)).expect("unique name");
        let model = &["model"];
        Metrics {
            http_requests: counter(
                &r,
                "kefu_http_requests_total",
                "HTTP requests answered, by route pattern, component and status.",
                &["route", "component", "status"],
            ),
            http_duration: histogram(
                &r,
                "kefu_http_request_duration_seconds",
                "Time from request to the end of the response body (whole streams included).",
                &["route", "component"],
                seconds.clone(),
            ),
            rejected: counter(
                &r,
                "kefu_requests_rejected_total",
                "Requests turned away by the host before a component ran, by reason.",
                &["reason"],
            ),
            guardrail_actions: counter(
                &r,
                "kefu_guardrail_actions_total",
                "Guardrail decisions reported by components (x-kefu-action): answer, refuse, \
                 handoff.",
                &["action"],
            ),
            ttft: histogram(
                &r,
                "kefu_time_to_first_token_seconds",
                "Time from submitting a generation to its first token.",
                model,
                seconds.clone(),
            ),
            inter_token: histogram(
                &r,
                "kefu_inter_token_latency_seconds",
                "Mean time between generated tokens of one generation, after the first.",
                model,
                exponential_buckets(0.001, 2.0, 14).expect("valid buckets"), // 1 ms .. 8 s
            ),
            prompt_tokens: histogram(
                &r,
                "kefu_request_prompt_tokens",
                "Prompt length of each generation, in tokens.",
                model,
                tokens.clone(),
            ),
            generation_tokens: histogram(
                &r,
                "kefu_request_generation_tokens",
                "Generated length of each generation, in tokens.",
                model,
                exponential_buckets(1.0, 2.0, 13).expect("valid buckets"),
            ),
            swaps: counter(
                &r,
                "kefu_component_swaps_total",
                "Components replaced while serving (hot swaps and file reloads).",
                &["component"],
            ),
            swap_failures: counter(
                &r,
                "kefu_component_swap_failures_total",
                "Replacement components rejected (did not compile or link); the old one kept \
                 serving.",
                &["component"],
            ),
            engine: EngineMetrics {
                queued: gauge(
                    &r,
                    "kefu_engine_queued_requests",
                    "Generations waiting for a sequence.",
                    model,
                ),
                live: gauge(
                    &r,
                    "kefu_engine_live_sequences",
                    "Generations being decoded.",
                    model,
                ),
                kv_used: {
                    let g = prometheus::GaugeVec::new(
                        Opts::new(
                            "kefu_engine_kv_cells_used_ratio",
                            "KV positions held (live sequences and prefix cache) over KV cells; \
                             shared prefixes count once per holder, so this is an upper bound.",
                        ),
                        model,
                    )
                    .expect("valid gauge");
                    r.register(Box::new(g.clone())).expect("unique name");
                    g
                },
                prompt_tokens: counter(
                    &r,
                    "kefu_prompt_tokens_total",
                    "Prompt tokens of generations that got a sequence.",
                    model,
                ),
                cached_prompt_tokens: counter(
                    &r,
                    "kefu_cached_prompt_tokens_total",
                    "Prompt tokens copied from a shared prefix instead of computed.",
                    model,
                ),
                generated_tokens: counter(
                    &r,
                    "kefu_generated_tokens_total",
                    "Tokens generated.",
                    model,
                ),
                prefix_hits: counter(
                    &r,
                    "kefu_prefix_cache_hits_total",
                    "Generations that reused a shared prompt prefix.",
                    model,
                ),
                cancelled: counter(
                    &r,
                    "kefu_generations_cancelled_total",
                    "Generations stopped because their client went away.",
                    model,
                ),
                overloaded: counter(
                    &r,
                    "kefu_engine_rejected_total",
                    "Generations refused because the engine queue was full (HTTP 429).",
                    model,
                ),
            },
            registry: r,
            in_flight,
            guest_instances,
            scrape: Mutex::new(()),
        }
    }

    /// Creates the series of a component, so they read 0 before anything happens.
    pub fn component_loaded(&self, component: &str) {
        self.swaps.with_label_values(&[component]);
        self.swap_failures.with_label_values(&[component]);
    }

    pub fn request_started(&self) {
        self.in_flight.inc();
    }

    pub fn observe_request(&self, r: &RequestSummary<'_>) {
        self.in_flight.dec();
        let status = r.status.to_string();
        self.http_requests
            .with_label_values(&[r.route, r.component, &status])
            .inc();
        self.http_duration
            .with_label_values(&[r.route, r.component])
            .observe(r.seconds);
        if let Some(action) = r.action {
            // Only known actions become label values: a component cannot grow the series set.
            if matches!(action, "answer" | "refuse" | "handoff") {
                self.guardrail_actions.with_label_values(&[action]).inc();
            }
        }
    }

    pub fn rejected(&self, why: Rejection) {
        self.rejected.with_label_values(&[why.label()]).inc();
    }

    pub fn observe_generation(&self, model: &str, usage: &Usage) {
        if let Some(ttft) = usage.time_to_first_token {
            self.ttft.with_label_values(&[model]).observe(ttft);
            if usage.completion_tokens > 1 {
                let per_token =
                    (usage.total_time - ttft).max(0.0) / f64::from(usage.completion_tokens - 1);
                self.inter_token
                    .with_label_values(&[model])
                    .observe(per_token);
            }
        }
        self.prompt_tokens
            .with_label_values(&[model])
            .observe(f64::from(usage.prompt_tokens));
        self.generation_tokens
            .with_label_values(&[model])
            .observe(f64::from(usage.completion_tokens));
    }

    pub fn swapped(&self, component: &str) {
        self.swaps.with_label_values(&[component]).inc();
    }

    pub fn swap_failed(&self, component: &str) {
        self.swap_failures.with_label_values(&[component]).inc();
    }

    pub fn guest_instances(&self) -> &IntGauge {
        &self.guest_instances
    }

    /// The exposition text, after reading each engine's counters.
    pub fn render<'a>(&self, engines: impl Iterator<Item = (&'a str, StatsSnapshot)>) -> String {
        let _one_scrape = self.scrape.lock().unwrap_or_else(|e| e.into_inner());
        for (model, s) in engines {
            let e = &self.engine;
            let m = &[model];
            for h in [
                &self.ttft,
                &self.inter_token,
                &self.prompt_tokens,
                &self.generation_tokens,
            ] {
                h.with_label_values(m);
            }
            e.queued.with_label_values(m).set(s.queued as i64);
            e.live.with_label_values(m).set(s.live_sequences as i64);
            let ratio = if s.kv_capacity == 0 {
                0.0
            } else {
                (s.kv_positions as f64 / s.kv_capacity as f64).min(1.0)
            };
            e.kv_used.with_label_values(m).set(ratio);
            advance(&e.prompt_tokens.with_label_values(m), s.prompt_tokens);
            advance(
                &e.cached_prompt_tokens.with_label_values(m),
                s.cached_prompt_tokens,
            );
            advance(&e.generated_tokens.with_label_values(m), s.generated_tokens);
            advance(&e.prefix_hits.with_label_values(m), s.prefix_cache_hits);
            advance(&e.cancelled.with_label_values(m), s.cancelled);
            advance(&e.overloaded.with_label_values(m), s.rejected_overloaded);
        }
        let mut out = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut out)
            .expect("text encoding into a Vec cannot fail");
        String::from_utf8(out).expect("the text format is UTF-8")
    }
}

/// Moves a counter up to an engine total (totals only grow).
fn advance(counter: &IntCounter, total: u64) {
    let current = counter.get();
    if total > current {
        counter.inc_by(total - current);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_has_the_documented_families() {
        let m = Metrics::new();
        m.request_started();
        m.observe_request(&RequestSummary {
            route: "/v1/...",
            component: "gateway",
            status: 200,
            seconds: 0.2,
            action: Some("answer"),
        });
        m.observe_generation(
            "tiny",
            &Usage {
                prompt_tokens: 300,
                cached_prompt_tokens: 0,
                completion_tokens: 11,
                time_to_first_token: Some(0.5),
                total_time: 1.5,
            },
        );
        m.rejected(Rejection::BodyTooLarge);
        let stats = StatsSnapshot {
            generated_tokens: 11,
            kv_positions: 10,
            kv_capacity: 100,
            ..StatsSnapshot::default()
        };
        let text = m.render([("tiny", stats.clone())].into_iter());
        for needle in [
            "kefu_http_requests_total{component=\"gateway\",route=\"/v1/...\",status=\"200\"} 1",
            "kefu_time_to_first_token_seconds_count{model=\"tiny\"} 1",
            "kefu_inter_token_latency_seconds_sum{model=\"tiny\"} 0.1",
            "kefu_request_prompt_tokens_sum{model=\"tiny\"} 300",
            "kefu_generated_tokens_total{model=\"tiny\"} 11",
            "kefu_engine_kv_cells_used_ratio{model=\"tiny\"} 0.1",
            "kefu_guardrail_actions_total{action=\"answer\"} 1",
            "kefu_requests_rejected_total{reason=\"body_too_large\"} 1",
            "kefu_http_requests_in_flight 0",
        ] {
            assert!(text.contains(needle), "missing `{needle}` in\n{text}");
        }
        // Scraping again does not count engine totals twice.
        let again = m.render([("tiny", stats)].into_iter());
        assert!(again.contains("kefu_generated_tokens_total{model=\"tiny\"} 11"));
    }
}
