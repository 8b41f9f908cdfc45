//! What the SDK's HTTP clients share: one peer's base URL, JSON requests, and refusals mapped to
//! [`Error::Http`] with the peer's own reason (the OpenAI error shape every service here answers in).
//!
//! Nothing is read from a peer without a bound: an error answer's body is read up to
//! [`ERROR_BODY_LIMIT`] (or the client's own bound) and a JSON answer up to the caller's limit ([`JSON_ANSWER_LIMIT`] unless it
//! says less); past the bound the connection is dropped unread, so a peer that answers with
//! megabytes (or forever) costs a few KiB of memory, not its whole body.

use std::time::Duration;

use reqwest::{RequestBuilder, Response, Url};
use serde::de::DeserializeOwned;

use crate::{Error, Result, TransportKind, openai::ErrorBody};

/// The most of an error answer's body that is read unless the client says otherwise
/// ([`Peer::error_limit`]): a provider's reason is a line or two. The reason in [`Error::Http`] is
/// cut there.
pub(crate) const ERROR_BODY_LIMIT: usize = 4 * 1024;

/// The most of a JSON answer [`Peer::json`] reads: far above any answer of the protocol (a
/// provider list of thousands), far below what would hurt a client.
pub(crate) const JSON_ANSWER_LIMIT: usize = 16 << 20;

/// An HTTP peer (`"router"`, `"provider"`) at a base URL.
#[derive(Debug, Clone)]
pub(crate) struct Peer {
    name: &'static str,
    http: reqwest::Client,
    base: Url,
    error_limit: usize,
}

impl Peer {
    /// A peer at `url`; `timeout` bounds whole requests (none for streams that may run long).
    pub(crate) fn new(name: &'static str, url: &str, timeout: Option<Duration>) -> Result<Self> {
        let mut builder = reqwest::Client::builder().connect_timeout(Duration::from_secs(10));
        if let Some(timeout) = timeout {
            builder = builder.timeout(timeout);
        }
        let http = builder.build().map_err(|e| Error::Transport {
            peer: name,
            kind: TransportKind::Other,
            message: e.to_string(),
        })?;
        Self::with_client(name, url, http)
    }

    /// A peer at `url` over `http`, whose settings (timeouts, pool) the caller chose.
    pub(crate) fn with_client(
        name: &'static str,
        url: &str,
        http: reqwest::Client,
    ) -> Result<Self> {
        let mut base = Url::parse(url).map_err(|e| Error::Transport {
            peer: name,
            kind: TransportKind::Other,
            message: format!("{name} URL {url:?} is not a URL: {e}"),
        })?;
        if !base.path().ends_with('/') {
            base.set_path(&format!("{}/", base.path()));
        }
        Ok(Self {
            name,
            http,
            base,
            error_limit: ERROR_BODY_LIMIT,
        })
    }

    /// The same peer, reading at most `limit` bytes of an error answer's body.
    pub(crate) fn error_limit(self, limit: usize) -> Self {
        Self {
            error_limit: limit,
            ..self
        }
    }

