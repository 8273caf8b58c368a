//! The contract language's closed vocabularies — HTTP methods, idempotency, jitter,
//! streaming shapes, event deadlines, delivery modes, call transports — as the typed values
//! decoding parses them into once. The AST holds them as written and checked; the IR holds
//! them resolved; emitters read them from the IR (re-exported there).
//!
//! Each `parse` takes the contract's spelling; its error is the message and the help a
//! diagnostic gives.

pub use pactum_rules::modes::{DeliveryMode as Delivery, Idempotency, Problem, Streaming};

/// HTTP methods a route may use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[allow(missing_docs)]
pub enum HttpMethod {
    Get,
    Head,
    Post,
    Put,
    Patch,
    Delete,
}

impl HttpMethod {
    /// Parses an upper-case method.
    pub fn parse(s: &str) -> Option<HttpMethod> {
        Some(match s {
            "GET" => HttpMethod::Get,
            "HEAD" => HttpMethod::Head,
            "POST" => HttpMethod::Post,
            "PUT" => HttpMethod::Put,
            "PATCH" => HttpMethod::Patch,
            "DELETE" => HttpMethod::Delete,
            _ => return None,
        })
    }

    /// Upper-case spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            HttpMethod::Get => "GET",
            HttpMethod::Head => "HEAD",
            HttpMethod::Post => "POST",
            HttpMethod::Put => "PUT",
            HttpMethod::Patch => "PATCH",
            HttpMethod::Delete => "DELETE",
        }
    }

    /// GET and HEAD change nothing.
    pub fn is_read_only(self) -> bool {
        matches!(self, HttpMethod::Get | HttpMethod::Head)
    }

    /// GET, HEAD and DELETE carry their input in the query, the others in a JSON body.
    pub fn input_in_query(self) -> bool {
        matches!(
            self,
            HttpMethod::Get | HttpMethod::Head | HttpMethod::Delete
        )
    }
}

/// Jitter applied to backoff.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Jitter {
    /// Sleep a uniform random time in `[0, backoff]`.
    Full,
    /// Sleep exactly the backoff.
    None,
}

/// An event's deadline, as the contract declares it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventDeadline {
    /// None: the event is a fact, worth processing however late (the default).
    None,
    /// The publisher's remaining request budget travels with the event.
    Inherit,
    /// The event expires this many nanoseconds after it is published.
    After(u64),
}

/// How a call travels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Via {
    /// HTTP + JSON, through the generated REST client.
    Rest,
    /// gRPC, through the generated gRPC client.
    Grpc,
}

impl Via {
    /// The contract spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Via::Rest => "rest",
            Via::Grpc => "grpc",
        }
    }

    /// How documentation names it.
    pub fn label(self) -> &'static str {
        match self {
            Via::Rest => "REST",
            Via::Grpc => "gRPC",
        }
    }
}

impl Jitter {
    /// `full` or `none`.
    pub fn parse(s: &str) -> Result<Jitter, Problem> {
        match s {
            "full" => Ok(Jitter::Full),
            "none" => Ok(Jitter::None),
            other => Err((
                format!("unknown jitter `{other}`"),
                "use `full` (recommended) or `none`".into(),
            )),
        }
    }
}

impl Via {
    /// `rest` or `grpc`.
    pub fn parse(s: &str) -> Result<Via, Problem> {
        match s {
            "rest" => Ok(Via::Rest),
            "grpc" => Ok(Via::Grpc),
            other => Err((
                format!("unknown transport `{other}`"),
                "use `rest` or `grpc`".into(),
            )),
        }
    }
}
