//! One call that makes a service observable: [`init`] installs a tracing subscriber whose
//! spans (the servers', the clients', the consumers') are exported by OTLP, and a meter
//! provider that exports the [metrics](crate::metrics) generated code records — by OTLP and,
//! if asked, as Prometheus text.
//!
//! Configured as every OpenTelemetry SDK is, by the standard environment variables:
//! `OTEL_SERVICE_NAME` (else the name given to [`init`], the contract's service),
//! `OTEL_RESOURCE_ATTRIBUTES`, `OTEL_EXPORTER_OTLP_ENDPOINT` (default
//! `http://localhost:4318`) and its `_TRACES_`/`_METRICS_` forms, `…_HEADERS`, `…_TIMEOUT`,
//! `OTEL_EXPORTER_OTLP_PROTOCOL` (`http/protobuf`, the one built in), `OTEL_TRACES_SAMPLER`
//! and `OTEL_TRACES_SAMPLER_ARG`, `OTEL_BSP_*`, `OTEL_METRIC_EXPORT_INTERVAL`,
//! `OTEL_TRACES_EXPORTER` (`otlp`, `none`), `OTEL_METRICS_EXPORTER` (`otlp`, `prometheus`,
//! `none`, or a list) and `OTEL_SDK_DISABLED`. A value the SDK would silently replace by its
//! default is refused at start-up instead, naming the variable and what it accepts. A
//! collector that cannot be reached is a logged warning, never a reason to stop serving:
//! spans and metrics wait in bounded queues and are dropped when those fill.

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::metrics::SdkMeterProvider;
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::Resource;
use std::time::Duration;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

/// Telemetry that cannot be set up as configured.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TelemetryError(pub String);

impl std::fmt::Display for TelemetryError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for TelemetryError {}

/// What [`init_with`] sets up beyond the environment's say.
#[derive(Clone, Debug)]
pub struct Options {
    /// Keep the metrics for a Prometheus scrape ([`Telemetry::prometheus_router`]), as
    /// `OTEL_METRICS_EXPORTER=prometheus` does. Default: off.
    pub prometheus: bool,
    /// Install the tracing subscriber (OpenTelemetry plus human-readable lines on stderr at
    /// `info`). Off for a service that composes its own subscriber from
    /// [`Telemetry::tracer`]. Default: on.
    pub install_subscriber: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            prometheus: false,
            install_subscriber: true,
        }
    }
}

/// The installed providers. Dropping it (or [`shutdown`](Self::shutdown)) flushes what is
/// queued — which blocks while the exporters send, so do it as the process ends; keep it alive
/// for as long as the service runs.
pub struct Telemetry {
    tracer: Option<SdkTracerProvider>,
    meter: Option<SdkMeterProvider>,
    registry: Option<prometheus::Registry>,
}

impl std::fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Telemetry")
            .field("traces", &self.tracer.is_some())
            .field("metrics", &self.meter.is_some())
            .field("prometheus", &self.registry.is_some())
            .finish()
    }
}

/// [`init_with`] with the default [`Options`].
pub fn init(service: &str) -> Result<Telemetry, TelemetryError> {
    init_with(service, Options::default())
}

