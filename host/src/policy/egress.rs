//! The egress allowlist: which `ws://`, `wss://`, `http://` and `https://` targets a
//! component may reach, for its WebSockets and its `wasi:http` requests alike.
//!
//! Rules are written `scheme://host[:port]` and parsed once, when the configuration is
//! loaded. A rule's scheme must match exactly, so `ws://` and `http://` are only reachable
//! where a rule names them, and a `wss://` rule does not open `https://` to the same host. A host is exact (`api.deepgram.com`, `127.0.0.1`, `[::1]`), a subdomain
//! wildcard (`*.deepgram.com`, which does not match `deepgram.com` itself) or `*` (any
//! host). A missing port means the scheme's default (80 or 443); `:*` means any port.
//!
//! The check is made twice: on the URL before anything goes on the network, and on every
//! address the host name resolves to. Loopback, private, link-local (cloud metadata),
//! unique-local, CGNAT, multicast and other special addresses are refused unless the rule
//! that let the URL through names them: an IP-literal rule for that address, or a
//! `localhost` rule for loopback. IPv4-mapped IPv6 addresses are judged as the IPv4
//! address they carry. The socket then connects to the address that was checked, so a
//! name that resolves differently a second time (DNS rebinding) gains nothing.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// An outbound URL scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// Plain `ws://`.
    Ws,
    /// `wss://`, WebSocket over TLS.
    Wss,
    /// Plain `http://`.
    Http,
    /// `https://`.
    Https,
}

impl Scheme {
    /// The port used when a URL or rule names none.
    pub fn default_port(self) -> u16 {
        match self {
            Scheme::Ws | Scheme::Http => 80,
            Scheme::Wss | Scheme::Https => 443,
        }
    }

    /// Whether connections of this scheme run over TLS.
    pub fn is_tls(self) -> bool {
        matches!(self, Scheme::Wss | Scheme::Https)
    }

    /// Whether this is a WebSocket scheme (`ws` or `wss`).
    pub fn is_websocket(self) -> bool {
        matches!(self, Scheme::Ws | Scheme::Wss)
    }

    /// The scheme `text` names (any case), if it is one of the four.
    pub fn parse(text: &str) -> Option<Scheme> {
        match text.to_ascii_lowercase().as_str() {
            "ws" => Some(Scheme::Ws),
            "wss" => Some(Scheme::Wss),
            "http" => Some(Scheme::Http),
            "https" => Some(Scheme::Https),
            _ => None,
        }
    }
}

impl fmt::Display for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Scheme::Ws => "ws",
            Scheme::Wss => "wss",
            Scheme::Http => "http",
            Scheme::Https => "https",
        })
    }
}

/// Where a connection is going, taken from a parsed URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The URL's scheme.
    pub scheme: Scheme,
    /// Lower-case host name, or an IP address (IPv6 without brackets).
    pub host: String,
    /// The explicit port, or the scheme's default.
    pub port: u16,
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "{}://[{}]:{}", self.scheme, self.host, self.port)
        } else {
            write!(f, "{}://{}:{}", self.scheme, self.host, self.port)
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum HostPattern {
    Any,
    Exact(String),
    /// `*.example.com`, stored as `.example.com`.
    Subdomains(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PortPattern {
    Any,
    Exact(u16),
}

/// One allowlist entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowRule {
    scheme: Scheme,
    host: HostPattern,
    port: PortPattern,
}

/// Why an allowlist entry was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid outbound rule {rule:?}: {reason}")]
pub struct RuleError {
    rule: String,
    reason: String,
}

impl RuleError {
    fn new(rule: &str, reason: impl Into<String>) -> Self {
        RuleError { rule: rule.to_owned(), reason: reason.into() }
    }
}

impl FromStr for AllowRule {
    type Err = RuleError;

    fn from_str(rule: &str) -> Result<Self, Self::Err> {
        let Some((scheme_text, rest)) = rule.split_once("://") else {
            return Err(RuleError::new(rule, "it does not contain a scheme (e.g. 'wss://api.example.com')"));
        };
        let scheme = Scheme::parse(scheme_text).ok_or_else(|| {
            RuleError::new(rule, format!("`{scheme_text}://` is not an outbound scheme: use `wss://`, `https://`, `ws://` or `http://`"))
        })?;
        let authority = rest.strip_suffix('/').unwrap_or(rest);
        if authority.contains(['/', '?', '#', '@']) {
            return Err(RuleError::new(rule, "a rule names a scheme, host and port only: no path, query or user"));
        }
        let (host_text, port_text) = split_host_port(authority).map_err(|reason| RuleError::new(rule, reason))?;
        let host = parse_host_pattern(host_text).map_err(|reason| RuleError::new(rule, reason))?;
        let port = match port_text {
            None => PortPattern::Exact(scheme.default_port()),
            Some("*") => PortPattern::Any,
            Some(text) => PortPattern::Exact(
                text.parse::<u16>()
                    .ok()
                    .filter(|p| *p != 0)
                    .ok_or_else(|| RuleError::new(rule, format!("port {text:?} is not a number from 1 to 65535 or `*`")))?,
            ),
        };
        Ok(AllowRule { scheme, host, port })
    }
}

/// Splits `host[:port]`, where an IPv6 host is bracketed.
fn split_host_port(authority: &str) -> Result<(&str, Option<&str>), String> {
    if let Some(rest) = authority.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or("an IPv6 address needs a closing `]`")?;
        return match after {
            "" => Ok((host, None)),
            _ => {
                after.strip_prefix(':').map(|port| (host, Some(port))).ok_or_else(|| format!("unexpected {after:?} after the IPv6 address"))
            }
        };
    }
    Ok(match authority.rsplit_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (authority, None),
    })
}