    /// The peer's name, for errors.
    pub(crate) fn name(&self) -> &'static str {
        self.name
    }

    /// `GET base/path`.
    pub(crate) fn get(&self, path: &str) -> Result<RequestBuilder> {
        Ok(self.http.get(self.url(path)?))
    }

    /// `POST base/path`.
    pub(crate) fn post(&self, path: &str) -> Result<RequestBuilder> {
        Ok(self.http.post(self.url(path)?))
    }

    /// Sends a request; a non-success answer becomes [`Error::Http`] with the peer's reason, read
    /// from at most the peer's error limit ([`ERROR_BODY_LIMIT`] by default) of its body.
    pub(crate) async fn send(&self, request: RequestBuilder) -> Result<Response> {
        let response = request.send().await.map_err(|e| self.transport(e))?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        // Whatever came before the bound, a timeout or a broken connection is the reason.
        let (body, ending) = read_up_to(response, self.error_limit).await;
        let text = String::from_utf8_lossy(&body);
        let mut message = serde_json::from_slice::<ErrorBody>(&body)
            .map(|b| b.error.message)
            .unwrap_or_else(|_| text.trim().to_string());
        if matches!(ending, Ending::Over) {
            message.push_str(" [cut]");
        }
        Err(Error::Http {
            peer: self.name,
            status: status.as_u16(),
            message,
            retry_after,
        })
    }

    /// Sends a request and decodes its JSON answer, read up to [`JSON_ANSWER_LIMIT`] bytes.
    pub(crate) async fn json<T: DeserializeOwned>(&self, request: RequestBuilder) -> Result<T> {
        self.json_within(request, JSON_ANSWER_LIMIT).await
    }

    /// Sends a request and decodes its JSON answer, which may be at most `limit` bytes long: a
    /// longer one is [`TransportKind::TooLarge`], refused as soon as its length is announced or
    /// read past, and the rest is never read.
    pub(crate) async fn json_within<T: DeserializeOwned>(
        &self,
        request: RequestBuilder,
        limit: usize,
    ) -> Result<T> {
        let response = self.send(request).await?;
        if response.content_length().is_some_and(|n| n > limit as u64) {
            return Err(self.too_large(limit));
        }
        let body = match read_up_to(response, limit).await {
            (body, Ending::Complete) => body,
            (_, Ending::Over) => return Err(self.too_large(limit)),
            (_, Ending::Failed(e)) => return Err(self.transport(e)),
        };
        serde_json::from_slice(&body).map_err(|e| Error::Transport {
            peer: self.name,
            kind: TransportKind::BadAnswer,
            message: format!("the answer is not the expected JSON: {e}"),
        })
    }

    /// A transport failure talking to this peer, with its kind.
    pub(crate) fn transport(&self, e: reqwest::Error) -> Error {
        // A connect timeout is a failure to connect: test it before the timeout.
        let kind = if e.is_connect() {
            TransportKind::Connect
        } else if e.is_timeout() {
            TransportKind::Timeout
        } else if e.is_decode() {
            TransportKind::BadAnswer
        } else {
            TransportKind::Other
        };
        Error::Transport {
            peer: self.name,
            kind,
            message: e.to_string(),
        }
    }

    fn too_large(&self, limit: usize) -> Error {
        Error::Transport {
            peer: self.name,
            kind: TransportKind::TooLarge { limit },
            message: format!("the answer is longer than {limit} bytes"),
        }
    }

    /// `base/path` with `path` relative to the base.
    pub(crate) fn url(&self, path: &str) -> Result<Url> {
        self.base.join(path).map_err(|e| Error::Transport {
            peer: self.name,
            kind: TransportKind::Other,
            message: format!("bad path {path}: {e}"),
        })
    }
}

/// How reading a body up to a bound ended.
#[derive(Debug)]
enum Ending {
    /// The whole body, within the bound.
    Complete,
    /// The body goes on past the bound; what was read is its first `limit` bytes.
    Over,
    /// The body broke off (timeout, reset) after what was read.
    Failed(reqwest::Error),
}

