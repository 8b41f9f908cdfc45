//! Attacks on the router through the endpoints providers register, each from the attacker's side:
//! a provider identity (a registration, a claim, a bid) whose endpoint is a server it controls, or
//! an address inside the router's network (docs/security.md, "The router").

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use alloy::primitives::{Address, B256};
use morpheus_testkit::FUNDED_ACCOUNTS;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpSocket, TcpStream},
    task::JoinHandle,
};

use crate::common::{Net, PRICE, PROVIDER, provide};

/// "A few seconds": how long a request may take while six endpoints hang.
const FEW_SECONDS: Duration = Duration::from_secs(8);
/// A hostile body is this long: far more than the router has any reason to read.
const HOSTILE_BODY: usize = 32 << 20;
/// What a hostile server may get written before the router hangs up: the few KiB the router
/// reads, plus what the kernel's socket buffers and the HTTP client's read buffer hold between
/// the two ends (a few hundred KiB on loopback).
const READ_BOUND: usize = 2 << 20;
/// Text a provider's error body carries that the router's client must never see: the kind of
/// detail a misconfigured or probing server answers with.
const MARKER: &str = "SECRET-db.internal:5432-password=hunter2";

/// What a hostile server does with each connection.
#[derive(Debug, Clone, Copy)]
enum Behaviour {
    /// Accepts the connection and holds it open, never reading or writing.
    Hang,
    /// Accepts the connection and closes it at once.
    Close,
    /// Answers 500 with an OpenAI error body of [`HOSTILE_BODY`] bytes (Content-Length), whose
    /// message starts with [`MARKER`].
    ErrorBody,
    /// Answers 200 with a chunked body of [`HOSTILE_BODY`] bytes that never becomes a proof.
    EndlessAnswer,
}

/// A server the attacker runs: counts the connections it accepts and the body bytes it managed
/// to write (the router read them, or the kernel buffered them for it).
struct Hostile {
    endpoint: String,
    port: u16,
    accepted: Arc<AtomicUsize>,
    written: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl Hostile {
    async fn start(behaviour: Behaviour) -> Self {
        // A small send buffer, inherited by accepted sockets, so that what the server wrote is
        // close to what the router read.
        let socket = TcpSocket::new_v4().expect("socket");
        socket.set_send_buffer_size(16 * 1024).expect("SO_SNDBUF");
        socket
            .bind("127.0.0.1:0".parse().expect("addr"))
            .expect("bind");
        let listener: TcpListener = socket.listen(64).expect("listen");
        let port = listener.local_addr().expect("addr").port();
        let accepted = Arc::new(AtomicUsize::new(0));
        let written = Arc::new(AtomicUsize::new(0));
        let (a, w) = (accepted.clone(), written.clone());
        let task = tokio::spawn(async move {
            let mut held = Vec::new();
            let mut writers = Vec::new();
            while let Ok((stream, _)) = listener.accept().await {
                a.fetch_add(1, Ordering::SeqCst);
                match behaviour {
                    Behaviour::Hang => held.push(stream),
                    Behaviour::Close => drop(stream),
                    Behaviour::ErrorBody | Behaviour::EndlessAnswer => {
                        writers.push(tokio::spawn(answer(stream, behaviour, w.clone())));
                    }
                }
            }
        });
        Self {
            endpoint: format!("http://127.0.0.1:{port}"),
            port,
            accepted,
            written,
            task,
        }
    }

    fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    /// The body bytes written once the router has hung up (or `settle` has passed).
    async fn written_after(&self, settle: Duration) -> usize {
        let mut last = self.written.load(Ordering::SeqCst);
        let until = Instant::now() + settle;
        while Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(200)).await;
            let now = self.written.load(Ordering::SeqCst);
            if now == last {
                break;
            }
            last = now;
        }
        last
    }
}