fn parse_host_pattern(host: &str) -> Result<HostPattern, String> {
    if host.is_empty() {
        return Err("the host is empty".to_owned());
    }
    if host == "*" {
        return Ok(HostPattern::Any);
    }
    let host = host.to_ascii_lowercase();
    if let Some(suffix) = host.strip_prefix("*.") {
        check_host_chars(suffix)?;
        return Ok(HostPattern::Subdomains(format!(".{suffix}")));
    }
    if host.contains('*') {
        return Err("a wildcard may only be a whole leading label, as in `*.example.com`".to_owned());
    }
    if host.contains(':') {
        host.parse::<std::net::Ipv6Addr>().map_err(|_| format!("{host:?} is not an IPv6 address"))?;
    } else {
        check_host_chars(&host)?;
    }
    Ok(HostPattern::Exact(host))
}

fn check_host_chars(host: &str) -> Result<(), String> {
    if host.is_empty() || !host.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.') {
        return Err(format!("{host:?} is not a host name"));
    }
    Ok(())
}

impl AllowRule {
    /// Whether this rule names `address` itself, so that a special address is acceptable.
    fn names_address(&self, address: IpAddr) -> bool {
        match &self.host {
            HostPattern::Exact(host) if host == "localhost" => address.is_loopback(),
            HostPattern::Exact(host) => host.parse::<IpAddr>().is_ok_and(|named| canonical(named) == canonical(address)),
            _ => false,
        }
    }

    /// Whether this rule lets a connection reach `target`.
    pub fn allows(&self, target: &Target) -> bool {
        let host_ok = match &self.host {
            HostPattern::Any => true,
            HostPattern::Exact(host) => *host == target.host,
            HostPattern::Subdomains(suffix) => target.host.ends_with(suffix.as_str()),
        };
        let port_ok = match self.port {
            PortPattern::Any => true,
            PortPattern::Exact(port) => port == target.port,
        };
        self.scheme == target.scheme && host_ok && port_ok
    }
}

/// A component's whole allowlist. Empty means no egress at all.
#[derive(Debug, Clone, Default)]
pub struct EgressPolicy {
    rules: Vec<AllowRule>,
}

impl EgressPolicy {
    /// Parses every rule; the first bad one is the error.
    pub fn parse<S: AsRef<str>>(rules: &[S]) -> Result<Self, RuleError> {
        let rules = rules.iter().map(|r| r.as_ref().parse()).collect::<Result<_, _>>()?;
        Ok(EgressPolicy { rules })
    }

    /// Whether any rule lets a connection reach `target`.
    pub fn allows(&self, target: &Target) -> bool {
        self.rules.iter().any(|rule| rule.allows(target))
    }

    /// Whether a connection to `target` may use `address` (one of its resolved
    /// addresses): ordinary public addresses yes; special ones only when a rule allowing
    /// the target names them.
    pub fn allows_address(&self, target: &Target, address: IpAddr) -> bool {
        !is_special(address) || self.rules.iter().any(|rule| rule.allows(target) && rule.names_address(address))
    }
}

/// An IPv4-mapped IPv6 address as the IPv4 address it carries; others unchanged.
pub fn canonical(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}

