//! Guarded http(s) fetching of media, safe against server-side request forgery.
//!
//! [`fetch`] resolves the host itself and checks every address it resolves to against the
//! [`FetchPolicy`]: private, loopback, link-local, unique-local, unspecified, multicast and other
//! reserved addresses are refused unless the policy allows them. The connection is then pinned
//! to the checked address (so a second DNS answer cannot point it elsewhere), proxies are not
//! used, and redirects are followed by hand with every hop checked the same way. Downloads are
//! capped in size and time.
//!
//! The URLs in its errors and logs are shown through [`redact_url`]: without credentials, query
//! or fragment, which often hold passwords, tokens and signatures.

use crate::error::Error;
use bytes::{Bytes, BytesMut};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;
use url::{Host, Url};

/// What [`fetch`] may do.
#[derive(Debug, Clone, PartialEq)]
pub struct FetchPolicy {
    /// Whether private, loopback, link-local and other non-public addresses may be fetched
    /// (off by default; tests and trusted hosts turn it on).
    pub allow_private: bool,
    /// Non-public addresses allowed even when `allow_private` is off (a host's own media
    /// server, say).
    pub allowed_addresses: Vec<IpAddr>,
    /// The largest body accepted, in bytes
    /// ([`DEFAULT_MAX_MEDIA_BYTES`](crate::media_util::DEFAULT_MAX_MEDIA_BYTES), 100 MiB, by
    /// default). The File node holds media handed to it directly (run-input bytes, `data:`
    /// URLs, `base64`) and assets it reads from the asset store to the same limit.
    pub max_bytes: u64,
    /// The longest a whole fetch (all redirects included) may take.
    pub timeout: Duration,
    /// The most redirects followed.
    pub max_redirects: usize,
}

impl Default for FetchPolicy {
    fn default() -> Self {
        FetchPolicy {
            allow_private: false,
            allowed_addresses: Vec::new(),
            max_bytes: crate::media_util::DEFAULT_MAX_MEDIA_BYTES,
            timeout: Duration::from_secs(60),
            max_redirects: 5,
        }
    }
}

impl FetchPolicy {
    /// The default policy, but with non-public addresses allowed (tests against a local server,
    /// hosts fetching from their own network).
    pub fn allow_private() -> Self {
        FetchPolicy {
            allow_private: true,
            ..Self::default()
        }
    }
}

/// A fetched body.
#[derive(Debug, Clone)]
pub struct Fetched {
    /// The URL the body came from (after redirects).
    pub url: Url,
    /// The `Content-Type` the server claimed (informational; detect the real type from the
    /// bytes).
    pub content_type: Option<String>,
    /// The body.
    pub bytes: Bytes,
}

/// Fetches `url` (http or https) under `policy`.
pub async fn fetch(url: &str, policy: &FetchPolicy) -> Result<Fetched, Error> {
    // One deadline for the whole fetch, redirects and body included.
    match tokio::time::timeout(policy.timeout, fetch_inner(url, policy)).await {
        Ok(result) => result,
        Err(_) => Err(Error::Timeout {
            url: redact_url(url),
            seconds: policy.timeout.as_secs_f64(),
        }),
    }
}

