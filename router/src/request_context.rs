//! What wraps every request: an id (the client's `x-request-id` when it sends a short printable
//! one, else a new one) in a tracing span, so every log line of the request carries it, and in
//! the answer's `x-request-id`; the per-client-address rate limit on the `/v1` routes; and the
//! request's count by route and status, and its refusal code, for `/metrics`.

use std::net::{IpAddr, SocketAddr};

use axum::{
    extract::{ConnectInfo, MatchedPath, Request, State},
    http::{HeaderMap, HeaderName, HeaderValue},
    middleware::Next,
    response::{IntoResponse, Response},
};
use tracing::Instrument;

use crate::AppState;

/// The header a request id travels in, both ways.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The code of a refusal, left on the response by `Error::into_response` for the count.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RefusalCode(pub(crate) &'static str);

/// The client's id when it is 1 to 64 visible ASCII characters, else a new random one.
pub(crate) fn request_id(sent: Option<&HeaderValue>) -> String {
    sent.and_then(|v| v.to_str().ok())
        .filter(|v| (1..=64).contains(&v.len()) && v.bytes().all(|b| b.is_ascii_graphic()))
        .map(str::to_string)
        .unwrap_or_else(|| format!("{:016x}", rand::random::<u64>()))
}

/// The client's address: with `header` set (the router behind a proxy that appends the address
/// it saw, as `X-Forwarded-For` does), the last entry of the header's last line, else the TCP
/// peer. A missing or unreadable header falls back to the peer. Only the last entry is taken:
/// the ones before it are whatever the client sent.
pub(crate) fn client_ip(
    headers: &HeaderMap,
    header: Option<&HeaderName>,
    peer: Option<IpAddr>,
) -> Option<IpAddr> {
    header
        .and_then(|h| headers.get_all(h).iter().next_back())
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.rsplit(',').next())
        .and_then(|last| last.trim().parse().ok())
        .or(peer)
}

/// The middleware: id and span, the address's rate limit on `/v1/...`, the counts.
pub(crate) async fn request_context(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let id = request_id(request.headers().get(&REQUEST_ID));
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    let peer = client_ip(request.headers(), state.client_ip_header(), peer);
    let span = tracing::info_span!("request", id = %id, route = %route);
    let limited = match peer {
        Some(ip) if route.starts_with("/v1/") => state.limit_ip(ip).err(),
        _ => None,
    };
    let mut response = match limited {
        Some(refusal) => span.in_scope(|| refusal.into_response()),
        None => next.run(request).instrument(span).await,
    };
    let refusal = response.extensions().get::<RefusalCode>().map(|c| c.0);
    state
        .metrics()
        .request(&route, response.status().as_u16(), refusal);
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID, value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn behind_a_proxy_the_address_it_appended_is_the_clients() {
        let peer = Some(IpAddr::from([10, 0, 0, 1]));
        let forwarded = HeaderName::from_static("x-forwarded-for");
        let mut headers = HeaderMap::new();
        assert_eq!(
            client_ip(&headers, Some(&forwarded), peer),
            peer,
            "no header"
        );
        headers.insert(&forwarded, HeaderValue::from_static("1.2.3.4, 203.0.113.9"));
        assert_eq!(
            client_ip(&headers, Some(&forwarded), peer),
            Some(IpAddr::from([203, 0, 113, 9])),
            "the proxy's entry is the last; the client wrote the first"
        );
        assert_eq!(client_ip(&headers, None, peer), peer, "no header trusted");
        headers.insert(&forwarded, HeaderValue::from_static("not-an-address"));
        assert_eq!(client_ip(&headers, Some(&forwarded), peer), peer);
    }

    #[test]
    fn a_clients_id_is_kept_only_when_short_and_printable() {
        let kept = HeaderValue::from_static("abc-123");
        assert_eq!(request_id(Some(&kept)), "abc-123");
        let long = HeaderValue::from_str(&"x".repeat(65)).expect("header");
        let spaced = HeaderValue::from_static("a b");
        for refused in [Some(&long), Some(&spaced), None] {
            let id = request_id(refused);
            assert_eq!(id.len(), 16, "a new id: {id}");
            assert!(id.bytes().all(|b| b.is_ascii_hexdigit()));
        }
    }
}