/// Sets up traces and metrics for `service` (the contract's service name, which
/// `OTEL_SERVICE_NAME` overrides) as the `OTEL_*` variables and `options` say.
pub fn init_with(service: &str, options: Options) -> Result<Telemetry, TelemetryError> {
    let env = Env::read()?;
    let named = std::env::var("OTEL_SERVICE_NAME").is_ok_and(|v| !v.trim().is_empty());
    let resource = if named {
        Resource::builder().build()
    } else {
        Resource::builder()
            .with_service_name(service.to_string())
            .build()
    };
    let failed = |what: &str| {
        let what = what.to_string();
        move |e: opentelemetry_otlp::ExporterBuildError| {
            TelemetryError(format!("cannot set up the OTLP {what} exporter: {e}"))
        }
    };
    let tracer = if env.disabled || !env.traces_otlp {
        None
    } else {
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .build()
            .map_err(failed("trace"))?;
        Some(
            SdkTracerProvider::builder()
                .with_resource(resource.clone())
                .with_batch_exporter(exporter)
                .build(),
        )
    };
    let registry = (!env.disabled && (options.prometheus || env.metrics_prometheus))
        .then(prometheus::Registry::new);
    let meter = if env.disabled || (!env.metrics_otlp && registry.is_none()) {
        None
    } else {
        let mut builder = SdkMeterProvider::builder().with_resource(resource);
        if env.metrics_otlp {
            let exporter = opentelemetry_otlp::MetricExporter::builder()
                .with_http()
                .build()
                .map_err(failed("metric"))?;
            builder = builder.with_periodic_exporter(exporter);
        }
        if let Some(registry) = &registry {
            let reader = opentelemetry_prometheus::exporter()
                .with_registry(registry.clone())
                .build()
                .map_err(|e| TelemetryError(format!("cannot set up the Prometheus reader: {e}")))?;
            builder = builder.with_reader(reader);
        }
        Some(builder.build())
    };
    let telemetry = Telemetry {
        tracer,
        meter,
        registry,
    };
    if options.install_subscriber {
        // Spans at `info` and above: libraries' own `trace`/`debug` spans (h2's frame
        // writes) are not the service's story.
        let otel = telemetry.tracer().map(|t| {
            tracing_opentelemetry::layer()
                .with_tracer(t)
                .with_filter(tracing_subscriber::filter::LevelFilter::INFO)
        });
        let lines = tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_filter(tracing_subscriber::filter::LevelFilter::INFO);
        tracing_subscriber::registry()
            .with(otel)
            .with(lines)
            .try_init()
            .map_err(|e| {
                TelemetryError(format!(
                    "a tracing subscriber is already installed ({e}); pass \
                     `install_subscriber: false` and add `Telemetry::tracer` to yours"
                ))
            })?;
    }
    // Only once nothing can fail: a provider installed by a failed `init` would stay global,
    // shut down.
    if let Some(meter) = &telemetry.meter {
        opentelemetry::global::set_meter_provider(meter.clone());
        crate::metrics::provider_changed();
    }
    if telemetry.tracer.is_some() || env.metrics_otlp {
        // Off the caller's thread (it may be a runtime's): name lookups and connects take time.
        let endpoints = env.endpoints.clone();
        let spawned = std::thread::Builder::new()
            .name("pactum-otlp-probe".into())
            .spawn(move || warn_if_unreachable(&endpoints));
        if let Err(e) = spawned {
            tracing::debug!(error = %e, "cannot start the collector check");
        }
    }
    Ok(telemetry)
}

use tracing_subscriber::Layer as _;

impl Telemetry {
    /// The tracer spans are exported through, for a subscriber of your own
    /// (`tracing_opentelemetry::layer().with_tracer(t)`); `None` when traces are off.
    pub fn tracer(&self) -> Option<opentelemetry_sdk::trace::Tracer> {
        self.tracer.as_ref().map(|p| p.tracer("pactum"))
    }

    /// The metrics in Prometheus' text format, when Prometheus is on.
    pub fn prometheus_text(&self) -> Option<String> {
        let registry = self.registry.as_ref()?;
        let mut text = String::new();
        prometheus::TextEncoder::new()
            .encode_utf8(&registry.gather(), &mut text)
            .ok()?;
        Some(text)
    }

    /// `GET /metrics` answering [`prometheus_text`](Self::prometheus_text), to merge into a
    /// router (or serve on a port of its own); `None` when Prometheus is off.
    #[cfg(feature = "rest")]
    pub fn prometheus_router(&self) -> Option<axum::Router> {
        let registry = self.registry.clone()?;
        let scrape = move || {
            let registry = registry.clone();
            async move {
                let mut text = String::new();
                match prometheus::TextEncoder::new().encode_utf8(&registry.gather(), &mut text) {
                    Ok(()) => (
                        [(http::header::CONTENT_TYPE, prometheus::TEXT_FORMAT)],
                        text,
                    )
                        .into_response(),
                    Err(e) => (
                        http::StatusCode::INTERNAL_SERVER_ERROR,
                        format!("cannot encode the metrics: {e}"),
                    )
                        .into_response(),
                }
            }
        };
        Some(axum::Router::new().route("/metrics", axum::routing::get(scrape)))
    }

    /// Exports everything queued now (spans, the metrics' current values).
    pub fn flush(&self) {
        if let Some(t) = &self.tracer {
            if let Err(e) = t.force_flush() {
                tracing::warn!(error = %e, "cannot export the queued spans");
            }
        }
        if let Some(m) = &self.meter {
            if let Err(e) = m.force_flush() {
                tracing::warn!(error = %e, "cannot export the metrics");
            }
        }
    }

    /// Flushes and stops exporting.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        if let Some(t) = self.tracer.take() {
            let _ = t.shutdown();
        }
        if let Some(m) = self.meter.take() {
            let _ = m.shutdown();
        }
    }
}

#[cfg(feature = "rest")]
use axum::response::IntoResponse as _;