impl Drop for Hostile {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Reads the request head and writes the hostile answer until the peer hangs up.
async fn answer(mut stream: TcpStream, behaviour: Behaviour, written: Arc<AtomicUsize>) {
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 64 * 1024 {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    let filler = vec![b'x'; 16 * 1024];
    match behaviour {
        Behaviour::ErrorBody => {
            let open = format!("{{\"error\":{{\"message\":\"{MARKER} ");
            let close = "\",\"type\":\"server_error\",\"code\":\"internal\"}}";
            let head = format!(
                "HTTP/1.1 500 Internal Server Error\r\ncontent-type: application/json\r\n\
                 content-length: {HOSTILE_BODY}\r\n\r\n{open}"
            );
            if stream.write_all(head.as_bytes()).await.is_err() {
                return;
            }
            let mut left = HOSTILE_BODY - open.len() - close.len();
            while left > 0 {
                let n = left.min(filler.len());
                if stream.write_all(&filler[..n]).await.is_err() {
                    return;
                }
                written.fetch_add(n, Ordering::SeqCst);
                left -= n;
            }
            let _ = stream.write_all(close.as_bytes()).await;
        }
        Behaviour::EndlessAnswer => {
            let head = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\
                        transfer-encoding: chunked\r\n\r\n";
            if stream.write_all(head.as_bytes()).await.is_err() {
                return;
            }
            let mut left = HOSTILE_BODY;
            while left > 0 {
                let n = left.min(filler.len());
                let chunk = [format!("{n:x}\r\n").as_bytes(), &filler[..n], b"\r\n"].concat();
                if stream.write_all(&chunk).await.is_err() {
                    return;
                }
                written.fetch_add(n, Ordering::SeqCst);
                left -= n;
            }
            let _ = stream.write_all(b"0\r\n\r\n").await;
        }
        Behaviour::Hang | Behaviour::Close => {}
    }
}

/// Registers account `index` at `endpoint` as the only bidder on a model of its own, so that a
/// request for that model can be served by nothing else. Returns the provider and the model.
async fn sole_bidder(net: &Net, index: usize, endpoint: &str) -> (Address, B256) {
    let model_id = net
        .devnet
        .protocol(index)
        .await
        .expect("connect")
        .registry()
        .register_model(
            B256::from(rand::random::<[u8; 32]>()),
            1,
            morpheus_sdk::contracts::GGUF,
            "hostile",
        )
        .await
        .expect("register model");
    provide(&net.devnet, index, endpoint, model_id, PRICE).await;
    (net.devnet.signer(index).address(), model_id)
}

/// The router's refusal: its status and message (any other outcome fails the test).
fn refusal<T: std::fmt::Debug>(result: morpheus_sdk::Result<T>) -> (u16, String) {
    match result {
        Err(morpheus_sdk::Error::Http {
            peer: "router",
            status,
            message,
            ..
        }) => (status, message),
        other => panic!("expected the router's refusal, got {other:?}"),
    }
}

/// The attacker holds six provider identities (every funded account left), each registered at a
/// server that accepts the connection and never answers, each bidding half the honest price so
/// that the router tries them first. It sends nothing: it waits for users' requests. It must not
/// stall them: a request still gets the honest provider within a few seconds, and the next one
/// does not wait for the same six again (their failure is remembered).
#[tokio::test]
async fn attack_hanging_endpoints_stall_every_request() {
    let net = Net::start().await;
    let first_took = stalled_by_six_hanging_endpoints(&net).await;
    assert!(
        first_took < FEW_SECONDS,
        "the first request took {first_took:?} behind six hanging endpoints"
    );
    net.stop().await;
}

/// The same six hanging endpoints against a router whose operator gives each check a long
/// timeout (30 s): the request's deadline (2 s here) still bounds the wait, and the checks it cut
/// short are remembered like timeouts.
#[tokio::test]
async fn attack_hanging_endpoints_outlast_the_liveness_timeout() {
    const DEADLINE: Duration = Duration::from_secs(2);
    let net = Net::with(|c| {
        c.liveness_timeout = Duration::from_secs(30);
        c.liveness_deadline = DEADLINE;
    })
    .await;
    let first_took = stalled_by_six_hanging_endpoints(&net).await;
    assert!(
        (DEADLINE..DEADLINE + Duration::from_secs(3)).contains(&first_took),
        "the first request took {first_took:?}: the checks' deadline is {DEADLINE:?}"
    );
    net.stop().await;
}

/// Six cheaper providers at hanging servers, then two requests: both get the honest provider,
/// the second without contacting the six again and at least twice as fast. Returns how long the
/// first took.
async fn stalled_by_six_hanging_endpoints(net: &Net) -> Duration {
    let mut hanging = Vec::new();
    for index in PROVIDER + 2..FUNDED_ACCOUNTS {
        let server = Hostile::start(Behaviour::Hang).await;
        provide(
            &net.devnet,
            index,
            &server.endpoint,
            net.model_id,
            PRICE / 2,
        )
        .await;
        hanging.push(server);
    }
    assert_eq!(hanging.len(), 6);
    let honest = net.devnet.signer(PROVIDER).address();

    let timed = |label: &'static str| {
        let request = net.request(|_| {});
        let router = net.router.clone();
        async move {
            let started = Instant::now();
            let assignment =
                tokio::time::timeout(FEW_SECONDS * 2, router.request_compute(&request))
                    .await
                    .unwrap_or_else(|_| {
                        panic!("the {label} request took over {:?}", FEW_SECONDS * 2)
                    })
                    .unwrap_or_else(|e| panic!("the {label} request was refused: {e}"));
            (assignment, started.elapsed())
        }
    };

    let (first, first_took) = timed("first").await;
    assert_eq!(
        first.message.provider, honest,
        "the honest provider is assigned"
    );
    let contacted: Vec<usize> = hanging.iter().map(Hostile::accepted).collect();
    assert!(
        contacted.iter().all(|&n| n >= 1),
        "every hanging endpoint was checked: {contacted:?}"
    );

    let (second, second_took) = timed("second").await;
    assert_eq!(second.message.provider, honest);
    let again: Vec<usize> = hanging.iter().map(Hostile::accepted).collect();
    assert_eq!(
        again, contacted,
        "a failed endpoint is not re-checked during its cool-down"
    );
    assert!(
        second_took * 2 < first_took,
        "the second request ({second_took:?}) waited for the hanging endpoints again \
         (first: {first_took:?})"
    );
    first_took
}

/// The attacker is the only provider of a model; its server answers the liveness challenge 500
/// with a 32 MiB error body whose message starts with internal detail. The user asking for that
/// model must not get the provider's text in the router's 503 (only who failed and how), and the
/// router must not read the whole body.
#[tokio::test]
async fn attack_error_body_is_echoed_to_the_user() {
    let net = Net::start().await;
    let server = Hostile::start(Behaviour::ErrorBody).await;
    let (hostile, model_id) = sole_bidder(&net, PROVIDER + 2, &server.endpoint).await;

    let result = net
        .router
        .request_compute(&net.request(|r| r.modelId = model_id))
        .await;
    let (status, message) = refusal(result);
    assert_eq!(status, 503, "{:.300}", message);
    assert!(
        !message.contains(MARKER),
        "the router's 503 ({} bytes) echoes the provider's error body",
        message.len()
    );
    assert!(
        message.contains(&format!("{hostile}: liveness failed: status 500")),
        "the 503 names the provider and the kind of failure: {message:.300}"
    );
    let written = server.written_after(Duration::from_secs(5)).await;
    assert!(
        written < READ_BOUND,
        "the router read {written} bytes of the provider's error body (bound {READ_BOUND})"
    );
    net.stop().await;
}

/// The attacker is the only provider of a model; its server answers the liveness challenge 200
/// with a 32 MiB chunked body (no length announced) that never becomes a proof. The router must
/// stop reading after a few KiB and refuse it as a bad answer, not buffer it whole.
#[tokio::test]
async fn attack_endless_liveness_answer_is_read_whole() {
    let net = Net::start().await;
    let server = Hostile::start(Behaviour::EndlessAnswer).await;
    let (hostile, model_id) = sole_bidder(&net, PROVIDER + 2, &server.endpoint).await;

    let result = net
        .router
        .request_compute(&net.request(|r| r.modelId = model_id))
        .await;
    let written = server.written_after(Duration::from_secs(5)).await;
    assert!(
        written < READ_BOUND,
        "the router read {written} bytes of the provider's liveness answer (bound {READ_BOUND})"
    );
    let (status, message) = refusal(result);
    assert_eq!(status, 503, "{message:.300}");
    assert!(
        message.contains(&format!("{hostile}: liveness failed: answer over")),
        "the 503 names the provider and the kind of failure: {message:.300}"
    );
    net.stop().await;
}

/// With private endpoints not allowed (the default outside the devnet), the attacker registers
/// provider identities at addresses inside the router's network: the router's own loopback (a
/// server that counts connections), a name that resolves to it, a private address, the cloud
/// metadata address, an IPv4-mapped loopback, and a URL that is not http(s). Each bids below the
/// honest provider. The router must contact none of them and name each as refused.
#[tokio::test]
async fn attack_private_endpoint_is_probed() {
    let net = Net::with(|c| c.allow_private_endpoints = false).await;
    let loopback = Hostile::start(Behaviour::Close).await;
    let named = Hostile::start(Behaviour::Close).await;
    let first = PROVIDER + 2;
    let endpoints = [
        (loopback.endpoint.clone(), "127.0.0.1 is a loopback address"),
        (
            format!("http://localhost:{}/", named.port),
            "localhost resolves to",
        ),
        (
            "http://10.0.0.1".to_string(),
            "10.0.0.1 is a private address",
        ),
        (
            "http://169.254.169.254/latest/meta-data".to_string(),
            "169.254.169.254 is a link-local address",
        ),
        (
            format!("http://[::ffff:127.0.0.1]:{}", loopback.port),
            "is a loopback address",
        ),
        ("file:///etc/passwd".to_string(), "not an http(s) URL"),
    ];
    for (i, (endpoint, _)) in endpoints.iter().enumerate() {
        provide(&net.devnet, first + i, endpoint, net.model_id, PRICE / 2).await;
    }

    let result = net.router.request_compute(&net.request(|_| {})).await;
    assert_eq!(
        (loopback.accepted(), named.accepted()),
        (0, 0),
        "the router connected to a loopback endpoint (127.0.0.1, [::ffff:127.0.0.1], localhost)"
    );
    let (status, message) = refusal(result);
    assert_eq!(status, 503, "{message}");
    let reason = |provider: Address| {
        let named = format!("{provider}: ");
        message
            .split("; ")
            .find_map(|part| part.find(&named).map(|at| &part[at + named.len()..]))
            .unwrap_or_else(|| panic!("the 503 names {provider}: {message}"))
    };
    for (i, (endpoint, why)) in endpoints.iter().enumerate() {
        let provider = net.devnet.signer(first + i).address();
        let reason = reason(provider);
        assert!(
            reason.starts_with("endpoint refused: ") && reason.contains(why),
            "{endpoint} ({provider}) is refused because {why}, not: {reason}"
        );
    }
    // The devnet's own worker listens on 127.0.0.1 too: refused like the others.
    let honest = reason(net.devnet.signer(PROVIDER).address());
    assert!(
        honest.starts_with("endpoint refused: 127.0.0.1 is a loopback address"),
        "{honest}"
    );
    net.stop().await;
}
