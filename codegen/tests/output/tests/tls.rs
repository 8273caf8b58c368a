//! TLS and mutual TLS over loopback, generated client against generated server, REST and
//! gRPC on one port, with certificates made here (rcgen): server-only TLS; mutual TLS
//! accepted, with the client's identity in the handler's `Context`; a client without a
//! certificate, a server or client from another CA, and expired certificates refused; a
//! renewed certificate picked up by `reload` without a restart; and files that cannot be used
//! refused at start-up with the file named.

use pactum::router::{serve_with, ServeOptions};
use pactum::tls::{ClientTls, ServerTls};
use pactum::ClientError;
use pactum_test_output::generated::resilience::v1 as r;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, SanType};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use support::Idle;

mod support;

/// A certificate authority that issues the test's certificates.
struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl Ca {
    fn new(name: &str) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        Ca {
            issuer: CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap(),
        }
    }

    /// A leaf for `localhost` and 127.0.0.1 named `cn`, with `uri` as a SAN if given, valid
    /// now or (`expired`) only in 2020; returns (certificate PEM, key PEM).
    fn issue(&self, cn: &str, uri: Option<&str>, expired: bool) -> (String, String) {
        let mut params = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        params.distinguished_name.push(DnType::CommonName, cn);
        params
            .subject_alt_names
            .push(SanType::IpAddress("127.0.0.1".parse().unwrap()));
        if let Some(uri) = uri {
            params
                .subject_alt_names
                .push(SanType::URI(uri.try_into().unwrap()));
        }
        if expired {
            params.not_before = rcgen::date_time_ymd(2020, 1, 1);
            params.not_after = rcgen::date_time_ymd(2020, 12, 31);
        }
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    }
}

/// A directory of PEM files for one test, removed at the end.
struct Files(PathBuf);

