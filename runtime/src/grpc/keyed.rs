//! Keyed unary calls: the idempotency claim protocol over gRPC. Requests and replies pass
//! through as raw message bytes, so the fingerprint is the request's own bytes and a replay
//! sends exactly the bytes (or status and details) the first call sent.

use super::RpcStatus;
use crate::context::Context;
use crate::contract::OperationInfo;
use crate::router::{KeyHeader, ServerConfig};
use crate::store::idempotency::{
    admit, Admission, Held, IdempotencyStore, StoredReply, GRPC_REPLY,
};
use prost::bytes::{Buf as _, BufMut as _};
use prost::Message as _;
use sha2::Digest as _;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

/// What a keyed call needs to claim its key.
#[derive(Clone)]
pub(super) struct Keyed {
    store: Arc<dyn IdempotencyStore>,
    scope: String,
    key: KeyHeader,
    lease: Held,
    retention: Duration,
}

impl Keyed {
    pub(super) fn new(
        op: &'static OperationInfo,
        config: &ServerConfig,
        headers: &http::HeaderMap,
        ctx: &Context,
    ) -> Self {
        Keyed {
            store: Arc::clone(&config.idempotency),
            scope: config.claim_scope(op, headers, ctx.principal()),
            key: KeyHeader::read(ctx, headers),
            lease: config.lease.for_deadline(op.deadline),
            retention: config.retention,
        }
    }

    /// Admits the call and runs it (`run` decodes the raw request and calls the handler)
    /// under its claim, or answers from the store.
    pub(super) async fn serve<O, PbOut, W, Fut>(
        self,
        ctx: Context,
        fingerprint: &[u8],
        run: W,
        encode: fn(O) -> PbOut,
    ) -> Result<tonic::Response<Vec<u8>>, tonic::Status>
    where
        O: Clone + Send + 'static,
        PbOut: prost::Message + 'static,
        W: FnOnce(Context) -> Fut + Send + 'static,
        Fut: Future<Output = Result<Vec<u8>, tonic::Status>> + Send + 'static,
    {
        let key = match self.key {
            KeyHeader::Key(key) => key,
            KeyHeader::Missing => {
                return Err(tonic::Status::invalid_argument(
                    "this operation requires `idempotency-key` metadata: a key of 1-255 visible ASCII characters, as a token or a quoted string",
                ))
            }
            KeyHeader::Malformed => {
                return Err(tonic::Status::invalid_argument(
                    "malformed `idempotency-key`: send 1-255 visible ASCII characters, as a token (8e03978e-...) or a quoted string (\"8e03978e-...\")",
                ))
            }
        };
        let admission = admit(
            &self.store,
            self.scope.clone(),
            key.clone(),
            fingerprint,
            self.lease,
            self.retention,
        )
        .await;
        match admission {
            Admission::Run(claim) => {
                claim.set_encoder::<O>(move |out| {
                    message_reply(encode(out.clone()).encode_to_vec())
                });
                let ctx = ctx
                    .with_key_basis(format!("key:{}/{key}", self.scope))
                    .with_claim(claim.clone());
                let work = async move {
                    match run(ctx).await {
                        Ok(bytes) => message_reply(bytes),
                        Err(status) => status_reply(&status),
                    }
                };
                let stored = claim
                    .run(work, is_final, |message| {
                        tracing::error!(%message, "keyed call failed");
                        status_reply(&tonic::Status::internal(
                            "the server failed to handle the request",
                        ))
                    })
                    .await;
                answer(stored, false)
            }
            Admission::Replay(stored) => answer(stored, true),
            Admission::Busy { retry_after } => Err(busy(retry_after)),
            Admission::Mismatch => Err(tonic::Status::failed_precondition(
                "this idempotency-key was already used with a different request",
            )),
            Admission::Unavailable(e) => {
                tracing::error!(error = %e, "idempotency store unavailable");
                Err(tonic::Status::unavailable(
                    "idempotency store unavailable; nothing was done; retry later",
                ))
            }
        }
    }
}

/// What a keyed call's payload is: its request message's bytes.
pub(super) fn fingerprint(raw: &[u8]) -> Vec<u8> {
    sha2::Sha256::digest(raw).to_vec()
}