async fn fetch_inner(first: &str, policy: &FetchPolicy) -> Result<Fetched, Error> {
    let mut url = Url::parse(first).map_err(|e| Error::BadUrl {
        url: redact_url(first),
        reason: e.to_string(),
    })?;
    for _hop in 0..=policy.max_redirects {
        let addr = checked_address(&url, policy).await?;
        let mut builder = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy();
        if let Some(Host::Domain(domain)) = url.host() {
            builder = builder.resolve(domain, addr);
        }
        let client = builder.build().map_err(|e| network(&url, e))?;
        let mut response = client
            .get(url.clone())
            .send()
            .await
            .map_err(|e| network(&url, e))?;
        let status = response.status();
        if status.is_redirection() {
            let location = response
                .headers()
                .get(reqwest::header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .ok_or_else(|| Error::Network {
                    url: redact_url(url.as_str()),
                    message: format!("HTTP {} without a usable Location header", status.as_u16()),
                })?;
            url = url.join(location).map_err(|e| Error::BadUrl {
                url: redact_url(location),
                reason: e.to_string(),
            })?;
            tracing::debug!(url = %redact_url(url.as_str()), "following redirect");
            continue;
        }
        if !status.is_success() {
            return Err(Error::HttpStatus {
                url: redact_url(url.as_str()),
                status: status.as_u16(),
            });
        }
        let too_large = || Error::TooLarge {
            url: redact_url(url.as_str()),
            max_bytes: policy.max_bytes,
        };
        if response
            .content_length()
            .is_some_and(|n| n > policy.max_bytes)
        {
            return Err(too_large());
        }
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let mut body = BytesMut::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| network(&url, e))? {
            if (body.len() + chunk.len()) as u64 > policy.max_bytes {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        return Ok(Fetched {
            url,
            content_type,
            bytes: body.freeze(),
        });
    }
    Err(Error::TooManyRedirects {
        url: redact_url(first),
        max: policy.max_redirects,
    })
}

fn network(url: &Url, e: reqwest::Error) -> Error {
    // reqwest's message repeats the whole URL; the error names it redacted instead.
    let e = e.without_url();
    let mut message = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        message.push_str(": ");
        message.push_str(&s.to_string());
        source = s.source();
    }
    Error::Network {
        url: redact_url(url.as_str()),
        message,
    }
}

/// The address to connect to for `url`, after checking every address its host resolves to.
async fn checked_address(url: &Url, policy: &FetchPolicy) -> Result<SocketAddr, Error> {
    if !matches!(url.scheme(), "http" | "https") {
        return Err(Error::BadUrl {
            url: redact_url(url.as_str()),
            reason: format!(
                "only http and https URLs are fetched, not `{}`",
                crate::error::shown(&url.scheme())
            ),
        });
    }
    let port = url.port_or_known_default().unwrap_or(80);
    let addrs: Vec<IpAddr> = match url.host() {
        Some(Host::Ipv4(ip)) => vec![IpAddr::V4(ip)],
        Some(Host::Ipv6(ip)) => vec![IpAddr::V6(ip)],
        Some(Host::Domain(domain)) => tokio::net::lookup_host((domain, port))
            .await
            .map_err(|e| Error::Network {
                url: redact_url(url.as_str()),
                message: format!("cannot resolve `{}`: {e}", crate::error::shown(&domain)),
            })?
            .map(|a| a.ip())
            .collect(),
        None => {
            return Err(Error::BadUrl {
                url: redact_url(url.as_str()),
                reason: "the URL has no host".to_owned(),
            });
        }
    };
    if !policy.allow_private
        && let Some(ip) = addrs
            .iter()
            .find(|ip| !is_public(**ip) && !policy.allowed_addresses.contains(ip))
    {
        return Err(Error::BlockedAddress {
            url: redact_url(url.as_str()),
            ip: *ip,
        });
    }
    addrs
        .first()
        .map(|ip| SocketAddr::new(*ip, port))
        .ok_or_else(|| Error::Network {
            url: redact_url(url.as_str()),
            message: "the host resolves to no address".to_owned(),
        })
}

/// `url` as it may be shown in an error message or a log: credentials (`user:password@`)
/// become `***@`, and the query and fragment, which often hold tokens and signatures, become
/// `?…` (or `#…`). Works on the text, so that a URL too broken to parse is cut the same way.
/// At most [`MAX_SHOWN`](crate::error::MAX_SHOWN) characters are shown (then `…`): a URL can be
/// megabytes of untrusted input.
///
/// ```
/// # use gatewai_nodes::fetch::redact_url;
/// assert_eq!(
///     redact_url("https://me:pw@cdn.example/a.png?sig=abc#x"),
///     "https://***@cdn.example/a.png?…"
/// );
/// ```
pub fn redact_url(url: &str) -> String {
    crate::error::shown(&redacted(url))
}

/// The URL without credentials, query or fragment values, whatever its length.
fn redacted(url: &str) -> String {
    let (head, tail) = match url.find(['?', '#']) {
        Some(i) if url[i..].starts_with('?') => (&url[..i], "?…"),
        Some(i) => (&url[..i], "#…"),
        None => (url, ""),
    };
    // The authority starts after `scheme://` (or a leading `//`) and ends at the path.
    let start = match head.find("://") {
        Some(i) => i + 3,
        None if head.starts_with("//") => 2,
        None => return format!("{head}{tail}"),
    };
    let authority_len = head[start..]
        .find(['/', '\\'])
        .unwrap_or(head.len() - start);
    match head[start..start + authority_len].rfind('@') {
        Some(at) => format!("{}***{}{tail}", &head[..start], &head[start + at..]),
        None => format!("{head}{tail}"),
    }
}

/// Whether `ip` is a public unicast address (not private, loopback, link-local, unique-local,
/// unspecified, multicast, broadcast, documentation, shared or reserved).
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(ip.is_private()
        || ip.is_loopback()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_multicast()
        || ip.is_broadcast()
        || ip.is_documentation()
        || a == 0
        || (a == 100 && (64..128).contains(&b)) // shared address space (CGNAT)
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 198 && (b == 18 || b == 19)) // benchmarking
        || a >= 240) // reserved
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return is_public_v4(v4);
    }
    let seg = ip.segments();
    // NAT64 (64:ff9b::/96) embeds an IPv4 address.
    if seg[0] == 0x64 && seg[1] == 0xff9b && seg[2..6] == [0, 0, 0, 0] {
        let o = ip.octets();
        return is_public_v4(Ipv4Addr::new(o[12], o[13], o[14], o[15]));
    }
    !(ip.is_loopback()
        || ip.is_unspecified()
        || ip.is_multicast()
        || (seg[0] & 0xfe00) == 0xfc00 // unique local
        || (seg[0] & 0xffc0) == 0xfe80 // link-local
        || (seg[0] & 0xffc0) == 0xfec0 // site-local (deprecated)
        || (seg[0] == 0x2001 && seg[1] == 0x0db8) // documentation
        || seg[..6] == [0, 0, 0, 0, 0, 0]) // IPv4-compatible and other ::/96
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_public_addresses_are_recognised() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "224.0.0.1",
            "255.255.255.255",
            "::1",
            "::",
            "fc00::1",
            "fd12::1",
            "fe80::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "64:ff9b::a00:1",
            "::127.0.0.1",
        ] {
            assert!(!is_public(ip.parse().unwrap()), "{ip} should be refused");
        }
        for ip in [
            "93.184.216.34",
            "8.8.8.8",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
        ] {
            assert!(is_public(ip.parse().unwrap()), "{ip} should be allowed");
        }
    }

    #[test]
    fn redacted_urls_keep_no_credentials_query_or_fragment() {
        for (url, shown) in [
            ("https://cdn.example/a.png", "https://cdn.example/a.png"),
            (
                "https://user:secret@cdn.example:8443/p/a.png?X-Sig=abc&t=1#f",
                "https://***@cdn.example:8443/p/a.png?…",
            ),
            (
                "http://token@[::1]:9/a.png#frag",
                "http://***@[::1]:9/a.png#…",
            ),
            ("http://u:p@[::1", "http://***@[::1"),
            ("//u:p@host/a@b.png", "//***@host/a@b.png"),
            ("http://host/a@b.png", "http://host/a@b.png"),
            ("http://a:b@c@host\\x", "http://***@host\\x"),
            ("javascript:alert(1)", "javascript:alert(1)"),
            ("not a url?key=1", "not a url?…"),
        ] {
            assert_eq!(redact_url(url), shown, "{url}");
        }
        // A long URL is cut after the limit, its credentials redacted first.
        let long = format!(
            "https://user:secret@cdn.example/{}.png?sig=1",
            "a".repeat(100_000)
        );
        let shown = redact_url(&long);
        assert_eq!(shown.chars().count(), crate::error::MAX_SHOWN + 1);
        assert!(shown.starts_with("https://***@cdn.example/aaa"), "{shown}");
        assert!(shown.ends_with("a…"), "{shown}");
    }

    #[tokio::test]
    async fn non_http_schemes_are_refused() {
        let err = fetch("file:///etc/passwd", &FetchPolicy::allow_private())
            .await
            .unwrap_err();
        assert!(matches!(err, Error::BadUrl { .. }), "{err}");
        let err = fetch("not a url", &FetchPolicy::default())
            .await
            .unwrap_err();
        assert!(matches!(err, Error::BadUrl { .. }), "{err}");
    }

    #[tokio::test]
    async fn loopback_literals_are_refused_by_default() {
        let err = fetch("http://127.0.0.1:9/x.png", &FetchPolicy::default())
            .await
            .unwrap_err();
        assert!(matches!(err, Error::BlockedAddress { .. }), "{err}");
        let err = fetch("http://[::1]:9/x.png", &FetchPolicy::default())
            .await
            .unwrap_err();
        assert!(matches!(err, Error::BlockedAddress { .. }), "{err}");
        let err = fetch("http://localhost:9/x.png", &FetchPolicy::default())
            .await
            .unwrap_err();
        assert!(matches!(err, Error::BlockedAddress { .. }), "{err}");
    }
}
