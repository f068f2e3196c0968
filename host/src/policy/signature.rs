//! Twilio request signatures on the WebSocket upgrade (`X-Twilio-Signature`).
//!
//! Twilio signs the stream URL it connects to: base64(HMAC-SHA1(auth token, URL)), with
//! no POST parameters for a media stream. Behind a proxy the URL Twilio used is rebuilt
//! from `X-Forwarded-Proto` (`https` -> `wss`) and the `Host` header. The comparison takes
//! the same time wherever the signatures differ.

use base64::Engine;
use hmac::{Hmac, Mac};

/// Why an upgrade's signature was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// No `X-Twilio-Signature` header.
    #[error("no X-Twilio-Signature header")]
    Missing,
    /// No `Host` header to rebuild the URL from.
    #[error("no Host header to rebuild the signed URL from")]
    NoHost,
    /// The signature does not match the URL.
    #[error("X-Twilio-Signature does not match {url}")]
    Mismatch {
        /// The URL the signature was checked against.
        url: String,
    },
}

/// The signature Twilio computes for `url`.
pub fn sign(auth_token: &[u8], url: &str) -> String {
    // HMAC takes keys of any length; `new_from_slice` cannot fail for it.
    let mut mac = match Hmac::<sha1::Sha1>::new_from_slice(auth_token) {
        Ok(mac) => mac,
        Err(_) => return String::new(),
    };
    mac.update(url.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// The public URL of an upgrade request, as Twilio saw it.
pub fn public_url(headers: &http::HeaderMap, path_and_query: &str, served_tls: bool) -> Result<String, SignatureError> {
    let host = headers.get(http::header::HOST).and_then(|v| v.to_str().ok()).ok_or(SignatureError::NoHost)?;
    let forwarded = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(',').next().unwrap_or("").trim().to_ascii_lowercase());
    let scheme = match forwarded.as_deref() {
        Some("https" | "wss") => "wss",
        Some("http" | "ws") => "ws",
        _ if served_tls => "wss",
        _ => "ws",
    };
    Ok(format!("{scheme}://{host}{path_and_query}"))
}

/// Checks an upgrade's `X-Twilio-Signature` against `auth_token`.
pub fn verify(auth_token: &[u8], headers: &http::HeaderMap, path_and_query: &str, served_tls: bool) -> Result<(), SignatureError> {
    let presented = headers.get("x-twilio-signature").map(|v| v.as_bytes()).ok_or(SignatureError::Missing)?;
    let url = public_url(headers, path_and_query, served_tls)?;
    if crate::policy::secrets::constant_time_eq(sign(auth_token, &url).as_bytes(), presented) {
        Ok(())
    } else {
        Err(SignatureError::Mismatch { url })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> http::HeaderMap {
        let mut map = http::HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, http::HeaderValue::from_str(value).expect("header"));
        }
        map
    }

    #[test]
    fn matches_the_official_test_vector() {
        assert_eq!(sign(b"12345", "wss://example.com/media?foo=bar"), "FjZ/U6BopoJFWaIsLzTB835vZHI=");
        let request =
            headers(&[("host", "example.com"), ("x-forwarded-proto", "https"), ("x-twilio-signature", "FjZ/U6BopoJFWaIsLzTB835vZHI=")]);
        assert_eq!(verify(b"12345", &request, "/media?foo=bar", false), Ok(()));
    }

    #[test]
    fn matches_vectors_computed_by_the_official_sdk() {
        // tests/fixtures/twilio_signatures.py regenerates these with twilio's RequestValidator.
        let vectors: Vec<serde_json::Value> =
            serde_json::from_str(include_str!("../../../tests/fixtures/twilio_signatures.json")).expect("fixture parses");
        assert!(vectors.len() >= 5);
        for vector in vectors {
            let (token, url, signature) = (vector["token"].as_str(), vector["url"].as_str(), vector["signature"].as_str());
            let (Some(token), Some(url), Some(signature)) = (token, url, signature) else { panic!("bad vector {vector}") };
            assert_eq!(sign(token.as_bytes(), url), signature, "{url}");
        }
    }

    #[test]
    fn the_url_is_rebuilt_as_twilio_saw_it() {
        let behind_proxy = headers(&[("host", "voice.example.com"), ("x-forwarded-proto", "https")]);
        assert_eq!(public_url(&behind_proxy, "/twilio/media", false), Ok("wss://voice.example.com/twilio/media".to_owned()));
        let direct = headers(&[("host", "127.0.0.1:8080")]);
        assert_eq!(public_url(&direct, "/m", false), Ok("ws://127.0.0.1:8080/m".to_owned()));
        assert_eq!(public_url(&direct, "/m", true), Ok("wss://127.0.0.1:8080/m".to_owned()));
        assert_eq!(public_url(&http::HeaderMap::new(), "/m", false), Err(SignatureError::NoHost));
    }

    #[test]
    fn wrong_or_missing_signatures_are_refused() {
        let unsigned = headers(&[("host", "example.com"), ("x-forwarded-proto", "https")]);
        assert_eq!(verify(b"12345", &unsigned, "/media?foo=bar", false), Err(SignatureError::Missing));
        let forged =
            headers(&[("host", "example.com"), ("x-forwarded-proto", "https"), ("x-twilio-signature", "FjZ/U6BopoJFWaIsLzTB835vZHJ=")]);
        assert!(matches!(verify(b"12345", &forged, "/media?foo=bar", false), Err(SignatureError::Mismatch { .. })));
        let wrong_token =
            headers(&[("host", "example.com"), ("x-forwarded-proto", "https"), ("x-twilio-signature", "FjZ/U6BopoJFWaIsLzTB835vZHI=")]);
        assert!(verify(b"54321", &wrong_token, "/media?foo=bar", false).is_err());
    }
}
