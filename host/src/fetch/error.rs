//! Every way an outbound HTTP exchange fails, with a short cause label for markers,
//! metrics and the call store.

use std::time::Duration;

use crate::net::ConnectError;

/// Why a request failed, before or after its response head.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FetchError {
    /// Name resolution failed.
    #[error("DNS lookup failed: {0}")]
    Dns(String),
    /// Every address the name resolved to is one the policy refuses.
    #[error("{0}")]
    Denied(String),
    /// Every address refused the TCP connection.
    #[error("connection refused")]
    Refused,
    /// DNS, TCP and TLS did not finish within the connect deadline.
    #[error("no connection within {0:?}")]
    ConnectTimeout(Duration),
    /// The server's certificate was refused.
    #[error("TLS certificate refused: {0}")]
    TlsCertificate(String),
    /// The server sent a TLS alert.
    #[error("TLS alert: {0}")]
    TlsAlert(String),
    /// Any other TLS failure.
    #[error("TLS handshake failed: {0}")]
    Tls(String),
    /// No response head within the first-byte deadline.
    #[error("no response within {0:?} of sending the request")]
    FirstByteTimeout(Duration),
    /// The response body went silent for longer than the between-bytes deadline.
    #[error("the response body sent nothing for {0:?}")]
    BetweenBytesTimeout(Duration),
    /// The guest's request body passed the cap.
    #[error("the request body is larger than {0} bytes")]
    RequestBodyTooLarge(u64),
    /// The response body passed the cap; what came before it was delivered.
    #[error("the response body is larger than {0} bytes")]
    ResponseBodyTooLarge(u64),
    /// The connection closed before the response was complete.
    #[error("the connection closed before the response was complete")]
    Incomplete,
    /// The server broke HTTP/1.1.
    #[error("HTTP protocol error: {0}")]
    Protocol(String),
    /// The guest's request body failed.
    #[error("the request body failed: {0}")]
    RequestBody(String),
    /// Anything else.
    #[error("{0}")]
    Other(String),
}

impl FetchError {
    /// A short cause label for markers and metrics.
    pub fn cause(&self) -> &'static str {
        match self {
            FetchError::Dns(_) => "dns-error",
            FetchError::Denied(_) => "special-address",
            FetchError::Refused => "connection-refused",
            FetchError::ConnectTimeout(_) => "connect-timeout",
            FetchError::TlsCertificate(_) => "tls-certificate",
            FetchError::TlsAlert(_) => "tls-alert",
            FetchError::Tls(_) => "tls-error",
            FetchError::FirstByteTimeout(_) => "first-byte-timeout",
            FetchError::BetweenBytesTimeout(_) => "between-bytes-timeout",
            FetchError::RequestBodyTooLarge(_) => "request-body-too-large",
            FetchError::ResponseBodyTooLarge(_) => "response-body-too-large",
            FetchError::Incomplete => "response-incomplete",
            FetchError::Protocol(_) => "protocol-error",
            FetchError::RequestBody(_) => "request-body-failed",
            FetchError::Other(_) => "internal-error",
        }
    }

    /// The error of a failed hyper exchange or body read.
    pub(crate) fn from_hyper(error: &hyper::Error) -> FetchError {
        if error.is_incomplete_message() || error.is_canceled() || error.is_closed() {
            FetchError::Incomplete
        } else if error.is_parse() || error.is_parse_status() || error.is_parse_too_large() {
            FetchError::Protocol(error.to_string())
        } else {
            FetchError::Other(error.to_string())
        }
    }
}

impl From<ConnectError> for FetchError {
    fn from(error: ConnectError) -> Self {
        match error {
            ConnectError::Dns(detail) => FetchError::Dns(detail),
            ConnectError::Denied(detail) => FetchError::Denied(detail),
            ConnectError::Refused => FetchError::Refused,
            ConnectError::TlsCertificate(reason) => FetchError::TlsCertificate(reason),
            ConnectError::TlsAlert(reason) => FetchError::TlsAlert(reason),
            ConnectError::Tls(reason) => FetchError::Tls(reason),
            ConnectError::Other(detail) => FetchError::Other(detail),
        }
    }
}
