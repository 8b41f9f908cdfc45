//! Which provider endpoints the router contacts: http(s) URLs whose host is a public address, or
//! resolves only to public addresses. Loopback, private, link-local, unspecified and other
//! non-global addresses are refused unless the operator allows private endpoints (a devnet).
//!
//! The rule is checked twice: by [`check`] before a provider is contacted (so the refusal names
//! the address), and by [`PublicOnly`], the HTTP client's resolver, at connect time (so a name
//! that resolves differently a moment later, DNS rebinding, still reaches no private address).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use alloy::transports::http::reqwest::{
    Url,
    dns::{Addrs, Name, Resolve, Resolving},
};

/// Why `endpoint` may not be contacted, or `Ok` when it may. `allow_private` lets any http(s) URL
/// through.
pub(crate) async fn check(endpoint: &str, allow_private: bool) -> Result<(), String> {
    let url = Url::parse(endpoint).map_err(|_| "not an http(s) URL".to_string())?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err("not an http(s) URL".into());
    }
    let host = url
        .host_str()
        .filter(|h| !h.is_empty())
        .ok_or_else(|| "not an http(s) URL (no host)".to_string())?;
    if allow_private {
        return Ok(());
    }
    // The URL parser has normalised IP literals (brackets around IPv6, `2130706433` and
    // `0x7f.1` as 127.0.0.1), so a host that parses as an address is one.
    if let Ok(ip) = host.trim_start_matches('[').trim_end_matches(']').parse() {
        return match non_public(ip) {
            Some(kind) => Err(format!("{ip} is a {kind} address")),
            None => Ok(()),
        };
    }
    let port = url.port_or_known_default().unwrap_or(80);
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
        .await
        .map_err(|_| format!("{host} does not resolve"))?
        .collect();
    if addrs.is_empty() {
        return Err(format!("{host} does not resolve"));
    }
    match addrs
        .iter()
        .find_map(|a| Some((a.ip(), non_public(a.ip())?)))
    {
        Some((ip, kind)) => Err(format!("{host} resolves to {ip}, a {kind} address")),
        None => Ok(()),
    }
}

/// The resolver of the router's HTTP client to providers when private endpoints are not
/// allowed: a name that resolves to any non-public address does not resolve at all.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PublicOnly;

impl Resolve for PublicOnly {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_string();
        Box::pin(async move {
            let addrs: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            if let Some(ip) = addrs
                .iter()
                .map(SocketAddr::ip)
                .find(|ip| non_public(*ip).is_some())
            {
                return Err(format!("{host} resolves to {ip}, not a public address").into());
            }
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

/// What kind of non-public address `ip` is; `None` for a public one.
pub(crate) fn non_public(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => non_public_v4(v4),
        IpAddr::V6(v6) => non_public_v6(v6),
    }
}

fn non_public_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, c, _] = ip.octets();
    Some(if a == 0 {
        // 0.0.0.0/8, "this network": 0.0.0.0 reaches the local host.
        "unspecified"
    } else if ip.is_loopback() {
        "loopback"
    } else if ip.is_private() {
        "private"
    } else if ip.is_link_local() {
        // 169.254.0.0/16, cloud metadata services among them.
        "link-local"
    } else if a == 100 && (64..128).contains(&b) {
        "shared (carrier-grade NAT)"
    } else if a == 192 && b == 0 && c == 0 {
        "reserved (IETF protocol)"
    } else if ip.is_documentation() {
        "documentation"
    } else if a == 198 && (b == 18 || b == 19) {
        "benchmarking"
    } else if ip.is_multicast() {
        "multicast"
    } else if a >= 240 {
        // 240.0.0.0/4 and the broadcast address.
        "reserved"
    } else {
        return None;
    })
}

