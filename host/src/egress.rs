//! The egress allowlist: which `ws://` / `wss://` targets a component may connect to.
//!
//! Rules are written `scheme://host[:port]` and parsed once, when the configuration is
//! loaded. A rule's scheme must match exactly, so `ws://` is only reachable where a rule
//! names it. A host is exact (`api.deepgram.com`, `127.0.0.1`, `[::1]`), a subdomain
//! wildcard (`*.deepgram.com`, which does not match `deepgram.com` itself) or `*` (any
//! host). A missing port means the scheme's default (80 or 443); `:*` means any port.

use std::fmt;
use std::str::FromStr;

/// A WebSocket URL scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// Plain `ws://`.
    Ws,
    /// `wss://`, WebSocket over TLS.
    Wss,
}

impl Scheme {
    /// The port used when a URL or rule names none.
    pub fn default_port(self) -> u16 {
        match self {
            Scheme::Ws => 80,
            Scheme::Wss => 443,
        }
    }

    fn parse(text: &str) -> Option<Scheme> {
        match text.to_ascii_lowercase().as_str() {
            "ws" => Some(Scheme::Ws),
            "wss" => Some(Scheme::Wss),
            _ => None,
        }
    }
}

impl fmt::Display for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Scheme::Ws => "ws",
            Scheme::Wss => "wss",
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
            RuleError::new(rule, format!("`{scheme_text}://` is not a WebSocket scheme: use `ws://` or `wss://`"))
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
            _ => after
                .strip_prefix(':')
                .map(|port| (host, Some(port)))
                .ok_or_else(|| format!("unexpected {after:?} after the IPv6 address")),
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
}

/// Why a URL cannot be used as an outbound target.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    /// Not a URL at all.
    #[error("not a URL: {0}")]
    Malformed(String),
    /// A scheme other than `ws` or `wss`.
    #[error("scheme `{0}` is not `ws` or `wss`")]
    Scheme(String),
    /// No host.
    #[error("the URL has no host")]
    NoHost,
}

/// Parses an outbound URL into the URL itself and the target that policy checks.
pub fn parse_target(text: &str) -> Result<(url::Url, Target), UrlError> {
    let url = url::Url::parse(text).map_err(|e| UrlError::Malformed(e.to_string()))?;
    let scheme = Scheme::parse(url.scheme()).ok_or_else(|| UrlError::Scheme(url.scheme().to_owned()))?;
    let host = match url.host() {
        Some(url::Host::Domain(domain)) => domain.to_ascii_lowercase(),
        Some(url::Host::Ipv4(ip)) => ip.to_string(),
        Some(url::Host::Ipv6(ip)) => ip.to_string(),
        None => return Err(UrlError::NoHost),
    };
    let port = url.port().unwrap_or(scheme.default_port());
    Ok((url, Target { scheme, host, port }))
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
        let policy = EgressPolicy::parse(&["wss://*.example.com", "ws://127.0.0.1:*", "wss://[::1]:9000"])
            .expect("rules parse");
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
        assert!(message("https://api.deepgram.com").contains("not a WebSocket scheme"));
        assert!(message("wss://api.deepgram.com/v1/listen").contains("no path"));
        assert!(message("wss://api.deepgram.com:99999").contains("1 to 65535"));
        assert!(message("wss://api.*.com").contains("leading label"));
        assert!(message("wss://").contains("empty"));
        assert!(message("wss://[::1").contains("closing"));
    }

    #[test]
    fn urls_that_are_not_websocket_targets() {
        assert_eq!(parse_target("https://a.com/"), Err(UrlError::Scheme("https".into())));
        assert!(matches!(parse_target("not a url"), Err(UrlError::Malformed(_))));
    }
}
