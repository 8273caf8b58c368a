//! Paginated operations (`paginate:` in the contract).
//!
//! The client side is [`items`]: one stream of items across every page, fetching the next
//! page only when the items of the last one are taken, each page one ordinary call (with
//! the operation's deadline, retry policy and the caller's remaining budget).
//!
//! The server side is [`serve_page`]: the handler reads and writes its own plain cursor
//! (an offset, the last id seen), and the runtime seals it before it leaves the server and
//! opens it when it comes back. A sealed cursor is bound to the operation that issued it and
//! authenticated with HMAC-SHA-256 under the server's [`Cursors`] key, so a client can
//! neither forge nor alter one, nor replay one on another operation: those are refused as
//! invalid input (422 / `INVALID_ARGUMENT`) before the handler runs. Cursors stay opaque to
//! clients; they are not encrypted, so a handler should not put in them what the caller may
//! not read. They are bound to the operation, not to the caller, and do not expire: a
//! handler re-checks what a page shows against the caller (`Context::principal`), as it
//! does for a first page, rather than trust a cursor's contents as a grant.

use crate::{BoxStream, ClientError};
use std::collections::VecDeque;
use std::future::Future;

/// Most pages in a row that may come back empty while still naming a next page, before the
/// stream gives up: a server that never finishes must not keep a client fetching for ever.
pub const MAX_EMPTY_PAGES: usize = 64;

/// Every item of every page, as one stream. `fetch` calls the operation with a request;
/// `split` takes a reply apart into its items and the next page's cursor; `set_cursor`
/// puts a cursor into the request. The first request is `first` as given (its cursor,
/// usually none, included). The stream ends after the last page, or after the first error
/// (which it yields). A server that sends the same cursor twice in a row, or more than
/// [`MAX_EMPTY_PAGES`] empty pages in a row, ends it with [`ClientError::Unexpected`].
pub fn items<I, O, T, E, F, Fut>(
    first: I,
    fetch: F,
    split: fn(O) -> (Vec<T>, Option<String>),
    set_cursor: fn(&mut I, Option<String>),
) -> BoxStream<Result<T, ClientError<E>>>
where
    I: Clone + Send + 'static,
    O: Send + 'static,
    T: Send + 'static,
    E: Send + 'static,
    F: Fn(I) -> Fut + Send + 'static,
    Fut: Future<Output = Result<O, ClientError<E>>> + Send + 'static,
{
    struct State<I, T, E, F> {
        template: I,
        next: Option<I>,
        buffer: VecDeque<T>,
        failed: Option<ClientError<E>>,
        last_cursor: Option<String>,
        empty_in_a_row: usize,
        fetch: F,
    }
    let state = State {
        template: first.clone(),
        next: Some(first),
        buffer: VecDeque::new(),
        failed: None,
        last_cursor: None,
        empty_in_a_row: 0,
        fetch,
    };
    Box::pin(futures_util::stream::unfold(
        state,
        move |mut st| async move {
            // Each turn yields an item, or fetches a page: bounded by MAX_EMPTY_PAGES fetches
            // between two items.
            loop {
                if let Some(item) = st.buffer.pop_front() {
                    return Some((Ok(item), st));
                }
                if let Some(e) = st.failed.take() {
                    return Some((Err(e), st));
                }
                let request = st.next.take()?;
                let reply = match (st.fetch)(request).await {
                    Ok(reply) => reply,
                    Err(e) => return Some((Err(e), st)),
                };
                let (page, next) = split(reply);
                st.empty_in_a_row = if page.is_empty() {
                    st.empty_in_a_row + 1
                } else {
                    0
                };
                st.buffer.extend(page);
                let Some(cursor) = next.filter(|c| !c.is_empty()) else {
                    continue; // the last page: drain the buffer, then end
                };
                let stuck = if st.last_cursor.as_deref() == Some(cursor.as_str()) {
                    Some(format!(
                    "the server sent page cursor `{cursor}` twice in a row; stopped rather than loop"
                ))
                } else if st.empty_in_a_row > MAX_EMPTY_PAGES {
                    Some(format!(
                    "the server sent {MAX_EMPTY_PAGES} empty pages in a row; stopped rather than loop"
                ))
                } else {
                    None
                };
                if let Some(body) = stuck {
                    // Give out what came, then the error, then end.
                    st.failed = Some(ClientError::Unexpected { status: 200, body });
                    continue;
                }
                let mut request = st.template.clone();
                set_cursor(&mut request, Some(cursor.clone()));
                st.last_cursor = Some(cursor);
                st.next = Some(request);
            }
        },
    ))
}

