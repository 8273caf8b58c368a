//! The contract language's closed vocabularies — HTTP methods, idempotency, jitter,
//! streaming shapes, event deadlines, delivery modes, call transports — as the typed values
//! decoding parses them into once. The AST holds them as written and checked; the IR holds
//! them resolved; emitters read them from the IR (re-exported there).
//!
//! Each `parse` takes the contract's spelling; its error is the message and the help a
//! diagnostic gives.

/// Why a value does not parse: what is wrong and how to fix it.
pub type Problem = (String, String);

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

/// How retried calls are made safe.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Idempotency {
    /// No key: only `safe` operations may be retried.
    None,
    /// Idempotency-Key required; retries reuse it; the server replays the stored reply.
    Key,
}

/// Jitter applied to backoff.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Jitter {
    /// Sleep a uniform random time in `[0, backoff]`.
    Full,
    /// Sleep exactly the backoff.
    None,
}

/// Streaming shape of an operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum Streaming {
    None,
    Server,
    Client,
    Bidi,
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

/// Delivery modes of events.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Delivery {
    /// One worker of a group claims each message.
    Queue,
    /// Every consumer group gets every event.
    Pubsub,
    /// Ordered per key, replayable, durable consumer groups.
    Stream,
}

impl Delivery {
    /// Parses a contract spelling.
    pub fn parse(s: &str) -> Option<Delivery> {
        Some(match s {
            "queue" => Delivery::Queue,
            "pubsub" => Delivery::Pubsub,
            "stream" => Delivery::Stream,
            _ => return None,
        })
    }

    /// The contract spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Delivery::Queue => "queue",
            Delivery::Pubsub => "pubsub",
            Delivery::Stream => "stream",
        }
    }

    /// The runtime enum variant name.
    pub fn variant(self) -> &'static str {
        match self {
            Delivery::Queue => "Queue",
            Delivery::Pubsub => "Pubsub",
            Delivery::Stream => "Stream",
        }
    }
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

impl Idempotency {
    /// `key` or `none`.
    pub fn parse(s: &str) -> Result<Idempotency, Problem> {
        match s {
            "key" => Ok(Idempotency::Key),
            "none" => Ok(Idempotency::None),
            other => Err((
                format!("unknown idempotency `{other}`"),
                "use `idempotency: key` (Idempotency-Key header) or `none`".into(),
            )),
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

impl Streaming {
    /// `none`, `server`, `client` or `bidi`.
    pub fn parse(s: &str) -> Result<Streaming, Problem> {
        match s {
            "none" => Ok(Streaming::None),
            "server" => Ok(Streaming::Server),
            "client" => Ok(Streaming::Client),
            "bidi" => Ok(Streaming::Bidi),
            other => Err((
                format!("unknown streaming mode `{other}`"),
                "use `none`, `server`, `client` or `bidi`".into(),
            )),
        }
    }

    /// The contract spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Streaming::None => "none",
            Streaming::Server => "server",
            Streaming::Client => "client",
            Streaming::Bidi => "bidi",
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