fn non_public_v6(ip: Ipv6Addr) -> Option<&'static str> {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return non_public_v4(v4);
    }
    let s = ip.segments();
    let embedded = |hi: u16, lo: u16| Ipv4Addr::from(((hi as u32) << 16) | lo as u32);
    if ip.is_unspecified() {
        Some("unspecified")
    } else if ip.is_loopback() {
        Some("loopback")
    } else if s[0] & 0xffc0 == 0xfe80 {
        Some("link-local")
    } else if s[0] & 0xfe00 == 0xfc00 {
        Some("private (unique local)")
    } else if s[0] == 0x0064 && s[1] == 0xff9b {
        // NAT64 (64:ff9b::/96 and the local-use 64:ff9b:1::/48): reaches the IPv4 inside.
        non_public_v4(embedded(s[6], s[7]))
    } else if s[0] == 0x2002 {
        // 6to4: reaches the IPv4 inside.
        non_public_v4(embedded(s[1], s[2]))
    } else if s[0] == 0x2001 && s[1] == 0x0db8 {
        Some("documentation")
    } else if s[0] & 0xe000 != 0x2000 {
        // Outside 2000::/3, global unicast: multicast, site-local, IPv4-compatible, reserved.
        Some("non-global")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_public_addresses_are_named() {
        for (ip, kind) in [
            ("0.0.0.0", "unspecified"),
            ("0.1.2.3", "unspecified"),
            ("127.0.0.1", "loopback"),
            ("127.255.0.9", "loopback"),
            ("10.0.0.1", "private"),
            ("172.16.0.1", "private"),
            ("172.31.255.255", "private"),
            ("192.168.1.1", "private"),
            ("169.254.169.254", "link-local"),
            ("100.64.0.1", "shared (carrier-grade NAT)"),
            ("192.0.0.8", "reserved (IETF protocol)"),
            ("192.0.2.1", "documentation"),
            ("198.18.0.1", "benchmarking"),
            ("224.0.0.1", "multicast"),
            ("255.255.255.255", "reserved"),
            ("::", "unspecified"),
            ("::1", "loopback"),
            ("::ffff:127.0.0.1", "loopback"),
            ("::ffff:10.1.2.3", "private"),
            ("fe80::1", "link-local"),
            ("fd00::1", "private (unique local)"),
            ("64:ff9b::a00:1", "private"),
            ("2002:7f00:1::", "loopback"),
            ("2001:db8::1", "documentation"),
            ("ff02::1", "non-global"),
            ("fec0::1", "non-global"),
            ("::127.0.0.1", "non-global"),
        ] {
            let ip: IpAddr = ip.parse().expect("ip");
            assert_eq!(non_public(ip), Some(kind), "{ip}");
        }
    }

    #[test]
    fn public_addresses_pass() {
        for ip in [
            "1.1.1.1",
            "8.8.8.8",
            "172.32.0.1",
            "100.128.0.1",
            "198.20.0.1",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
        ] {
            let ip: IpAddr = ip.parse().expect("ip");
            assert_eq!(non_public(ip), None, "{ip}");
        }
    }

    #[tokio::test]
    async fn endpoints_are_checked_by_scheme_and_host() {
        for (endpoint, why) in [
            ("file:///etc/passwd", "not an http(s) URL"),
            ("ftp://1.1.1.1/", "not an http(s) URL"),
            ("not a url", "not an http(s) URL"),
            ("http://127.0.0.1:8080", "127.0.0.1 is a loopback address"),
            ("http://2130706433/", "127.0.0.1 is a loopback address"),
            ("http://0x7f.1/", "127.0.0.1 is a loopback address"),
            ("https://[::1]/", "::1 is a loopback address"),
            (
                "http://[::ffff:a00:1]/",
                "::ffff:10.0.0.1 is a private address",
            ),
            ("http://10.0.0.1", "10.0.0.1 is a private address"),
            ("http://localhost:1/", "localhost resolves to"),
        ] {
            let refused = check(endpoint, false).await.expect_err(endpoint);
            assert!(refused.starts_with(why), "{endpoint}: {refused}");
        }
        check("https://1.1.1.1/v1", false)
            .await
            .expect("a public address");
        check("http://127.0.0.1:8080", true)
            .await
            .expect("private endpoints allowed");
        assert_eq!(
            check("file:///etc/passwd", true).await,
            Err("not an http(s) URL".into()),
            "allowing private endpoints allows no other scheme"
        );
    }
}