/// A reply message, as stored.
fn message_reply(bytes: Vec<u8>) -> StoredReply {
    StoredReply {
        status: 0,
        content_type: Some(GRPC_REPLY.into()),
        body: bytes,
    }
}

/// A status, as stored: its `google.rpc.Status` (the details tonic sent, when there were any).
fn status_reply(status: &tonic::Status) -> StoredReply {
    let body = if status.details().is_empty() {
        RpcStatus {
            code: status.code() as i32,
            message: status.message().to_string(),
            details: Vec::new(),
        }
        .encode_to_vec()
    } else {
        status.details().to_vec()
    };
    StoredReply {
        status: u16::try_from(status.code() as i32).unwrap_or(13),
        content_type: Some(GRPC_REPLY.into()),
        body,
    }
}

fn is_final(reply: &StoredReply) -> bool {
    crate::store::idempotency::is_final_grpc(reply.status)
}

/// The answer for a stored reply.
fn answer(stored: StoredReply, replayed: bool) -> Result<tonic::Response<Vec<u8>>, tonic::Status> {
    let mark = |metadata: &mut tonic::metadata::MetadataMap| {
        if replayed {
            metadata.insert(
                "idempotent-replayed",
                tonic::metadata::MetadataValue::from_static("true"),
            );
        }
    };
    if stored.status == 0 {
        let mut response = tonic::Response::new(stored.body);
        mark(response.metadata_mut());
        return Ok(response);
    }
    let code = tonic::Code::from_i32(i32::from(stored.status));
    let status = match RpcStatus::decode(stored.body.as_slice()) {
        Ok(rpc) if rpc.details.is_empty() => tonic::Status::new(code, rpc.message),
        Ok(rpc) => tonic::Status::with_details(code, rpc.message, stored.body.into()),
        Err(_) => tonic::Status::new(code, "stored reply"),
    };
    let mut status = status;
    mark(status.metadata_mut());
    Err(status)
}

/// `google.rpc.RetryInfo`: how long to wait before retrying.
#[derive(Clone, PartialEq, prost::Message)]
struct RetryInfo {
    #[prost(message, optional, tag = "1")]
    retry_delay: Option<prost_types::Duration>,
}

/// `UNAVAILABLE` with a `google.rpc.RetryInfo` detail: the key is held by a running call.
fn busy(retry_after: Duration) -> tonic::Status {
    let message = "a call with this idempotency-key is still being processed; retry after the RetryInfo delay";
    let info = RetryInfo {
        retry_delay: Some(prost_types::Duration {
            seconds: i64::try_from(retry_after.as_secs()).unwrap_or(i64::MAX),
            nanos: i32::try_from(retry_after.subsec_nanos()).unwrap_or(0),
        }),
    };
    let details = RpcStatus {
        code: tonic::Code::Unavailable as i32,
        message: message.into(),
        details: vec![prost_types::Any {
            type_url: "type.googleapis.com/google.rpc.RetryInfo".into(),
            value: info.encode_to_vec(),
        }],
    };
    tonic::Status::with_details(
        tonic::Code::Unavailable,
        message,
        details.encode_to_vec().into(),
    )
}

/// Passes messages through as bytes: decoding and encoding are the call's own.
pub(super) struct RawCodec;

impl tonic::codec::Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = RawCodec;
    type Decoder = RawCodec;

    fn encoder(&mut self) -> RawCodec {
        RawCodec
    }

    fn decoder(&mut self) -> RawCodec {
        RawCodec
    }
}

impl tonic::codec::Encoder for RawCodec {
    type Item = Vec<u8>;
    type Error = tonic::Status;

    fn encode(
        &mut self,
        item: Vec<u8>,
        dst: &mut tonic::codec::EncodeBuf<'_>,
    ) -> Result<(), tonic::Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl tonic::codec::Decoder for RawCodec {
    type Item = Vec<u8>;
    type Error = tonic::Status;

    fn decode(
        &mut self,
        src: &mut tonic::codec::DecodeBuf<'_>,
    ) -> Result<Option<Vec<u8>>, tonic::Status> {
        let mut out = vec![0; src.remaining()];
        src.copy_to_slice(&mut out);
        Ok(Some(out))
    }
}