impl Files {
    fn new(test: &str) -> Files {
        let dir = std::env::temp_dir().join(format!("pactum-tls-{test}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        Files(dir)
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    fn pair(&self, name: &str, (cert, key): &(String, String)) -> (PathBuf, PathBuf) {
        (
            self.write(&format!("{name}.pem"), cert),
            self.write(&format!("{name}.key"), key),
        )
    }

    fn ca(&self, name: &str, ca: &Ca) -> PathBuf {
        self.write(&format!("{name}.pem"), &ca.issuer.pem())
    }
}

impl Drop for Files {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Serves the REST and gRPC routers of one `Idle` on one TLS port; returns its
/// `https://127.0.0.1:port` and the service.
async fn serve(tls: ServerTls) -> (String, Idle) {
    let service = Idle::default();
    // `WhoAmI` accepts the `robot` scheme: any certificate the client CA signed.
    let config = pactum::router::ServerConfig {
        auth: pactum::auth::Verifiers::new().with("robot", pactum::auth::Certificates::any()),
        ..Default::default()
    };
    let router = r::rest::router_with(Arc::new(service.clone()), config.clone())
        .merge(r::grpc::router_with(Arc::new(service.clone()), config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "https://127.0.0.1:{}",
        listener.local_addr().unwrap().port()
    );
    let options = ServeOptions {
        tls: Some(tls),
        ..ServeOptions::default()
    };
    tokio::spawn(serve_with(
        listener,
        router,
        options,
        std::future::pending(),
    ));
    (url, service)
}

/// One `Busy` call over REST and one over gRPC with `client`'s TLS: each `Ok(n)` or the
/// error's text.
async fn call_both(url: &str, tls: &ClientTls) -> (Result<u32, String>, Result<u32, String>) {
    let rest =
        r::rest::Client::from_http(pactum::rest::client::HttpClient::with_tls(url, tls).unwrap());
    let grpc = r::grpc::Client::from_client(
        pactum::grpc::GrpcClient::connect_lazy_tls(url, tls.clone()).unwrap(),
    );
    let text = |e: ClientError<r::BusyError>| format!("{e:?}");
    (
        rest.busy(&r::BusyRequest { n: 1 })
            .await
            .map(|o| o.n)
            .map_err(text),
        grpc.busy(&r::BusyRequest { n: 2 })
            .await
            .map(|o| o.n)
            .map_err(text),
    )
}

/// `WhoAmI` over REST and gRPC: the subject, or the error's text.
async fn who_am_i(url: &str, tls: &ClientTls) -> (String, String) {
    let rest =
        r::rest::Client::from_http(pactum::rest::client::HttpClient::with_tls(url, tls).unwrap());
    let grpc = r::grpc::Client::from_client(
        pactum::grpc::GrpcClient::connect_lazy_tls(url, tls.clone()).unwrap(),
    );
    let text = |r: Result<r::WhoAmIResponse, ClientError<r::WhoAmIError>>| match r {
        Ok(o) => o.subject,
        Err(e) => format!("{e:?}"),
    };
    (text(rest.who_am_i().await), text(grpc.who_am_i().await))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_only_tls_serves_rest_and_grpc_on_one_port() {
    let files = Files::new("server-only");
    let ca = Ca::new("test CA");
    let (cert, key) = files.pair("server", &ca.issue("orders", None, false));
    let (url, service) = serve(ServerTls::from_pem_files(&cert, &key).unwrap()).await;
    let client = ClientTls::with_ca_file(files.ca("ca", &ca)).unwrap();
    assert_eq!(call_both(&url, &client).await, (Ok(1), Ok(2)));
    // No client certificate was asked for: the handlers saw no peer, and the operation that
    // authenticates by certificate refuses the caller.
    assert_eq!(*service.callers.lock().unwrap(), [None, None]);
    let (rest, grpc) = who_am_i(&url, &client).await;
    assert!(rest.contains("status: 401"), "{rest}");
    assert!(grpc.contains("code: 16"), "{grpc}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_accepts_the_cas_clients_and_hands_their_identity_to_the_handler() {
    let files = Files::new("mtls");
    let ca = Ca::new("test CA");
    let ca_file = files.ca("ca", &ca);
    let (cert, key) = files.pair("server", &ca.issue("orders", None, false));
    let tls = ServerTls::from_pem_files(&cert, &key)
        .unwrap()
        .require_client_certs(&ca_file)
        .unwrap();
    let (url, service) = serve(tls).await;
    let spiffe = "spiffe://cluster.local/ns/shop/sa/checkout";
    let (client_cert, client_key) =
        files.pair("client", &ca.issue("checkout", Some(spiffe), false));
    let client = ClientTls::with_ca_file(&ca_file)
        .unwrap()
        .with_identity(&client_cert, &client_key)
        .unwrap();
    assert_eq!(call_both(&url, &client).await, (Ok(1), Ok(2)));
    let callers = service.callers.lock().unwrap().clone();
    assert_eq!(callers.len(), 2);
    for peer in callers {
        let peer = peer.expect("the handler saw the client's certificate");
        assert_eq!(peer.common_name, "checkout");
        assert_eq!(peer.uris, [spiffe]);
        assert_eq!(peer.dns_names, ["localhost"]);
        assert!(!peer.certificate.is_empty());
    }
    // The `robot` scheme names the caller by its certificate's SPIFFE id.
    let subject = format!("robot:{spiffe}");
    assert_eq!(who_am_i(&url, &client).await, (subject.clone(), subject));

    // Without a certificate, or with one from another CA, or an expired one: refused, and no
    // handler ran.
    let other = Ca::new("other CA");
    let stranger = files.pair("stranger", &other.issue("checkout", None, false));
    let expired = files.pair("expired", &ca.issue("checkout", None, true));
    for (what, client) in [
        ("no certificate", ClientTls::with_ca_file(&ca_file).unwrap()),
        (
            "another CA's",
            ClientTls::with_ca_file(&ca_file)
                .unwrap()
                .with_identity(&stranger.0, &stranger.1)
                .unwrap(),
        ),
        (
            "expired",
            ClientTls::with_ca_file(&ca_file)
                .unwrap()
                .with_identity(&expired.0, &expired.1)
                .unwrap(),
        ),
    ] {
        let (rest, grpc) = call_both(&url, &client).await;
        assert!(rest.is_err() && grpc.is_err(), "{what}: {rest:?} {grpc:?}");
    }
    assert_eq!(
        service.callers.lock().unwrap().len(),
        2,
        "no handler ran for them"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_from_another_ca_or_expired_is_refused_by_the_clients() {
    let files = Files::new("refused");
    let ca = Ca::new("test CA");
    let trusted = ClientTls::with_ca_file(files.ca("ca", &ca)).unwrap();
    let other = Ca::new("other CA");
    let (cert, key) = files.pair("impostor", &other.issue("orders", None, false));
    let (impostor, _) = serve(ServerTls::from_pem_files(&cert, &key).unwrap()).await;
    let (rest, grpc) = call_both(&impostor, &trusted).await;
    assert!(rest.is_err() && grpc.is_err(), "{rest:?} {grpc:?}");
    // Both say why: the server's certificate has an issuer they do not trust.
    for e in [&rest, &grpc] {
        assert!(e.as_ref().unwrap_err().contains("UnknownIssuer"), "{e:?}");
    }
    assert!(
        grpc.as_ref().unwrap_err().contains("code: 14"),
        "UNAVAILABLE: {grpc:?}"
    );

    let (cert, key) = files.pair("stale", &ca.issue("orders", None, true));
    let (stale, _) = serve(ServerTls::from_pem_files(&cert, &key).unwrap()).await;
    let (rest, grpc) = call_both(&stale, &trusted).await;
    for e in [&rest, &grpc] {
        assert!(
            e.as_ref().unwrap_err().to_lowercase().contains("expired"),
            "{e:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renewed_certificate_is_served_after_reload_without_a_restart() {
    let files = Files::new("reload");
    let (old_ca, new_ca) = (Ca::new("old CA"), Ca::new("new CA"));
    let (cert, key) = files.pair("server", &old_ca.issue("orders", None, false));
    let tls = ServerTls::from_pem_files(&cert, &key).unwrap();
    let (url, _) = serve(tls.clone()).await;
    let new_trust = ClientTls::with_ca_file(files.ca("new-ca", &new_ca)).unwrap();
    assert!(
        call_both(&url, &new_trust).await.0.is_err(),
        "the old certificate is served"
    );

    // Renewed on disk, by another CA: a file that is half written is refused and the old
    // certificate stays; the whole one is used from the next connection on.
    std::fs::write(&cert, "-----BEGIN CERTIFICATE-----\nMIIB").unwrap();
    assert!(tls.reload().is_err());
    assert!(call_both(
        &url,
        &ClientTls::with_ca_file(files.ca("old-ca", &old_ca)).unwrap()
    )
    .await
    .0
    .is_ok());
    files.pair("server", &new_ca.issue("orders", None, false));
    tls.reload().unwrap();
    assert_eq!(call_both(&url, &new_trust).await, (Ok(1), Ok(2)));

    // Watched: the files change on disk (as a renewed Secret does) and the next connections
    // get the new certificate without anyone calling `reload`.
    let watcher = tls.reload_every(std::time::Duration::from_millis(50));
    let newest_ca = Ca::new("newest CA");
    let newest_trust = ClientTls::with_ca_file(files.ca("newest-ca", &newest_ca)).unwrap();
    files.pair("server", &newest_ca.issue("orders", None, false));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while call_both(&url, &newest_trust).await != (Ok(1), Ok(2)) {
        assert!(
            std::time::Instant::now() < deadline,
            "not picked up within 5 s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    watcher.abort();
}

/// One thread: the watch task cannot run between `reload_every` and the files changing, so
/// it must have taken the files' times when it was called, or it takes the new files as the
/// ones it has and never loads them.
#[tokio::test(flavor = "current_thread")]
async fn files_replaced_before_the_watch_task_first_runs_are_still_picked_up() {
    let files = Files::new("watch-start");
    let (first, next) = (Ca::new("first CA"), Ca::new("next CA"));
    let (cert, key) = files.pair("server", &first.issue("orders", None, false));
    let tls = ServerTls::from_pem_files(&cert, &key).unwrap();
    let (url, _) = serve(tls.clone()).await;
    let next_trust = ClientTls::with_ca_file(files.ca("next-ca", &next)).unwrap();
    let watcher = tls.reload_every(std::time::Duration::from_millis(50));
    // Blocking, so the task does not run: far enough apart for the files' times to differ.
    std::thread::sleep(std::time::Duration::from_millis(20));
    files.pair("server", &next.issue("orders", None, false));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while call_both(&url, &next_trust).await != (Ok(1), Ok(2)) {
        assert!(
            std::time::Instant::now() < deadline,
            "not picked up within 5 s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    watcher.abort();
}

#[test]
fn files_that_cannot_be_used_are_refused_at_start_up_with_the_file_named() {
    let files = Files::new("bad");
    let ca = Ca::new("test CA");
    let (cert, key) = files.pair("server", &ca.issue("orders", None, false));
    let (_, other_key) = files.pair("other", &ca.issue("other", None, false));
    let missing = files.0.join("missing.pem");
    let not_pem = files.write("notes.txt", "not a certificate");
    let error = |r: Result<ServerTls, pactum::tls::TlsError>| r.unwrap_err().to_string();
    let shown = |p: &Path| p.display().to_string();

    let e = error(ServerTls::from_pem_files(&missing, &key));
    assert!(
        e.contains("cannot read the certificate") && e.contains(&shown(&missing)),
        "{e}"
    );
    let e = error(ServerTls::from_pem_files(&not_pem, &key));
    assert!(
        e.contains("no `BEGIN CERTIFICATE`") && e.contains(&shown(&not_pem)),
        "{e}"
    );
    let e = error(ServerTls::from_pem_files(&cert, &not_pem));
    assert!(
        e.contains("private key") && e.contains(&shown(&not_pem)),
        "{e}"
    );
    let e = error(ServerTls::from_pem_files(&cert, &other_key));
    assert!(e.contains("does not go with the certificate"), "{e}");
    let e = error(
        ServerTls::from_pem_files(&cert, &key)
            .unwrap()
            .require_client_certs(&missing),
    );
    assert!(
        e.contains("CA certificate") && e.contains(&shown(&missing)),
        "{e}"
    );
    let e = ClientTls::with_ca_file(&not_pem).unwrap_err().to_string();
    assert!(e.contains("CA certificate"), "{e}");
    let e = ClientTls::with_ca_file(&cert)
        .unwrap()
        .with_identity(&cert, &other_key)
        .unwrap_err()
        .to_string();
    assert!(e.contains("does not go with"), "{e}");
    // TLS settings for a plain URL are a mistake, said as one.
    let e = pactum::grpc::GrpcClient::connect_lazy_tls(
        "http://127.0.0.1:1",
        ClientTls::with_ca_file(&cert).unwrap(),
    )
    .unwrap_err();
    assert!(e.contains("use `https://`"), "{e}");
}