#[cfg(any(feature = "rest", feature = "grpc"))]
pub use sealed::{serve_page, CursorError, Cursors};

#[cfg(any(feature = "rest", feature = "grpc"))]
mod sealed {
    use crate::contract::OperationInfo;
    use crate::{HandlerError, ValidationError, Violation};
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;
    use hmac::{Hmac, KeyInit, Mac};
    use sha2::Sha256;
    use std::fmt;
    use std::future::Future;
    use std::sync::Arc;

    /// Longest sealed cursor accepted: anything longer is refused before it is decoded.
    const MAX_TOKEN_LEN: usize = 4096;
    /// Bytes of the HMAC tag a cursor carries (128 bits).
    const TAG_LEN: usize = 16;
    /// The format's version, first in every sealed cursor.
    const VERSION: &str = "c1";

    /// The keys that seal and open page cursors. The first seals; every one opens, so a key
    /// can be rotated: put the new one first and keep the old one until the cursors it
    /// sealed have gone out of use. Every replica behind one address needs the same keys,
    /// and so does a restarted server whose clients hold cursors: give them from
    /// configuration ([`Cursors::new`]). The default, [`Cursors::random`], is a key of this
    /// process alone.
    #[derive(Clone)]
    pub struct Cursors {
        keys: Arc<Vec<Vec<u8>>>,
    }

