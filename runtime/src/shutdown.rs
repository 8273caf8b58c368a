//! One shutdown for a whole service: on SIGTERM (what Kubernetes sends before it kills a pod)
//! servers stop accepting and finish the requests they hold, consumers stop pulling and finish
//! the delivery they hold, relays stop after the batch they hold — and the process waits for
//! all of it, up to a grace period, before it exits.
//!
//! Nothing in flight is cut: a delivery being handled is handled, committed and settled; a
//! relay batch being published is published and marked. What was only prefetched is handed
//! back to the broker at once, so another replica takes it without waiting out its ack wait.
//!
//! ```no_run
//! # async fn run() {
//! let shutdown = pactum::shutdown::Shutdown::new().on_signals();
//! // servers: pactum::router::serve_with(listener, router, options, shutdown.triggered())
//! // consumers: shutdown.spawn(pactum::messaging::consume(subscription, shutdown.clone(), each))
//! // relays: shutdown.spawn(async move { relay.run_postgres_until(&db, "outbox", &stop).await })
//! shutdown.triggered().await;
//! let drained = shutdown.drain(std::time::Duration::from_secs(25)).await;
//! # let _ = drained;
//! # }
//! ```

use std::future::Future;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// The shutdown signal and the tasks that must finish before the process exits. Clones share
/// both.
#[derive(Clone, Debug, Default)]
pub struct Shutdown {
    token: CancellationToken,
    tracker: TaskTracker,
}

/// How a [`Shutdown::drain`] ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Drained {
    /// Every tracked task finished.
    All,
    /// The grace period ran out with this many tasks still running; the process may exit
    /// anyway (their deliveries are unacknowledged and go to another worker).
    TimedOut {
        /// Tasks still running.
        remaining: usize,
    },
}

impl Shutdown {
    /// A shutdown nobody has triggered yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Triggers this shutdown on SIGTERM or Ctrl-C. The handlers are installed before this
    /// returns, so a signal that comes at once is not missed; one that cannot be installed is
    /// logged (the shutdown can still be triggered by hand).
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime, as `tokio::spawn` does.
    pub fn on_signals(self) -> Self {
        let token = self.token.clone();
        #[cfg(unix)]
        let mut term = match tokio::signal::unix::signal(
            tokio::signal::unix::SignalKind::terminate(),
        ) {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM; only Ctrl-C starts the shutdown");
                None
            }
        };
        tokio::spawn(async move {
            #[cfg(unix)]
            let term = async {
                match term.as_mut() {
                    Some(s) => {
                        s.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            #[cfg(not(unix))]
            let term = std::future::pending::<()>();
            let ctrl_c = async {
                if let Err(e) = tokio::signal::ctrl_c().await {
                    tracing::warn!(error = %e, "cannot listen for Ctrl-C");
                    std::future::pending::<()>().await;
                }
            };
            tokio::select! {
                () = term => token.cancel(),
                () = ctrl_c => token.cancel(),
                () = token.cancelled() => {}
            }
        });
        self
    }

    /// Starts the shutdown: everything waiting on [`triggered`](Self::triggered) wakes.
    pub fn trigger(&self) {
        self.token.cancel();
    }

    /// Has the shutdown started?
    pub fn is_triggered(&self) -> bool {
        self.token.is_cancelled()
    }

    /// Completes once the shutdown has started: the `shutdown` future of
    /// `pactum::router::serve_with`, or a branch of a `select!`.
    pub fn triggered(&self) -> impl Future<Output = ()> + Send + 'static {
        self.token.clone().cancelled_owned()
    }

    /// Spawns `task` as one [`drain`](Self::drain) waits for (a consumer loop, a relay, a
    /// server).
    pub fn spawn<F>(&self, task: F) -> tokio::task::JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.tracker.spawn(task)
    }

    /// How many spawned tasks are still running.
    pub fn running(&self) -> usize {
        self.tracker.len()
    }

    /// Triggers the shutdown (if it has not started) and waits up to `grace` for every task
    /// spawned through [`spawn`](Self::spawn) to finish. Keep `grace` under the pod's
    /// `terminationGracePeriodSeconds` (30 s by default).
    pub async fn drain(&self, grace: Duration) -> Drained {
        self.trigger();
        self.tracker.close();
        match tokio::time::timeout(grace, self.tracker.wait()).await {
            Ok(()) => Drained::All,
            Err(_) => Drained::TimedOut {
                remaining: self.tracker.len(),
            },
        }
    }
}

/// Completes on SIGTERM or Ctrl-C.
pub async fn signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}
