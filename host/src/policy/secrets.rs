//! Secret handshake headers: values the host adds to outbound requests for chosen hosts.
//!
//! Values come from environment variables when the configuration is loaded. They live only
//! in the host: the guest cannot read them through any import, they are added after the
//! guest's request is built, and they replace a guest header of the same name.

use std::fmt;

use http::{HeaderName, HeaderValue};

/// A header value that must not be shown: `Debug` prints `<redacted>`.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretValue(HeaderValue);

impl SecretValue {
    /// Wraps a plain value.
    pub fn new(value: &str) -> Result<Self, TemplateError> {
        let mut value = HeaderValue::from_str(value).map_err(|_| TemplateError::InvalidValue)?;
        value.set_sensitive(true);
        Ok(SecretValue(value))
    }

    /// Compares with `candidate` in time independent of where they differ.
    pub fn matches(&self, candidate: &[u8]) -> bool {
        constant_time_eq(self.0.as_bytes(), candidate)
    }

    /// The value, for putting on the wire.
    pub fn header_value(&self) -> &HeaderValue {
        &self.0
    }
}

impl fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Whether `a` and `b` are equal, in time that does not depend on where they differ
/// (only on their lengths).
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// One header injected for one target host.
#[derive(Debug, Clone)]
pub struct SecretHeader {
    /// Target host, lower case, matched exactly.
    pub host: String,
    /// The header name.
    pub name: HeaderName,
    /// The header value.
    pub value: SecretValue,
}

/// Every secret header of a component.
#[derive(Debug, Clone, Default)]
pub struct SecretHeaders(Vec<SecretHeader>);

impl SecretHeaders {
    /// Wraps resolved headers.
    pub fn new(headers: Vec<SecretHeader>) -> Self {
        SecretHeaders(headers)
    }

    /// The headers to add for a connection to `host`.
    pub fn for_host<'a>(&'a self, host: &'a str) -> impl Iterator<Item = &'a SecretHeader> + 'a {
        self.0.iter().filter(move |header| header.host == host)
    }

    /// Whether any header is configured.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Why a value template could not be expanded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    /// `${VAR}` names a variable that is not set.
    #[error("environment variable `{0}` is not set")]
    MissingVariable(String),
    /// A `${` without its `}`.
    #[error("`${{` without a closing `}}`")]
    Unterminated,
    /// The expanded value cannot be sent in a header.
    #[error("the value is not a valid header value (control characters?)")]
    InvalidValue,
}

/// Expands `${VAR}` references in `template` with `lookup` and makes a header value.
pub fn expand_template(template: &str, lookup: impl Fn(&str) -> Option<String>) -> Result<SecretValue, TemplateError> {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after.find('}').ok_or(TemplateError::Unterminated)?;
        let name = &after[..end];
        let value = lookup(name).ok_or_else(|| TemplateError::MissingVariable(name.to_owned()))?;
        out.push_str(&value);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    let mut value = HeaderValue::from_str(&out).map_err(|_| TemplateError::InvalidValue)?;
    value.set_sensitive(true);
    Ok(SecretValue(value))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        (name == "KEY").then(|| "s3cret".to_owned())
    }

    #[test]
    fn expands_variables() {
        let value = expand_template("Token ${KEY}", env).expect("expands");
        assert_eq!(value.header_value(), "Token s3cret");
        assert_eq!(format!("{value:?}"), "<redacted>");
    }

    #[test]
    fn reports_missing_and_malformed() {
        assert_eq!(expand_template("${NOPE}", env), Err(TemplateError::MissingVariable("NOPE".into())));
        assert_eq!(expand_template("Token ${KEY", env), Err(TemplateError::Unterminated));
        assert_eq!(expand_template("a\nb", env), Err(TemplateError::InvalidValue));
    }
}
