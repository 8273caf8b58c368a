//! Generated gRPC clients against generated gRPC routers on loopback, served by the same
//! `Service` implementations as REST: every unary operation, declared errors as typed
//! variants, DEADLINE_EXCEEDED (not CANCELLED), invalid input, and one trace id across a
//! REST → gRPC hop (cart → inventory).

use generated_example::generated::{cart, inventory, orders, payments, pricing};
use generated_example::system::{self, Options, DEMO_CART};
use pactum::types::Uuid;
use pactum::ClientError;
use pactum::Context;
use std::collections::HashMap;
use std::time::Duration;

fn sku(s: &str) -> pricing::v1::Sku {
    pricing::v1::Sku(s.into())
}

#[tokio::test]
async fn every_unary_grpc_operation_round_trips() {
    let sys = system::start(Options::default()).await.unwrap();
    let p = pricing::v1::grpc::Client::connect_lazy(sys.pricing_url.clone()).unwrap();
    let price = p
        .get_price(&pricing::v1::GetPriceRequest {
            sku: sku("PEN-7"),
            currency: None,
        })
        .await
        .unwrap();
    assert_eq!(price.amount.to_string(), "1.20");

    let inv = inventory::v1::grpc::Client::connect_lazy(sys.inventory_url.clone()).unwrap();
    let level = inv
        .check_stock(&inventory::v1::CheckStockRequest {
            sku: sku("BOOK-42"),
        })
        .await
        .unwrap();
    assert_eq!((level.available, level.reserved), (10, 0));
    let reserved = inv
        .reserve_stock(&inventory::v1::ReserveStockRequest {
            order_id: Uuid::from_u128(5),
            lines: vec![pricing::v1::QuoteLine {
                sku: sku("BOOK-42"),
                quantity: 3,
            }],
        })
        .await
        .unwrap();
    let level = inv
        .check_stock(&inventory::v1::CheckStockRequest {
            sku: sku("BOOK-42"),
        })
        .await
        .unwrap();
    assert_eq!((level.available, level.reserved), (7, 3));
    inv.release_stock(&inventory::v1::ReleaseStockRequest {
        reservation_id: reserved.reservation_id,
    })
    .await
    .unwrap();
    let level = inv
        .check_stock(&inventory::v1::CheckStockRequest {
            sku: sku("BOOK-42"),
        })
        .await
        .unwrap();
    assert_eq!(level.available, 10);

    // Orders: place over REST, read back over gRPC in both majors.
    let rest = orders::v1::rest::Client::new(&sys.orders_url);
    let placed = rest
        .place_order(&orders::v1::PlaceOrderRequest {
            cart_id: Uuid::from_u128(DEMO_CART),
            customer_id: Some(Uuid::from_u128(7)),
            lines: vec![orders::v1::OrderLine {
                sku: sku("PEN-7"),
                quantity: 2,
                unit_price: pricing::v1::Money {
                    amount: "1.20".parse().unwrap(),
                    currency: pricing::v1::Currency("EUR".into()),
                },
            }],
            note: Some("fragile".into()),
        })
        .await
        .unwrap();
    let o1 = orders::v1::grpc::Client::connect_lazy(sys.orders_url.clone()).unwrap();
    let got = o1
        .get_order(&orders::v1::GetOrderRequest {
            id: placed.id.clone(),
        })
        .await
        .unwrap();
    assert_eq!(
        got, placed,
        "every field survives protobuf, timestamps and decimals included"
    );
    let o2 = orders::v2::grpc::Client::connect_lazy(sys.orders_url.clone()).unwrap();
    let v2 = o2
        .get_order(&orders::v2::GetOrderRequest {
            id: orders::v2::OrderId(placed.id.0),
        })
        .await
        .unwrap();
    assert_eq!(v2.items.len(), 1);

    let pay = payments::v1::grpc::Client::connect_lazy(sys.payments_url.clone())
        .unwrap()
        .with_credentials(pactum::auth::Credentials::bearer(
            generated_example::system::staff_token("agent-7", &[]),
        ));
    let payment = pay
        .get_payment(&payments::v1::GetPaymentRequest {
            id: payments::v1::PaymentId(Uuid::from_u128(0xfee)),
        })
        .await
        .unwrap();
    assert_eq!(
        payment.method,
        payments::v1::PaymentMethod::Card(payments::v1::CardPayment {
            last4: "4242".into()
        })
    );
}

