//! TLS and mutual TLS on rustls (with aws-lc-rs's cryptography), for both servers and both
//! clients, from PEM files.
//!
//! - [`ServerTls`]: a certificate and key, optionally a CA whose client certificates are
//!   required (mutual TLS). Give it to [`ServeOptions::tls`](crate::router::ServeOptions) and
//!   `serve_with` speaks TLS (ALPN `h2` and `http/1.1`, so REST and gRPC share the port); the
//!   client certificate's identity reaches every handler as [`Context::peer`](crate::Context::peer).
//!   [`ServerTls::reload`] re-reads the files (a renewed certificate) without a restart;
//!   [`ServerTls::reload_every`] does it whenever they change.
//! - [`ClientTls`]: the roots a client trusts (the system's, or one CA) and optionally its own
//!   certificate for mutual TLS. The generated REST and gRPC clients take `https://` URLs with
//!   the system's roots by default, or this for anything else.
//!
//! Every problem with the files — missing, unreadable, not PEM, a key that does not match its
//! certificate — is a [`TlsError`] naming the file, when the configuration is built (at
//! start-up), never at the first connection.

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

/// A TLS configuration that cannot be used, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsError(pub String);

impl std::fmt::Display for TlsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for TlsError {}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

fn read(path: &Path, what: &str) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path)
        .map_err(|e| TlsError(format!("cannot read the {what} `{}`: {e}", path.display())))
}

fn certificates(path: &Path, what: &str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read(path, what)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError(format!("the {what} `{}` is not PEM: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(TlsError(format!(
            "the {what} `{}` holds no `BEGIN CERTIFICATE` block",
            path.display()
        )));
    }
    Ok(certs)
}

fn private_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let pem = read(path, "private key")?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| {
        TlsError(format!(
            "the private key `{}` holds no PKCS#8, PKCS#1 or SEC1 key: {e}",
            path.display()
        ))
    })
}

fn roots(path: &Path) -> Result<Arc<rustls::RootCertStore>, TlsError> {
    let mut store = rustls::RootCertStore::empty();
    for cert in certificates(path, "CA certificate")? {
        store.add(cert).map_err(|e| {
            TlsError(format!(
                "the CA certificate `{}` cannot be a trust root: {e}",
                path.display()
            ))
        })?;
    }
    Ok(Arc::new(store))
}

/// A certificate chain and the key that signs for it, checked to belong together.
fn certified_key(cert: &Path, key: &Path) -> Result<Arc<rustls::sign::CertifiedKey>, TlsError> {
    let chain = certificates(cert, "certificate")?;
    let key_der = private_key(key)?;
    let certified =
        rustls::sign::CertifiedKey::from_der(chain, key_der, &provider()).map_err(|e| {
            TlsError(format!(
                "the key `{}` does not go with the certificate `{}`: {e}",
                key.display(),
                cert.display()
            ))
        })?;
    Ok(Arc::new(certified))
}

/// The server side: what `serve_with` presents, and whose client certificates it requires.
#[derive(Clone)]
pub struct ServerTls {
    inner: Arc<ServerInner>,
}

struct ServerInner {
    cert: PathBuf,
    key: PathBuf,
    client_ca: RwLock<Option<PathBuf>>,
    config: RwLock<Arc<rustls::ServerConfig>>,
    /// Held while a configuration is rebuilt, so a reload cannot put back one from before
    /// client certificates were required.
    rebuilding: std::sync::Mutex<()>,
}

impl std::fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerTls")
            .field("cert", &self.inner.cert)
            .field("key", &self.inner.key)
            .field("client_ca", &*read_lock(&self.inner.client_ca))
            .finish()
    }
}

fn read_lock<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|e| e.into_inner())
}

fn write_lock<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(|e| e.into_inner())
}

impl ServerTls {
    /// TLS with the certificate chain in `cert` and its key in `key` (PEM files). Clients
    /// are not asked for certificates; see [`require_client_certs`](Self::require_client_certs).
    pub fn from_pem_files(cert: impl AsRef<Path>, key: impl AsRef<Path>) -> Result<Self, TlsError> {
        let (cert, key) = (cert.as_ref().to_path_buf(), key.as_ref().to_path_buf());
        let config = server_config(&cert, &key, None)?;
        Ok(ServerTls {
            inner: Arc::new(ServerInner {
                cert,
                key,
                client_ca: RwLock::new(None),
                config: RwLock::new(config),
                rebuilding: std::sync::Mutex::new(()),
            }),
        })
    }