/// Addresses that are not ordinary public unicast: refused unless a rule names them.
pub fn is_special(address: IpAddr) -> bool {
    match canonical(address) {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || a == 0
                || (a == 100 && (64..128).contains(&b)) // shared address space (CGNAT)
                || (a == 192 && b == 0 && v4.octets()[2] == 0) // IETF protocol assignments
                || (a == 198 && (18..20).contains(&b)) // benchmarking
                || a >= 240 // reserved
        }
        IpAddr::V6(v6) => {
            let first = v6.segments()[0];
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00 // unique local fc00::/7
                || (first & 0xffc0) == 0xfe80 // link-local fe80::/10
                || (first & 0xffc0) == 0xfec0 // site-local (deprecated)
                || first == 0x2001 && v6.segments()[1] == 0x0db8 // documentation
                || first == 0x0064 && v6.segments()[1] == 0xff9b // NAT64 well-known prefix
        }
    }
}

/// Why a URL cannot be used as an outbound target.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    /// Not a URL at all.
    #[error("not a URL: {0}")]
    Malformed(String),
    /// A scheme other than `ws` or `wss` for a WebSocket.
    #[error("scheme `{0}` is not `ws` or `wss` (HTTP requests go through wasi:http)")]
    Scheme(String),
    /// A scheme other than `http` or `https` for an HTTP request.
    #[error("scheme `{0}` is not `http` or `https`")]
    HttpScheme(String),
    /// No host.
    #[error("the URL has no host")]
    NoHost,
}

/// Parses an outbound WebSocket URL into the URL itself and the target that policy checks.
pub fn parse_target(text: &str) -> Result<(url::Url, Target), UrlError> {
    let url = url::Url::parse(text).map_err(|e| UrlError::Malformed(e.to_string()))?;
    let scheme = Scheme::parse(url.scheme()).filter(|s| s.is_websocket()).ok_or_else(|| UrlError::Scheme(url.scheme().to_owned()))?;
    let host = match url.host() {
        Some(url::Host::Domain(domain)) => domain.to_ascii_lowercase(),
        Some(url::Host::Ipv4(ip)) => ip.to_string(),
        // An IPv4-mapped address is the IPv4 address it carries, for rules and checks alike.
        Some(url::Host::Ipv6(ip)) => canonical(IpAddr::V6(ip)).to_string(),
        None => return Err(UrlError::NoHost),
    };
    let port = url.port().unwrap_or(scheme.default_port());
    Ok((url, Target { scheme, host, port }))
}