impl Drop for Telemetry {
    fn drop(&mut self) {
        self.stop();
    }
}

/// What the `OTEL_*` variables say, checked.
struct Env {
    disabled: bool,
    traces_otlp: bool,
    metrics_otlp: bool,
    metrics_prometheus: bool,
    /// The collector's addresses the exporters will use, for the reachability check.
    endpoints: Vec<String>,
}

impl Env {
    fn read() -> Result<Env, TelemetryError> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        let bad = |name: &str, value: &str, accepted: &str| {
            TelemetryError(format!("{name}={value:?} is not valid: {accepted}"))
        };
        let disabled = match var("OTEL_SDK_DISABLED").map(|v| v.to_ascii_lowercase()) {
            None => false,
            Some(v) if v == "false" => false,
            Some(v) if v == "true" => true,
            Some(other) => return Err(bad("OTEL_SDK_DISABLED", &other, "use true or false")),
        };
        for name in [
            "OTEL_EXPORTER_OTLP_PROTOCOL",
            "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
            "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL",
        ] {
            if let Some(p) = var(name) {
                if !p.eq_ignore_ascii_case("http/protobuf") {
                    return Err(bad(
                        name,
                        &p,
                        "this build exports OTLP over http/protobuf (port 4318) only; grpc and \
                         http/json are not built in",
                    ));
                }
            }
        }
        let mut endpoints = Vec::new();
        for name in [
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
        ] {
            if let Some(url) = var(name) {
                let ok = url
                    .parse::<http::Uri>()
                    .ok()
                    .filter(|u| {
                        matches!(u.scheme_str(), Some("http" | "https")) && u.authority().is_some()
                    })
                    .is_some();
                if !ok {
                    return Err(bad(
                        name,
                        &url,
                        "give an http:// or https:// URL with a host",
                    ));
                }
                endpoints.push(url);
            }
        }
        if endpoints.is_empty() {
            endpoints.push("http://localhost:4318".into());
        }
        for name in [
            "OTEL_EXPORTER_OTLP_TIMEOUT",
            "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT",
            "OTEL_EXPORTER_OTLP_METRICS_TIMEOUT",
            "OTEL_METRIC_EXPORT_INTERVAL",
            "OTEL_METRIC_EXPORT_TIMEOUT",
            "OTEL_BSP_SCHEDULE_DELAY",
            "OTEL_BSP_EXPORT_TIMEOUT",
            "OTEL_BSP_MAX_QUEUE_SIZE",
            "OTEL_BSP_MAX_EXPORT_BATCH_SIZE",
        ] {
            // Checked as the SDK reads it, untrimmed: " 100" would be its default, silently.
            if let Some(v) = var(name) {
                if v.parse::<u64>().is_err() {
                    return Err(bad(
                        name,
                        &v,
                        "give a whole number (milliseconds, or a count), without spaces",
                    ));
                }
            }
        }
        for name in [
            "OTEL_EXPORTER_OTLP_HEADERS",
            "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
            "OTEL_EXPORTER_OTLP_METRICS_HEADERS",
        ] {
            if let Some(v) = var(name) {
                let ok = v.split(',').all(|pair| {
                    pair.split_once('=')
                        .is_some_and(|(k, _)| !k.trim().is_empty())
                });
                if !ok {
                    return Err(bad(name, &v, "give key=value pairs separated by commas"));
                }
            }
        }
        // As the SDK reads them, untrimmed: a value it does not know makes it sample
        // everything, silently.
        if let Some(s) = var("OTEL_TRACES_SAMPLER") {
            const SAMPLERS: [&str; 6] = [
                "always_on",
                "always_off",
                "traceidratio",
                "parentbased_always_on",
                "parentbased_always_off",
                "parentbased_traceidratio",
            ];
            if !SAMPLERS.contains(&s.as_str()) {
                return Err(bad("OTEL_TRACES_SAMPLER", &s, &SAMPLERS.join(", ")));
            }
            // Without an argument a ratio sampler samples everything (the spec's default).
            if let (true, Some(arg)) = (s.ends_with("traceidratio"), var("OTEL_TRACES_SAMPLER_ARG"))
            {
                if !arg.parse::<f64>().is_ok_and(|r| (0.0..=1.0).contains(&r)) {
                    return Err(bad(
                        "OTEL_TRACES_SAMPLER_ARG",
                        &arg,
                        "a ratio sampler takes a number from 0 to 1, without spaces",
                    ));
                }
            }
        }
        let traces_otlp = match var("OTEL_TRACES_EXPORTER").map(|v| v.trim().to_ascii_lowercase()) {
            None => true,
            Some(v) if v == "otlp" => true,
            Some(v) if v == "none" => false,
            Some(other) => return Err(bad("OTEL_TRACES_EXPORTER", &other, "use otlp or none")),
        };
        let (mut metrics_otlp, mut metrics_prometheus) = (true, false);
        if let Some(list) = var("OTEL_METRICS_EXPORTER") {
            metrics_otlp = false;
            for item in list.split(',').map(|i| i.trim().to_ascii_lowercase()) {
                match item.as_str() {
                    "" => {}
                    "otlp" => metrics_otlp = true,
                    "prometheus" => metrics_prometheus = true,
                    "none" => {}
                    other => {
                        return Err(bad(
                            "OTEL_METRICS_EXPORTER",
                            other,
                            "use otlp, prometheus, none, or a comma-separated list",
                        ))
                    }
                }
            }
        }
        Ok(Env {
            disabled,
            traces_otlp,
            metrics_otlp,
            metrics_prometheus,
            endpoints,
        })
    }
}

