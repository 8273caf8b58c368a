//! What a handler returns when it fails: a declared error, the deadline, or an internal fault.

use crate::contract::ErrorStatus;
use crate::deadline::DeadlineExceeded;
use std::fmt;

/// A handler's failure. `E` is the operation's generated error enum (`GetOrderError`);
/// generated code implements `From` for each declared error, so `Err(OrderNotFound { .. })?`
/// works, and `#[pactum::deadline]` converts a timeout through `From<DeadlineExceeded>`.
#[derive(Debug, Clone, PartialEq)]
pub enum HandlerError<E> {
    /// One of the errors the contract declares for the operation.
    Declared(E),
    /// The request's deadline passed (HTTP 504, gRPC `DEADLINE_EXCEEDED`).
    DeadlineExceeded,
    /// Anything else: reported as a 500 / `INTERNAL` without details.
    Internal(String),
    /// The operation has no handler yet (what `pactum new`'s stubs return): a 501 problem /
    /// gRPC `UNIMPLEMENTED` naming the operation (`orders.v1.PlaceOrder`). A keyed request
    /// that gets it is not stored, so a retry after the handler ships runs it.
    NotImplemented(&'static str),
    /// The input is wrong in a way only the handler (or the runtime around it) can tell,
    /// beyond the contract's constraints: a 422 problem listing the violations, gRPC
    /// `INVALID_ARGUMENT`. A page cursor that was altered or belongs to another operation is
    /// refused this way.
    InvalidInput(crate::ValidationError),
}

impl<E> HandlerError<E> {
    /// An internal failure with a message for logs (never sent to clients).
    pub fn internal(message: impl fmt::Display) -> Self {
        HandlerError::Internal(message.to_string())
    }

    /// The error class for statuses; `status_of` classifies declared errors.
    pub fn status(&self, status_of: impl FnOnce(&E) -> ErrorStatus) -> Option<ErrorStatus> {
        match self {
            HandlerError::Declared(e) => Some(status_of(e)),
            HandlerError::DeadlineExceeded => None,
            HandlerError::Internal(_) => Some(ErrorStatus::Internal),
            HandlerError::NotImplemented(_) => None,
            HandlerError::InvalidInput(_) => Some(ErrorStatus::InvalidArgument),
        }
    }
}

impl<E> From<DeadlineExceeded> for HandlerError<E> {
    fn from(_: DeadlineExceeded) -> Self {
        HandlerError::DeadlineExceeded
    }
}

impl<E: fmt::Display> fmt::Display for HandlerError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HandlerError::Declared(e) => e.fmt(f),
            HandlerError::DeadlineExceeded => DeadlineExceeded.fmt(f),
            HandlerError::Internal(m) => write!(f, "internal error: {m}"),
            HandlerError::NotImplemented(op) => write!(f, "`{op}` is not implemented yet"),
            HandlerError::InvalidInput(e) => e.fmt(f),
        }
    }
}

impl<E: fmt::Debug + fmt::Display> std::error::Error for HandlerError<E> {}