/// The target of an HTTP request URI (absolute form, as `wasi:http` builds it).
pub fn http_target(uri: &http::Uri) -> Result<Target, UrlError> {
    let scheme_text = uri.scheme_str().unwrap_or_default();
    let scheme = Scheme::parse(scheme_text).filter(|s| !s.is_websocket()).ok_or_else(|| UrlError::HttpScheme(scheme_text.to_owned()))?;
    let host = uri.host().filter(|h| !h.is_empty()).ok_or(UrlError::NoHost)?;
    let host = match host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        Some(v6) => {
            let ip = v6.parse::<std::net::Ipv6Addr>().map_err(|e| UrlError::Malformed(format!("{host}: {e}")))?;
            canonical(IpAddr::V6(ip)).to_string()
        }
        None => host.to_ascii_lowercase(),
    };
    let port = uri.port_u16().unwrap_or(scheme.default_port());
    Ok(Target { scheme, host, port })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(url: &str) -> Target {
        parse_target(url).expect("test URL parses").1
    }

    #[test]
    fn exact_rule_defaults_to_the_scheme_port() {
        let policy = EgressPolicy::parse(&["wss://api.deepgram.com"]).expect("rule parses");
        assert!(policy.allows(&target("wss://api.deepgram.com/v1/listen?model=nova-3")));
        assert!(policy.allows(&target("wss://API.Deepgram.com:443/")));
        assert!(!policy.allows(&target("wss://api.deepgram.com:8443/")));
        assert!(!policy.allows(&target("ws://api.deepgram.com/")), "ws must be named to be allowed");
        assert!(!policy.allows(&target("wss://evil.com/?api.deepgram.com")));
        assert!(!policy.allows(&target("wss://api.deepgram.com.evil.com/")));
    }

    #[test]
    fn wildcards_and_ports() {
        let policy = EgressPolicy::parse(&["wss://*.example.com", "ws://127.0.0.1:*", "wss://[::1]:9000"]).expect("rules parse");
        assert!(policy.allows(&target("wss://a.example.com/")));
        assert!(policy.allows(&target("wss://a.b.example.com/")));
        assert!(!policy.allows(&target("wss://example.com/")));
        assert!(!policy.allows(&target("wss://badexample.com/")));
        assert!(policy.allows(&target("ws://127.0.0.1:5555/")));
        assert!(!policy.allows(&target("wss://127.0.0.1:5555/")));
        assert!(policy.allows(&target("wss://[::1]:9000/")));
        assert!(!policy.allows(&target("wss://[::1]:9001/")));
    }

    #[test]
    fn empty_policy_denies_everything() {
        assert!(!EgressPolicy::default().allows(&target("wss://api.deepgram.com/")));
    }

    #[test]
    fn bad_rules_say_what_is_expected() {
        let message = |rule: &str| AllowRule::from_str(rule).expect_err("rule must be refused").to_string();
        assert!(message("api.deepgram.com").contains("does not contain a scheme"));
        assert!(message("ftp://api.deepgram.com").contains("not an outbound scheme"));
        assert!(message("wss://api.deepgram.com/v1/listen").contains("no path"));
        assert!(message("wss://api.deepgram.com:99999").contains("1 to 65535"));
        assert!(message("wss://api.*.com").contains("leading label"));
        assert!(message("wss://").contains("empty"));
        assert!(message("wss://[::1").contains("closing"));
    }

    #[test]
    fn special_addresses_need_a_rule_that_names_them() {
        let ip = |text: &str| text.parse::<IpAddr>().expect("address");
        let any = EgressPolicy::parse(&["wss://*:*"]).expect("rule");
        let some_host = target("wss://api.example.com/");
        assert!(any.allows_address(&some_host, ip("93.184.216.34")));
        for special in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "224.0.0.1",
            "::1",
            "fe80::1",
            "fd00::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::a9fe:a9fe",
        ] {
            assert!(!any.allows_address(&some_host, ip(special)), "{special} must be refused");
        }
        let named = EgressPolicy::parse(&["ws://127.0.0.1:*", "wss://localhost:9443", "wss://[fd00::7]"]).expect("rules");
        assert!(named.allows_address(&target("ws://127.0.0.1:5000/"), ip("127.0.0.1")));
        assert!(named.allows_address(&target("ws://[::ffff:127.0.0.1]:5000/"), ip("::ffff:127.0.0.1")));
        assert!(named.allows_address(&target("wss://localhost:9443/"), ip("127.0.0.1")));
        assert!(named.allows_address(&target("wss://localhost:9443/"), ip("::1")));
        assert!(!named.allows_address(&target("wss://localhost:9443/"), ip("10.0.0.1")), "localhost names loopback only");
        assert!(named.allows_address(&target("wss://[fd00::7]/"), ip("fd00::7")));
    }

    #[test]
    fn urls_that_are_not_websocket_targets() {
        assert_eq!(parse_target("https://a.com/"), Err(UrlError::Scheme("https".into())));
        assert!(matches!(parse_target("not a url"), Err(UrlError::Malformed(_))));
    }

    #[test]
    fn http_rules_are_their_own_schemes() {
        let http = |uri: &str| http_target(&uri.parse::<http::Uri>().expect("uri")).expect("http target");
        let policy = EgressPolicy::parse(&["https://api.openai.com", "http://127.0.0.1:*", "wss://api.deepgram.com"]).expect("rules");
        assert!(policy.allows(&http("https://api.openai.com/v1/chat/completions?x=1")));
        assert!(!policy.allows(&http("http://api.openai.com/")), "http must be named to be allowed");
        assert!(!policy.allows(&http("https://api.deepgram.com/v1/speak")), "a wss rule does not open https");
        assert!(!policy.allows(&target("wss://api.openai.com/")), "an https rule does not open wss");
        assert!(policy.allows(&http("http://127.0.0.1:8080/")));
        assert_eq!(http("https://[::ffff:127.0.0.1]:9/").host, "127.0.0.1");
        assert_eq!(http("HTTPS://API.OpenAI.com/").port, 443);
        let bad = |uri: &str| http_target(&uri.parse::<http::Uri>().expect("uri"));
        assert_eq!(bad("wss://a.com/"), Err(UrlError::HttpScheme("wss".into())));
        assert_eq!(bad("/relative"), Err(UrlError::HttpScheme(String::new())));
    }
}