/// Reads `response`'s body chunk by chunk, keeping at most `limit` bytes; the response (and with
/// it, unread, the connection) is dropped at the bound.
async fn read_up_to(mut response: Response, limit: usize) -> (Vec<u8>, Ending) {
    let mut body = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                let room = limit - body.len();
                if chunk.len() > room {
                    body.extend_from_slice(&chunk[..room]);
                    return (body, Ending::Over);
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => return (body, Ending::Complete),
            Err(e) => return (body, Ending::Failed(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    };

    use tokio::{
        io::{AsyncReadExt, AsyncWriteExt},
        net::TcpListener,
    };

    use super::*;

    /// A server that answers every request with `head` and then `body_len` bytes of `fill`
    /// (after `prefix`), counting the body bytes it wrote until the client hung up.
    async fn server(
        head: &'static str,
        prefix: &'static str,
        body_len: usize,
    ) -> (String, Arc<AtomicUsize>) {
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket.set_send_buffer_size(16 * 1024).expect("SO_SNDBUF");
        socket
            .bind("127.0.0.1:0".parse().expect("addr"))
            .expect("bind");
        let listener: TcpListener = socket.listen(8).expect("listen");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let written = Arc::new(AtomicUsize::new(0));
        let count = written.clone();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let count = count.clone();
                tokio::spawn(async move {
                    let mut buf = [0u8; 4096];
                    let _ = stream.read(&mut buf).await;
                    let head = head.replace("{len}", &body_len.to_string());
                    if stream.write_all(head.as_bytes()).await.is_err()
                        || stream.write_all(prefix.as_bytes()).await.is_err()
                    {
                        return;
                    }
                    let filler = vec![b'x'; 8 * 1024];
                    let mut left = body_len - prefix.len();
                    while left > 0 {
                        let n = left.min(filler.len());
                        if stream.write_all(&filler[..n]).await.is_err() {
                            return;
                        }
                        count.fetch_add(n, Ordering::SeqCst);
                        left -= n;
                    }
                });
            }
        });
        (url, written)
    }

    fn peer(url: &str) -> Peer {
        Peer::new("provider", url, Some(Duration::from_secs(10))).expect("peer")
    }

    /// Waits until the server stops writing (the client hung up) and returns what it wrote.
    async fn settled(written: &AtomicUsize) -> usize {
        let mut last = usize::MAX;
        loop {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let now = written.load(Ordering::SeqCst);
            if now == last {
                return now;
            }
            last = now;
        }
    }

    const HUGE: usize = 32 << 20;

    #[tokio::test]
    async fn an_error_body_is_read_up_to_the_limit() {
        let (url, written) = server(
            "HTTP/1.1 500 Internal Server Error\r\ncontent-length: {len}\r\n\r\n",
            "the reason ",
            HUGE,
        )
        .await;
        let peer = peer(&url);
        match peer.send(peer.get("x").expect("url")).await {
            Err(Error::Http {
                status: 500,
                message,
                ..
            }) => {
                assert!(message.starts_with("the reason xxx"), "{message:.80}");
                assert!(message.ends_with(" [cut]"), "{message:.80}");
                assert!(message.len() <= ERROR_BODY_LIMIT + 6, "{}", message.len());
            }
            other => panic!("expected the 500, got {other:?}"),
        }
        let written = settled(&written).await;
        assert!(
            written < 2 << 20,
            "{written} bytes of a {HUGE}-byte error body were sent"
        );
    }

    #[tokio::test]
    async fn a_json_answer_over_the_limit_is_refused_unread() {
        for head in [
            // Announced: refused from the header.
            "HTTP/1.1 200 OK\r\ncontent-length: {len}\r\n\r\n",
            // Not announced: refused once read past the limit.
            "HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n",
        ] {
            let (url, written) = server(head, "{\"a\": \"", HUGE).await;
            let peer = peer(&url);
            let result = peer
                .json_within::<serde_json::Value>(peer.get("x").expect("url"), 16 * 1024)
                .await;
            assert!(
                matches!(
                    result,
                    Err(Error::Transport {
                        kind: TransportKind::TooLarge { limit: 16384 },
                        ..
                    })
                ),
                "{head:?}: {result:?}"
            );
            let written = settled(&written).await;
            assert!(written < 2 << 20, "{head:?}: {written} bytes were sent");
        }
    }

    #[tokio::test]
    async fn a_json_answer_within_the_limit_is_decoded() {
        let (url, _) = server(
            "HTTP/1.1 200 OK\r\ncontent-length: {len}\r\n\r\n",
            "[1, 2, 3]",
            9,
        )
        .await;
        let peer = peer(&url);
        let answer: Vec<u32> = peer
            .json_within(peer.get("x").expect("url"), 9)
            .await
            .expect("decoded");
        assert_eq!(answer, [1, 2, 3]);
    }

    #[tokio::test]
    async fn failures_carry_their_kind() {
        // Nothing listens on a port just released: refused.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("port")
            .port();
        let peer = peer(&format!("http://127.0.0.1:{port}"));
        let result = peer.json::<u32>(peer.get("x").expect("url")).await;
        assert!(
            matches!(
                result,
                Err(Error::Transport {
                    kind: TransportKind::Connect,
                    ..
                })
            ),
            "{result:?}"
        );

        // Accepts and never answers: a timeout.
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((s, _)) = listener.accept().await {
                held.push(s);
            }
        });
        let peer = Peer::new("provider", &url, Some(Duration::from_millis(300))).expect("peer");
        let result = peer.json::<u32>(peer.get("x").expect("url")).await;
        assert!(
            matches!(
                result,
                Err(Error::Transport {
                    kind: TransportKind::Timeout,
                    ..
                })
            ),
            "{result:?}"
        );

        // Not the JSON asked for.
        let (url, _) = server(
            "HTTP/1.1 200 OK\r\ncontent-length: {len}\r\n\r\n",
            "\"text\"",
            6,
        )
        .await;
        let peer = self::peer(&url);
        let result = peer.json::<u32>(peer.get("x").expect("url")).await;
        assert!(
            matches!(
                result,
                Err(Error::Transport {
                    kind: TransportKind::BadAnswer,
                    ..
                })
            ),
            "{result:?}"
        );
    }
}