    /// Mutual TLS: every client must present a certificate issued by a CA in `ca` (a PEM
    /// file); one that presents none, or one from another CA, or an expired one, fails the
    /// handshake. The certificate's identity is the handler's `Context::peer`.
    pub fn require_client_certs(self, ca: impl AsRef<Path>) -> Result<Self, TlsError> {
        let ca = ca.as_ref().to_path_buf();
        {
            let _rebuilding = self
                .inner
                .rebuilding
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            let config = server_config(&self.inner.cert, &self.inner.key, Some(&ca))?;
            *write_lock(&self.inner.client_ca) = Some(ca);
            *write_lock(&self.inner.config) = config;
        }
        Ok(self)
    }

    /// Reads the files again and uses them for every new connection (connections open now
    /// keep theirs). On an error the configuration in use stays, and the error says why.
    pub fn reload(&self) -> Result<(), TlsError> {
        let _rebuilding = self
            .inner
            .rebuilding
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let ca = read_lock(&self.inner.client_ca).clone();
        let config = server_config(&self.inner.cert, &self.inner.key, ca.as_deref())?;
        *write_lock(&self.inner.config) = config;
        tracing::info!(cert = %self.inner.cert.display(), "TLS certificate reloaded");
        Ok(())
    }

    /// Checks the files every `period` and [reloads](Self::reload) when one changed, as when
    /// cert-manager renews a mounted Secret; a reload that fails is logged and retried at the
    /// next change. The task ends with the runtime.
    pub fn reload_every(&self, period: Duration) -> tokio::task::JoinHandle<()> {
        let tls = self.clone();
        // The files' times now, not when the task first runs: a file replaced between this
        // call and the task's start would otherwise be taken as already seen, and never
        // loaded.
        let mut seen = tls.modified();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(period);
            tick.tick().await;
            loop {
                tick.tick().await;
                let now = tls.modified();
                if now != seen {
                    match tls.reload() {
                        // Only a reload that took counts as seen: one that read a half-written
                        // file is tried again next time, even if the times do not move again.
                        Ok(()) => seen = now,
                        Err(e) => tracing::warn!(
                            error = %e,
                            "TLS files changed but cannot be used; keeping the old ones"
                        ),
                    }
                }
            }
        })
    }

    fn modified(&self) -> Vec<Option<SystemTime>> {
        let ca = read_lock(&self.inner.client_ca).clone();
        [Some(&self.inner.cert), Some(&self.inner.key), ca.as_ref()]
            .into_iter()
            .flatten()
            .map(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok())
            .collect()
    }

    /// The acceptor for a new connection, with the configuration in use now.
    #[cfg(any(feature = "rest", feature = "grpc"))]
    pub(crate) fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        tokio_rustls::TlsAcceptor::from(read_lock(&self.inner.config).clone())
    }
}

fn server_config(
    cert: &Path,
    key: &Path,
    client_ca: Option<&Path>,
) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let certified = certified_key(cert, key)?;
    let builder = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError(format!("TLS protocol versions: {e}")))?;
    let builder = match client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let verifier =
                rustls::server::WebPkiClientVerifier::builder_with_provider(roots(ca)?, provider())
                    .build()
                    .map_err(|e| {
                        TlsError(format!(
                            "cannot verify clients against `{}`: {e}",
                            ca.display()
                        ))
                    })?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config =
        builder.with_cert_resolver(Arc::new(rustls::sign::SingleCertAndKey::from(certified)));
    // gRPC needs h2 by ALPN; REST clients that speak only HTTP/1.1 get that.
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The client side: which servers to trust, and the client's own certificate for mutual TLS.
#[derive(Clone)]
pub struct ClientTls {
    roots: Arc<rustls::RootCertStore>,
    identity: Option<Arc<ClientIdentity>>,
    /// Offering `h2` (gRPC) and `http/1.1` (REST), built once the roots and identity are known.
    h2: Arc<rustls::ClientConfig>,
    http1: Arc<rustls::ClientConfig>,
}

struct ClientIdentity {
    cert: PathBuf,
    key: PathBuf,
    current: RwLock<Arc<rustls::sign::CertifiedKey>>,
}

impl std::fmt::Debug for ClientIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientIdentity")
            .field("cert", &self.cert)
            .finish_non_exhaustive()
    }
}

impl rustls::client::ResolvesClientCert for ClientIdentity {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[rustls::SignatureScheme],
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        Some(read_lock(&self.current).clone())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

impl std::fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientTls")
            .field("roots", &self.roots.len())
            .field("identity", &self.identity)
            .finish()
    }
}

impl ClientTls {
    /// Trusts the system's root certificates (as a browser or curl does).
    pub fn system_roots() -> Result<Self, TlsError> {
        let found = rustls_native_certs::load_native_certs();
        let mut store = rustls::RootCertStore::empty();
        let (added, _ignored) = store.add_parsable_certificates(found.certs);
        if added == 0 {
            let why = found
                .errors
                .first()
                .map(|e| format!(": {e}"))
                .unwrap_or_default();
            return Err(TlsError(format!(
                "no usable root certificate on this system{why}; give the CA with ClientTls::with_ca_file"
            )));
        }
        ClientTls::build(Arc::new(store), None)
    }

