//! The calling side of any transport: how a generated client's call fails
//! ([`ClientError`], the same for REST and gRPC) and how long a call may take when nothing
//! says ([`DEFAULT_TIMEOUT`]).

use crate::problem::Problem;
use crate::retry::Transient;
use std::fmt;
use std::time::Duration;

/// A failed call. `E` is the operation's declared error enum.
#[derive(Debug)]
pub enum ClientError<E> {
    /// The server answered with one of the operation's declared errors.
    Declared(E),
    /// The deadline passed (locally, or the server answered 504).
    DeadlineExceeded,
    /// The server refused the request (a 4xx problem that is not a declared error: invalid
    /// input, missing idempotency key, conflict, …).
    Rejected(Problem),
    /// The request never got an answer (connection refused or reset, I/O).
    Transport(String),
    /// A gRPC status that is not a declared error.
    Rpc {
        /// gRPC status code.
        code: i32,
        /// Its message.
        message: String,
    },
    /// An answer the contract does not describe.
    Unexpected {
        /// HTTP status.
        status: u16,
        /// Body, as text.
        body: String,
    },
    /// Not sent: the target's circuit breaker is open after failures in a row
    /// ([`crate::resilience`]). Nothing reached the server.
    CircuitOpen {
        /// When the breaker lets a probe through (zero: a probe is already on its way).
        retry_in: std::time::Duration,
    },
}

impl<E> ClientError<E> {
    /// A short name for what went wrong, recorded as `error.kind` on the call's span.
    pub fn kind(&self) -> &'static str {
        match self {
            ClientError::Declared(_) => "Declared",
            ClientError::DeadlineExceeded => "DeadlineExceeded",
            ClientError::Rejected(_) => "Rejected",
            ClientError::Transport(_) => "Transport",
            ClientError::Rpc { .. } => "Rpc",
            ClientError::Unexpected { .. } => "Unexpected",
            ClientError::CircuitOpen { .. } => "CircuitOpen",
        }
    }

    /// Whether the failure says the endpoint is unwell (what opens a circuit breaker): no
    /// answer, a timeout, an undeclared 5xx, `UNAVAILABLE`, `INTERNAL` or `UNKNOWN`. A
    /// declared error, a refused request (4xx) and a quota or load-shedding answer (429,
    /// `RESOURCE_EXHAUSTED`: often one caller's limit, and a server protecting itself) are
    /// answers: one misbehaving caller must not cut the target off for everyone. Whether a
    /// timeout counts is the retry loop's call: only when the attempt had its full budget.
    pub fn is_endpoint_failure(&self) -> bool {
        match self {
            ClientError::Transport(_) | ClientError::DeadlineExceeded => true,
            // 501 is a live server saying it has no handler yet: an answer.
            ClientError::Unexpected { status, .. } => (500..600).contains(status) && *status != 501,
            ClientError::Rpc { code, .. } => matches!(code, 2 | 13 | 14),
            ClientError::Rejected(_)
            | ClientError::Declared(_)
            | ClientError::CircuitOpen { .. } => false,
        }
    }
}

impl<E> From<crate::resilience::CircuitOpen> for ClientError<E> {
    fn from(open: crate::resilience::CircuitOpen) -> Self {
        ClientError::CircuitOpen {
            retry_in: open.retry_in,
        }
    }
}

impl<E: fmt::Display> fmt::Display for ClientError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::Declared(e) => e.fmt(f),
            ClientError::DeadlineExceeded => f.write_str("deadline exceeded"),
            ClientError::Rejected(p) => write!(
                f,
                "rejected ({}): {}",
                p.status,
                p.detail.as_deref().unwrap_or(&p.title)
            ),
            ClientError::Transport(e) => write!(f, "transport error: {e}"),
            ClientError::Rpc { code, message } => write!(f, "gRPC status {code}: {message}"),
            ClientError::Unexpected { status, body } => {
                write!(
                    f,
                    "unexpected reply {status}: {}",
                    body.chars().take(200).collect::<String>()
                )
            }
            ClientError::CircuitOpen { retry_in } => write!(
                f,
                "not sent: the circuit breaker is open for another {} ms",
                retry_in.as_millis()
            ),
        }
    }
}

impl<E: fmt::Debug + fmt::Display> std::error::Error for ClientError<E> {}

impl<E> Transient for ClientError<E> {
    fn is_transient(&self) -> bool {
        match self {
            ClientError::Transport(_) => true,
            ClientError::Unexpected { status, .. } => matches!(status, 502 | 503),
            ClientError::Rejected(p) => p.status == 429 || p.status == 503 || p.status == 409,
            _ => false,
        }
    }
    fn is_deadline(&self) -> bool {
        matches!(self, ClientError::DeadlineExceeded)
    }
}

/// The budget of a call when neither the contract nor the caller gives one: no call waits
/// forever.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

#[cfg(test)]
mod tests {
    use super::ClientError;

    #[test]
    fn a_501_is_an_answer_and_other_5xx_are_endpoint_failures() {
        let unexpected = |status| ClientError::<()>::Unexpected {
            status,
            body: String::new(),
        };
        assert!(!unexpected(501).is_endpoint_failure());
        assert!(unexpected(500).is_endpoint_failure());
        assert!(unexpected(502).is_endpoint_failure());
        let rpc = |code| ClientError::<()>::Rpc {
            code,
            message: String::new(),
        };
        assert!(!rpc(12).is_endpoint_failure(), "UNIMPLEMENTED");
        assert!(rpc(14).is_endpoint_failure(), "UNAVAILABLE");
    }
}