/// Logs a warning for each collector address nothing answers on; exporting carries on, and
/// catches up if the collector comes.
fn warn_if_unreachable(endpoints: &[String]) {
    for url in unreachable(endpoints) {
        tracing::warn!(
            endpoint = %url,
            "the OpenTelemetry collector does not answer; serving on, and spans and metrics \
             are sent once it does (or dropped when their queues fill)"
        );
    }
}

/// The endpoints nothing accepts a TCP connection on (500 ms at most each).
fn unreachable(endpoints: &[String]) -> Vec<String> {
    endpoints
        .iter()
        .filter(|url| {
            let Ok(uri) = url.parse::<http::Uri>() else {
                return false;
            };
            let Some(host) = uri.host() else { return false };
            let port = uri
                .port_u16()
                .unwrap_or(if uri.scheme_str() == Some("https") {
                    443
                } else {
                    80
                });
            let host = host.trim_start_matches('[').trim_end_matches(']');
            let reachable = std::net::ToSocketAddrs::to_socket_addrs(&(host, port))
                .map(|mut addrs| {
                    addrs.any(|a| {
                        std::net::TcpStream::connect_timeout(&a, Duration::from_millis(500)).is_ok()
                    })
                })
                .unwrap_or(false);
            !reachable
        })
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    /// Values the spec allows pass; values the SDK would silently replace are refused. (One
    /// test: the environment is the process's.)
    #[test]
    fn otel_values_are_read_as_the_sdk_reads_them() {
        for (name, value, accepted) in [
            ("OTEL_SDK_DISABLED", "TRUE", true),
            ("OTEL_SDK_DISABLED", "yes", false),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "HTTP/PROTOBUF", true),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json", false),
            ("OTEL_TRACES_SAMPLER", "traceidratio", true),
            ("OTEL_TRACES_SAMPLER", "always_off ", false),
            ("OTEL_METRICS_EXPORTER", "otlp,", true),
            ("OTEL_METRICS_EXPORTER", "Prometheus", true),
            ("OTEL_BSP_SCHEDULE_DELAY", "100", true),
            ("OTEL_BSP_SCHEDULE_DELAY", " 100", false),
            (
                "OTEL_EXPORTER_OTLP_ENDPOINT",
                "https://collector:4318",
                true,
            ),
            (
                "OTEL_EXPORTER_OTLP_HEADERS",
                "api-key=secret,team=shop",
                true,
            ),
            ("OTEL_EXPORTER_OTLP_HEADERS", "api-key", false),
        ] {
            std::env::set_var(name, value);
            let read = super::Env::read();
            std::env::remove_var(name);
            assert_eq!(read.is_ok(), accepted, "{name}={value:?}: {:?}", read.err());
        }
        std::env::set_var("OTEL_TRACES_SAMPLER", "traceidratio");
        std::env::set_var("OTEL_TRACES_SAMPLER_ARG", " 0.1");
        let read = super::Env::read();
        std::env::remove_var("OTEL_TRACES_SAMPLER");
        std::env::remove_var("OTEL_TRACES_SAMPLER_ARG");
        assert!(read.is_err(), "a ratio the SDK would read as 1.0");
    }

    #[test]
    fn a_collector_nobody_listens_for_is_found_unreachable() {
        let listening = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let up = format!("http://{}", listening.local_addr().unwrap());
        let closed = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            format!("http://{}", l.local_addr().unwrap())
        };
        assert_eq!(super::unreachable(&[up, closed.clone()]), [closed]);
    }
}