    impl fmt::Debug for Cursors {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            // Never print keys.
            write!(f, "Cursors({} key(s))", self.keys.len())
        }
    }

    impl Default for Cursors {
        fn default() -> Self {
            Cursors::random()
        }
    }

    impl Cursors {
        /// Seals with `key` (at least 32 bytes of secret randomness are advised; shorter
        /// keys are accepted, as HMAC accepts them).
        pub fn new(key: impl Into<Vec<u8>>) -> Self {
            Cursors {
                keys: Arc::new(vec![key.into()]),
            }
        }

        /// Also opens cursors sealed with `key`: the previous key, during a rotation.
        pub fn and_previous(self, key: impl Into<Vec<u8>>) -> Self {
            let mut keys = (*self.keys).clone();
            keys.push(key.into());
            Cursors {
                keys: Arc::new(keys),
            }
        }

        /// A fresh 32-byte key from the operating system's random source.
        pub fn random() -> Self {
            let mut key = vec![0u8; 32];
            // The OS source does not fail on the platforms Rust's std supports; if it ever
            // did, a per-process fallback still keeps cursors unforgeable by outsiders who
            // cannot observe this process.
            if getrandom::fill(&mut key).is_err() {
                key = crate::random_id().into_bytes();
            }
            Cursors::new(key)
        }

        fn mac(key: &[u8], scope: &str, cursor: &[u8]) -> Hmac<Sha256> {
            let mut mac =
                Hmac::<Sha256>::new_from_slice(key).expect("HMAC accepts keys of any length");
            mac.update(VERSION.as_bytes());
            mac.update(&[0]);
            mac.update(scope.as_bytes());
            mac.update(&[0]);
            mac.update(cursor);
            mac
        }

        /// Seals `cursor` for the operation `scope` (`orders.v2.ListOrders`).
        pub fn seal(&self, scope: &str, cursor: &str) -> String {
            let tag = Self::mac(&self.keys[0], scope, cursor.as_bytes()).finalize();
            format!(
                "{VERSION}.{}.{}.{}",
                URL_SAFE_NO_PAD.encode(scope),
                URL_SAFE_NO_PAD.encode(cursor),
                URL_SAFE_NO_PAD.encode(&tag.into_bytes()[..TAG_LEN])
            )
        }

        /// Opens a sealed cursor for the operation `scope`: the handler's own cursor, or why
        /// it cannot be used.
        pub fn open(&self, scope: &str, token: &str) -> Result<String, CursorError> {
            if token.len() > MAX_TOKEN_LEN {
                return Err(CursorError::Malformed);
            }
            let mut parts = token.split('.');
            let (Some(VERSION), Some(issuer), Some(cursor), Some(tag), None) = (
                parts.next(),
                parts.next(),
                parts.next(),
                parts.next(),
                parts.next(),
            ) else {
                return Err(CursorError::Malformed);
            };
            let decode = |s: &str| {
                URL_SAFE_NO_PAD
                    .decode(s)
                    .map_err(|_| CursorError::Malformed)
            };
            let issuer = String::from_utf8(decode(issuer)?).map_err(|_| CursorError::Malformed)?;
            let cursor = decode(cursor)?;
            let tag = decode(tag)?;
            if tag.len() != TAG_LEN {
                return Err(CursorError::Malformed);
            }
            // Constant-time comparison by the `hmac` crate, under each key in turn.
            let authentic = self.keys.iter().any(|key| {
                Self::mac(key, &issuer, &cursor)
                    .verify_truncated_left(&tag)
                    .is_ok()
            });
            if !authentic {
                return Err(CursorError::Altered);
            }
            if issuer != scope {
                return Err(CursorError::OtherOperation(issuer));
            }
            String::from_utf8(cursor).map_err(|_| CursorError::Malformed)
        }
    }

    /// Why a page cursor was refused.
    #[derive(Clone, Debug, PartialEq, Eq)]
    pub enum CursorError {
        /// Not a cursor this server format issues.
        Malformed,
        /// Its tag does not match: altered, or sealed under a key this server does not have.
        Altered,
        /// Authentic, but issued by another operation (named).
        OtherOperation(String),
    }

    impl fmt::Display for CursorError {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            match self {
                CursorError::Malformed => f.write_str(
                    "not a page cursor this server issued: pass back `next` of the previous page unchanged, or omit it for the first page",
                ),
                CursorError::Altered => f.write_str(
                    "the page cursor was altered, or was issued under a key this server no longer has: start again from the first page",
                ),
                CursorError::OtherOperation(op) => write!(
                    f,
                    "the page cursor was issued by `{op}`: a cursor works only with the operation that returned it"
                ),
            }
        }
    }

    impl std::error::Error for CursorError {}

    /// Runs one page of a paginated operation: opens the incoming cursor (refusing a forged,
    /// altered or foreign one as invalid input at `/<cursor_field>`), calls `handler` with
    /// the handler's own cursor in place, and seals the next cursor of its reply.
    #[allow(clippy::too_many_arguments)]
    pub async fn serve_page<I, O, E, H, Fut>(
        cursors: &Cursors,
        op: &OperationInfo,
        cursor_field: &'static str,
        mut input: I,
        cursor: fn(&mut I) -> &mut Option<String>,
        next: fn(&mut O) -> &mut Option<String>,
        handler: H,
    ) -> Result<O, HandlerError<E>>
    where
        H: FnOnce(I) -> Fut,
        Fut: Future<Output = Result<O, HandlerError<E>>>,
    {
        let scope = op.scope();
        if let Some(token) = cursor(&mut input).take() {
            let opened = cursors.open(&scope, &token).map_err(|e| {
                HandlerError::InvalidInput(ValidationError {
                    violations: vec![Violation {
                        pointer: format!("/{cursor_field}"),
                        message: e.to_string(),
                    }],
                })
            })?;
            *cursor(&mut input) = Some(opened);
        }
        let mut reply = handler(input).await?;
        if let Some(plain) = next(&mut reply).take() {
            *next(&mut reply) = Some(cursors.seal(&scope, &plain));
        }
        Ok(reply)
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn a_sealed_cursor_opens_only_unaltered_for_its_operation() {
            let cursors = Cursors::new(b"k".repeat(32));
            let token = cursors.seal("orders.v2.ListOrders", "offset:20");
            assert_eq!(
                cursors.open("orders.v2.ListOrders", &token).unwrap(),
                "offset:20"
            );
            assert_eq!(
                cursors.open("orders.v2.ListInvoices", &token),
                Err(CursorError::OtherOperation("orders.v2.ListOrders".into()))
            );
            // Every single-character change to the token is caught.
            for i in 0..token.len() {
                let mut bytes = token.clone().into_bytes();
                bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
                let altered = String::from_utf8(bytes).unwrap();
                if altered != token {
                    assert!(
                        cursors.open("orders.v2.ListOrders", &altered).is_err(),
                        "{altered}"
                    );
                }
            }
            // Another key does not open it; the previous key, kept for a rotation, does.
            let other = Cursors::new(b"o".repeat(32));
            assert_eq!(
                other.open("orders.v2.ListOrders", &token),
                Err(CursorError::Altered)
            );
            let rotated = other.and_previous(b"k".repeat(32));
            assert_eq!(
                rotated.open("orders.v2.ListOrders", &token).unwrap(),
                "offset:20"
            );
            for junk in ["", "offset:20", "c1.a.b", "c1...", &"c1.".repeat(3000)] {
                assert_eq!(
                    cursors.open("orders.v2.ListOrders", junk),
                    Err(CursorError::Malformed),
                    "{junk}"
                );
            }
        }

        #[test]
        fn random_keys_differ() {
            let a = Cursors::random().seal("s", "c");
            let b = Cursors::random().seal("s", "c");
            assert_ne!(a, b);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;

    #[derive(Clone)]
    struct Request {
        cursor: Option<String>,
    }

    /// Pages of `per_page` numbers below `total`; the cursor is the next number.
    fn numbers(
        total: u32,
        per_page: u32,
        calls: std::sync::Arc<std::sync::atomic::AtomicU32>,
    ) -> BoxStream<Result<u32, ClientError<()>>> {
        items(
            Request { cursor: None },
            move |r: Request| {
                calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                async move {
                    let start: u32 = r.cursor.map_or(0, |c| c.parse().unwrap());
                    let end = (start + per_page).min(total);
                    let next = (end < total).then(|| end.to_string());
                    Ok::<_, ClientError<()>>(((start..end).collect::<Vec<_>>(), next))
                }
            },
            |reply: (Vec<u32>, Option<String>)| reply,
            |r: &mut Request, c| r.cursor = c,
        )
    }

    #[tokio::test]
    async fn pages_are_fetched_lazily_and_end_after_the_last() {
        let calls = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
        let mut stream = numbers(10, 4, calls.clone());
        assert_eq!(stream.next().await.unwrap().unwrap(), 0);
        assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 1);
        let rest: Vec<u32> = stream.map(|r| r.unwrap()).collect().await;
        assert_eq!(rest, (1..10).collect::<Vec<_>>());
        assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn a_server_repeating_its_cursor_ends_the_stream_with_an_error() {
        let stream = items(
            Request { cursor: None },
            |_r: Request| async { Ok::<_, ClientError<()>>(vec![1u8]) },
            |page: Vec<u8>| (page, Some("again".to_string())),
            |r: &mut Request, c| r.cursor = c,
        );
        let got: Vec<_> = stream.take(10).collect().await;
        assert_eq!(got.len(), 3, "two items, then the error: {}", got.len());
        assert!(
            matches!(&got[2], Err(ClientError::Unexpected { body, .. }) if body.contains("twice"))
        );

        let empty = items(
            Request { cursor: None },
            |r: Request| async move {
                let n: usize = r.cursor.map_or(0, |c| c.parse().unwrap());
                Ok::<_, ClientError<()>>(n)
            },
            |n: usize| (Vec::<u8>::new(), Some((n + 1).to_string())),
            |r: &mut Request, c| r.cursor = c,
        );
        let got: Vec<_> = empty.take(3).collect().await;
        assert_eq!(got.len(), 1);
        assert!(
            matches!(&got[0], Err(ClientError::Unexpected { body, .. }) if body.contains("empty pages"))
        );
    }
}