    /// Trusts only the CA certificates in `ca` (a PEM file): a private CA, a mesh's.
    pub fn with_ca_file(ca: impl AsRef<Path>) -> Result<Self, TlsError> {
        ClientTls::build(roots(ca.as_ref())?, None)
    }

    /// Presents the certificate chain in `cert` with its key in `key` (PEM files) to servers
    /// that ask for one (mutual TLS).
    pub fn with_identity(
        self,
        cert: impl AsRef<Path>,
        key: impl AsRef<Path>,
    ) -> Result<Self, TlsError> {
        let (cert, key) = (cert.as_ref().to_path_buf(), key.as_ref().to_path_buf());
        let current = RwLock::new(certified_key(&cert, &key)?);
        let identity = Arc::new(ClientIdentity { cert, key, current });
        ClientTls::build(self.roots, Some(identity))
    }

    fn build(
        roots: Arc<rustls::RootCertStore>,
        identity: Option<Arc<ClientIdentity>>,
    ) -> Result<Self, TlsError> {
        let config = |alpn: &[u8]| -> Result<Arc<rustls::ClientConfig>, TlsError> {
            let builder = rustls::ClientConfig::builder_with_provider(provider())
                .with_safe_default_protocol_versions()
                .map_err(|e| TlsError(format!("TLS protocol versions: {e}")))?
                .with_root_certificates(roots.clone());
            let mut config = match &identity {
                Some(id) => builder.with_client_cert_resolver(id.clone()),
                None => builder.with_no_client_auth(),
            };
            config.alpn_protocols = vec![alpn.to_vec()];
            Ok(Arc::new(config))
        };
        Ok(ClientTls {
            h2: config(b"h2")?,
            http1: config(b"http/1.1")?,
            roots,
            identity,
        })
    }

    /// Reads the client certificate and key again (a renewed certificate); connections opened
    /// from now on present it. On an error the one in use stays.
    pub fn reload(&self) -> Result<(), TlsError> {
        if let Some(id) = &self.identity {
            *write_lock(&id.current) = certified_key(&id.cert, &id.key)?;
        }
        Ok(())
    }

    /// The rustls configuration offering ALPN `h2`, for an HTTP/2 or gRPC client of your own
    /// (the generated gRPC client uses it).
    pub fn h2_config(&self) -> Arc<rustls::ClientConfig> {
        self.h2.clone()
    }

    /// The rustls configuration offering ALPN `http/1.1`, for an HTTPS client of your own
    /// (`reqwest::ClientBuilder::tls_backend_preconfigured`, as the REST client does).
    pub fn http1_config(&self) -> Arc<rustls::ClientConfig> {
        self.http1.clone()
    }

    /// The configuration the REST client (reqwest) is built with.
    #[cfg(feature = "rest")]
    pub(crate) fn reqwest_client(&self) -> Result<reqwest::Client, TlsError> {
        reqwest::Client::builder()
            .tls_backend_preconfigured((*self.http1).clone())
            .build()
            .map_err(|e| TlsError(format!("cannot build the HTTPS client: {e}")))
    }

    /// Wraps `tcp` in TLS to `host`, offering `h2` (for gRPC).
    #[cfg(feature = "grpc")]
    pub(crate) async fn connect_h2(
        &self,
        host: &str,
        tcp: tokio::net::TcpStream,
    ) -> std::io::Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
        let name = rustls::pki_types::ServerName::try_from(host.to_string()).map_err(|e| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("`{host}` is not a server name: {e}"),
            )
        })?;
        tokio_rustls::TlsConnector::from(self.h2.clone())
            .connect(name, tcp)
            .await
    }
}

/// The client certificate a TLS connection presented, as the handlers' `Context::peer`.
#[cfg(any(feature = "rest", feature = "grpc"))]
pub(crate) fn peer_identity(
    connection: &rustls::ServerConnection,
) -> Option<Arc<crate::PeerIdentity>> {
    let leaf = connection.peer_certificates()?.first()?;
    let (_, cert) = x509_parser::parse_x509_certificate(leaf.as_ref()).ok()?;
    let subject = cert
        .subject()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .unwrap_or_default()
        .to_string();
    let mut dns_names = Vec::new();
    let mut uris = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            match name {
                x509_parser::extensions::GeneralName::DNSName(d) => dns_names.push(d.to_string()),
                x509_parser::extensions::GeneralName::URI(u) => uris.push(u.to_string()),
                _ => {}
            }
        }
    }
    Some(Arc::new(crate::PeerIdentity {
        common_name: subject,
        dns_names,
        uris,
        certificate: leaf.as_ref().to_vec(),
    }))
}
