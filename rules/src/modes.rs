//! The modes a contract declares for an operation or an event — idempotency, streaming,
//! delivery — as one type each, for the generator (which parses the contract's spelling) and
//! the runtime (whose `OperationInfo` and `ConsumerInfo` carry them).

/// Why a spelling does not parse: what is wrong and how to fix it.
pub type Problem = (String, String);

/// How retried calls are made safe.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Idempotency {
    /// No key: only `safe` operations may be retried.
    None,
    /// Idempotency-Key required; retries reuse it; the server replays the stored reply.
    Key,
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

/// Streaming shape of an operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum Streaming {
    None,
    Server,
    Client,
    Bidi,
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

/// Delivery modes of events.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DeliveryMode {
    /// One worker of a group claims each message.
    Queue,
    /// Every consumer group gets every event.
    Pubsub,
    /// Ordered per key, replayable, durable consumer groups.
    Stream,
}

impl DeliveryMode {
    /// Parses a contract spelling.
    pub fn parse(s: &str) -> Option<DeliveryMode> {
        Some(match s {
            "queue" => DeliveryMode::Queue,
            "pubsub" => DeliveryMode::Pubsub,
            "stream" => DeliveryMode::Stream,
            _ => return None,
        })
    }

    /// The contract spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryMode::Queue => "queue",
            DeliveryMode::Pubsub => "pubsub",
            DeliveryMode::Stream => "stream",
        }
    }

    /// The runtime enum variant name.
    pub fn variant(self) -> &'static str {
        match self {
            DeliveryMode::Queue => "Queue",
            DeliveryMode::Pubsub => "Pubsub",
            DeliveryMode::Stream => "Stream",
        }
    }
}
