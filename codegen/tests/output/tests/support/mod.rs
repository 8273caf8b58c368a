//! A `resilience.v1` service for the serving and TLS tests: `Busy` answers its input and
//! records who called (the mutual-TLS peer's common name, if any); the rest are not used.

use pactum_test_output::generated::resilience::v1 as r;
use std::sync::{Arc, Mutex};

/// `Busy` echoes; every other operation fails, unused.
#[derive(Clone, Default)]
pub struct Idle {
    /// Each `Busy` call's `Context::peer`.
    pub callers: Arc<Mutex<Vec<Option<pactum::PeerIdentity>>>>,
}

impl r::Service for Idle {
    async fn who_am_i(
        &self,
        ctx: pactum::Context,
    ) -> Result<r::WhoAmIResponse, pactum::HandlerError<r::WhoAmIError>> {
        let principal = ctx
            .principal()
            .ok_or_else(|| pactum::HandlerError::internal("no principal"))?;
        Ok(r::WhoAmIResponse {
            subject: format!("{}:{}", principal.scheme, principal.subject),
        })
    }
    async fn flaky(
        &self,
        _: pactum::Context,
        _: r::FlakyRequest,
    ) -> Result<r::FlakyResponse, pactum::HandlerError<r::FlakyError>> {
        Err(pactum::HandlerError::internal("not used"))
    }
    async fn fragile(
        &self,
        _: pactum::Context,
    ) -> Result<r::FragileResponse, pactum::HandlerError<r::FragileError>> {
        Err(pactum::HandlerError::internal("not used"))
    }
    async fn busy(
        &self,
        ctx: pactum::Context,
        input: r::BusyRequest,
    ) -> Result<r::BusyResponse, pactum::HandlerError<r::BusyError>> {
        let caller = ctx.peer().cloned();
        self.callers.lock().unwrap().push(caller);
        Ok(r::BusyResponse { n: input.n })
    }
    async fn patient(
        &self,
        _: pactum::Context,
        _: r::PatientRequest,
    ) -> Result<r::PatientResponse, pactum::HandlerError<r::PatientError>> {
        Err(pactum::HandlerError::internal("not used"))
    }
    async fn claimed(
        &self,
        _: pactum::Context,
        _: r::ClaimedRequest,
    ) -> Result<r::ClaimedResponse, pactum::HandlerError<r::ClaimedError>> {
        Err(pactum::HandlerError::internal("not used"))
    }
    async fn feed(
        &self,
        _: pactum::Context,
        _: r::FeedRequest,
    ) -> Result<
        pactum::BoxStream<Result<r::FeedResponse, pactum::HandlerError<r::FeedError>>>,
        pactum::HandlerError<r::FeedError>,
    > {
        Err(pactum::HandlerError::internal("not used"))
    }
    async fn r#unsafe(
        &self,
        _: pactum::Context,
        _: r::UnsafeRequest,
    ) -> Result<r::UnsafeResponse, pactum::HandlerError<r::UnsafeError>> {
        Err(pactum::HandlerError::internal("not used"))
    }
}
