//! A request whose caller goes away mid-flight still ends its span with an outcome:
//! `cancelled`, not nothing.

use generated_example::generated::pricing;
use generated_example::system::{self, Options};
use generated_example::timeline::Timeline;
use pactum::Context;
use std::time::Duration;
use tracing_subscriber::layer::SubscriberExt;

#[tokio::test(flavor = "multi_thread")]
async fn a_request_abandoned_by_its_caller_records_cancelled() {
    let timeline = Timeline::new();
    let hops = timeline.hops();
    tracing::subscriber::set_global_default(tracing_subscriber::registry().with(timeline))
        .expect("the only subscriber in this test binary");
    let system = system::start(Options {
        pricing_latency: Duration::from_millis(500),
        ..Options::default()
    })
    .await
    .unwrap();
    let client = pricing::v1::rest::Client::new(system.pricing_url.clone());
    let request = pricing::v1::QuoteCartRequest {
        currency: pricing::v1::Currency("EUR".into()),
        lines: vec![pricing::v1::QuoteLine {
            sku: pricing::v1::Sku("BOOK-42".into()),
            quantity: 1,
        }],
    };
    // The caller gives up after 50 ms: its future is dropped, the connection closed.
    let gave_up = tokio::time::timeout(
        Duration::from_millis(50),
        Context::new().scope(client.quote_cart(&request)),
    )
    .await;
    assert!(gave_up.is_err());
    tokio::time::sleep(Duration::from_millis(300)).await;
    let quote = hops
        .take()
        .into_iter()
        .find(|h| h.kind == "REST" && h.name == "QuoteCart")
        .expect("the server's span closed");
    assert_eq!(quote.outcome, "cancelled");
}
