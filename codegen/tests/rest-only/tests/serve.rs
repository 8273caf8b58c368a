//! A REST-only service works end to end on a runtime compiled with only `rest`: the
//! generated router serves, the generated client calls it over loopback, and a declared
//! error and a client's mistake come back as what the contract says.

use pactum::{ClientError, Context, HandlerError};
use pactum_test_rest_only::generated::pricing::v1 as api;
use std::sync::Arc;

struct Prices;

impl api::Service for Prices {
    async fn quote_cart(
        &self,
        _: Context,
        _: api::QuoteCartRequest,
    ) -> Result<api::QuoteCartResponse, HandlerError<api::QuoteCartError>> {
        Err(HandlerError::Internal("not needed here".into()))
    }

    async fn get_price(
        &self,
        _: Context,
        input: api::GetPriceRequest,
    ) -> Result<api::Money, HandlerError<api::GetPriceError>> {
        if input.sku.0 != "SKU-1" {
            Err(api::UnknownSku { sku: input.sku })?;
        }
        Ok(api::Money {
            amount: "12.50".parse().expect("decimal literal"),
            currency: input.currency.unwrap_or(api::Currency("EUR".into())),
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generated_client_calls_generated_router_with_only_the_rest_feature() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("binds a loopback port");
    let url = format!("http://{}", listener.local_addr().expect("has an address"));
    let server = tokio::spawn(pactum::router::serve(
        listener,
        api::rest::router(Arc::new(Prices)),
    ));
    let client = api::rest::Client::new(url);

    let price = client
        .get_price(&api::GetPriceRequest {
            sku: api::Sku("SKU-1".into()),
            currency: Some(api::Currency("USD".into())),
        })
        .await
        .expect("a known SKU is priced");
    assert_eq!(price.amount.to_string(), "12.50");
    assert_eq!(price.currency, api::Currency("USD".into()));

    let unknown = client
        .get_price(&api::GetPriceRequest {
            sku: api::Sku("SKU-404".into()),
            currency: None,
        })
        .await;
    assert!(
        matches!(&unknown, Err(ClientError::Declared(api::GetPriceError::UnknownSku(e))) if e.sku.0 == "SKU-404"),
        "{unknown:?}"
    );

    // A SKU outside the contract's pattern: refused before the handler, as a 4xx problem,
    // not a 500.
    let invalid = client
        .get_price(&api::GetPriceRequest {
            sku: api::Sku("lower case".into()),
            currency: None,
        })
        .await;
    assert!(
        matches!(&invalid, Err(ClientError::Rejected(p)) if (400..500).contains(&p.status)),
        "{invalid:?}"
    );
    server.abort();
}