#[tokio::test]
async fn declared_errors_come_back_as_typed_variants() {
    let sys = system::start(Options::default()).await.unwrap();
    let o1 = orders::v1::grpc::Client::connect_lazy(sys.orders_url.clone()).unwrap();
    let missing = orders::v1::OrderId(Uuid::from_u128(404));
    match o1
        .get_order(&orders::v1::GetOrderRequest {
            id: missing.clone(),
        })
        .await
    {
        Err(ClientError::Declared(orders::v1::GetOrderError::OrderNotFound(e))) => {
            assert_eq!(e.id, missing)
        }
        other => panic!("{other:?}"),
    }
    let inv = inventory::v1::grpc::Client::connect_lazy(sys.inventory_url.clone()).unwrap();
    match inv
        .reserve_stock(&inventory::v1::ReserveStockRequest {
            order_id: Uuid::from_u128(6),
            lines: vec![pricing::v1::QuoteLine {
                sku: sku("BOOK-42"),
                quantity: 99,
            }],
        })
        .await
    {
        Err(ClientError::Declared(inventory::v1::ReserveStockError::OutOfStock(e))) => {
            assert_eq!((e.requested, e.available), (99, 10))
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        inv.release_stock(&inventory::v1::ReleaseStockRequest {
            reservation_id: inventory::v1::ReservationId(Uuid::nil())
        })
        .await,
        Err(ClientError::Declared(
            inventory::v1::ReleaseStockError::ReservationNotFound(_)
        ))
    ));
    // Invalid input is INVALID_ARGUMENT (code 3), never an internal error.
    match inv
        .reserve_stock(&inventory::v1::ReserveStockRequest {
            order_id: Uuid::from_u128(7),
            lines: vec![],
        })
        .await
    {
        Err(ClientError::Rpc { code, message }) => {
            assert_eq!(code, 3);
            assert!(message.contains("/lines"), "{message}");
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_slow_handler_answers_deadline_exceeded_not_cancelled() {
    let sys = system::start(Options::default()).await.unwrap();
    *sys.inventory.latency.lock().unwrap() = Duration::from_secs(2);
    // The typed client: CheckStock's 150 ms contract deadline.
    let inv = inventory::v1::grpc::Client::connect_lazy(sys.inventory_url.clone()).unwrap();
    let started = std::time::Instant::now();
    let r = inv
        .check_stock(&inventory::v1::CheckStockRequest {
            sku: sku("BOOK-42"),
        })
        .await;
    assert!(matches!(r, Err(ClientError::DeadlineExceeded)), "{r:?}");
    assert!(started.elapsed() < Duration::from_secs(1));
    // A raw tonic call that sets no deadline of its own: the server enforces the contract's
    // and answers DEADLINE_EXCEEDED itself.
    let channel = pactum::grpc::tonic::transport::Endpoint::from_shared(sys.inventory_url.clone())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut grpc = pactum::grpc::tonic::client::Grpc::new(channel);
    grpc.ready().await.unwrap();
    let status = grpc
        .unary(
            // The domain types are the messages.
            pactum::grpc::tonic::Request::new(inventory::v1::CheckStockRequest {
                sku: pricing::v1::Sku("BOOK-42".into()),
            }),
            http::uri::PathAndQuery::from_static("/shop.inventory.v1.InventoryService/CheckStock"),
            pactum::grpc::tonic_prost::ProstCodec::<
                inventory::v1::CheckStockRequest,
                inventory::v1::StockLevel,
            >::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(
        status.code(),
        pactum::grpc::tonic::Code::DeadlineExceeded,
        "{status:?}"
    );
}

#[tokio::test]
async fn one_trace_id_across_a_rest_to_grpc_hop() {
    let sys = system::start(Options::default()).await.unwrap();
    let trace = "0af7651916cd43dd8448eb211c80319c";
    let ctx = Context::from_headers(&HashMap::from([(
        "traceparent".to_string(),
        format!("00-{trace}-b7ad6b7169203331-01"),
    )]));
    let carts = cart::v1::rest::Client::new(&sys.cart_url);
    ctx.scope(carts.checkout_cart(&cart::v1::CheckoutCartRequest {
        cart_id: cart::v1::CartId(Uuid::from_u128(DEMO_CART)),
    }))
    .await
    .unwrap();
    let saw: Vec<_> = sys.inventory.seen.all();
    assert_eq!(saw.len(), 2, "one CheckStock per cart item: {saw:?}");
    assert!(
        saw.iter()
            .all(|(op, t)| *op == "CheckStock" && t.as_deref() == Some(trace)),
        "{saw:?}"
    );
    assert_eq!(sys.cart.seen.all()[0].1.as_deref(), Some(trace));
    assert_eq!(sys.pricing.seen.all()[0].1.as_deref(), Some(trace));
}

#[tokio::test]
async fn server_client_and_bidi_streaming() {
    use pactum::__private::tokio_stream::{self as stream, StreamExt};
    let sys = system::start(Options::default()).await.unwrap();
    let inv = inventory::v1::grpc::Client::connect_lazy(sys.inventory_url.clone()).unwrap();

    // Server streaming: one change per requested SKU.
    let changes: Vec<_> = inv
        .watch_stock(&inventory::v1::WatchStockRequest {
            skus: vec![sku("BOOK-42"), sku("PEN-7"), sku("NONE-0")],
        })
        .await
        .unwrap()
        .collect()
        .await;
    let levels: Vec<(String, u32)> = changes
        .into_iter()
        .map(|c| c.unwrap())
        .map(|c| (c.sku.0, c.available))
        .collect();
    assert_eq!(
        levels,
        [
            ("BOOK-42".into(), 10),
            ("PEN-7".into(), 100),
            ("NONE-0".into(), 0)
        ]
    );
    // A request that breaks the contract (max 50 SKUs) is INVALID_ARGUMENT.
    let too_many = inventory::v1::WatchStockRequest {
        skus: (0..51).map(|i| sku(&format!("S-{i}"))).collect(),
    };
    assert!(matches!(
        inv.watch_stock(&too_many).await,
        Err(ClientError::Rpc { code: 3, .. })
    ));

    // Client streaming: three arrivals, one reply.
    let arrivals = stream::iter(
        [("BOOK-42", 5), ("PEN-7", 20), ("BOOK-42", 1)].map(|(s, q)| {
            inventory::v1::BulkRestockRequest {
                sku: sku(s),
                quantity: q,
            }
        }),
    );
    let total = inv.bulk_restock(arrivals).await.unwrap();
    assert_eq!((total.skus, total.units), (2, 26));
    assert_eq!(sys.inventory.stock_levels()["BOOK-42"].0, 16);

    // Bidirectional: each scan answered as it arrives.
    let scans =
        stream::iter(["PEN-7", "BOOK-42"].map(|s| inventory::v1::ScanStockRequest { sku: sku(s) }));
    let replies: Vec<_> = inv.scan_stock(scans).await.unwrap().collect().await;
    let got: Vec<(String, u32)> = replies
        .into_iter()
        .map(|r| r.unwrap())
        .map(|l| (l.sku.0, l.available))
        .collect();
    assert_eq!(got, [("PEN-7".into(), 120), ("BOOK-42".into(), 16)]);
}

/// What a client in another language could send for `GetOrder`: the `.proto`'s string where
/// the contract has a uuid, and bytes that are not valid UTF-8 where it has a string.
mod raw {
    #[derive(Clone, PartialEq, pactum::grpc::prost::Message)]
    #[prost(prost_path = "::pactum::grpc::prost")]
    pub struct GetOrderRequest {
        #[prost(string, tag = "1")]
        pub id: String,
    }

    #[derive(Clone, PartialEq, pactum::grpc::prost::Message)]
    #[prost(prost_path = "::pactum::grpc::prost")]
    pub struct NotUtf8 {
        #[prost(bytes = "vec", tag = "1")]
        pub id: Vec<u8>,
    }
}

/// Sends one raw message to `GetOrder` and returns the status it is refused with.
async fn refused<M>(url: &str, message: M) -> pactum::grpc::tonic::Status
where
    M: pactum::grpc::prost::Message + Send + Sync + 'static,
{
    let channel = pactum::grpc::tonic::transport::Endpoint::from_shared(url.to_string())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut grpc = pactum::grpc::tonic::client::Grpc::new(channel);
    grpc.ready().await.unwrap();
    grpc.unary(
        pactum::grpc::tonic::Request::new(message),
        http::uri::PathAndQuery::from_static("/shop.orders.v1.OrdersService/GetOrder"),
        pactum::grpc::tonic_prost::ProstCodec::<M, orders::v1::Order>::default(),
    )
    .await
    .unwrap_err()
}

#[tokio::test]
async fn a_request_the_contract_cannot_hold_is_invalid_argument_naming_the_field() {
    let sys = system::start(Options::default()).await.unwrap();
    let url = &sys.orders_url;
    let bad_id = refused(
        url,
        raw::GetOrderRequest {
            id: "not-a-uuid".into(),
        },
    )
    .await;
    assert_eq!(bad_id.code(), pactum::grpc::tonic::Code::InvalidArgument);
    assert!(bad_id.message().starts_with("field `id`: "), "{bad_id:?}");
    // An id left out is protobuf's empty string, which is no uuid either.
    let no_id = refused(url, raw::GetOrderRequest { id: String::new() }).await;
    assert_eq!(no_id.code(), pactum::grpc::tonic::Code::InvalidArgument);
    assert!(no_id.message().starts_with("field `id`: "), "{no_id:?}");
    // Bytes that are not the message at all: the client's mistake, not the server's.
    let not_utf8 = refused(
        url,
        raw::NotUtf8 {
            id: vec![0xff, 0xfe],
        },
    )
    .await;
    assert_eq!(
        not_utf8.code(),
        pactum::grpc::tonic::Code::InvalidArgument,
        "{not_utf8:?}"
    );
    assert!(
        not_utf8
            .message()
            .starts_with("the request is not a valid message"),
        "{not_utf8:?}"
    );
}
