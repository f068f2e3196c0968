//! `oci://registry[:port]/repository[:tag][@sha256:<hex>]`: where a component is kept in
//! an OCI registry, by a tag (which can move) or by a digest (which cannot). Parsed with
//! the configuration; pulled by the deploy wing.

use std::fmt;

/// A parsed OCI reference.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct OciReference {
    /// `host` or `host:port`.
    pub registry: String,
    /// `namespace/name`.
    pub repository: String,
    /// The tag, if one was given.
    pub tag: Option<String>,
    /// `sha256:<64 hex>` of the manifest, if one was given.
    pub digest: Option<String>,
}

/// Why a string is not an OCI reference.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReferenceError {
    /// It does not start with `oci://`.
    #[error("{0:?} is not an OCI reference: expected oci://registry/repository:tag or oci://registry/repository@sha256:…")]
    Scheme(String),
    /// No registry host, or no repository after it.
    #[error("{0:?} has no registry or no repository: expected oci://registry/repository…")]
    Incomplete(String),
    /// The repository has characters the distribution spec does not allow.
    #[error("{0:?}: repository {1:?} may hold only lowercase letters, digits, `.`, `_`, `-` and `/`")]
    Repository(String, String),
    /// A bad tag.
    #[error("{0:?}: tag {1:?} may hold only letters, digits, `.`, `_` and `-` (at most 128)")]
    Tag(String, String),
    /// A digest that is not `sha256:` and 64 lowercase hex digits.
    #[error("{0:?}: digest {1:?} is not sha256: and 64 lowercase hex digits")]
    Digest(String, String),
}

/// Whether `digest` is `sha256:` and 64 lowercase hex digits.
pub fn is_sha256_digest(digest: &str) -> bool {
    digest
        .strip_prefix("sha256:")
        .is_some_and(|hex| hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
}

impl OciReference {
    /// Parses `oci://…`.
    pub fn parse(text: &str) -> Result<Self, ReferenceError> {
        let rest = text.strip_prefix("oci://").ok_or_else(|| ReferenceError::Scheme(text.to_owned()))?;
        let (rest, digest) = match rest.split_once('@') {
            Some((rest, digest)) => {
                if !is_sha256_digest(digest) {
                    return Err(ReferenceError::Digest(text.to_owned(), digest.to_owned()));
                }
                (rest, Some(digest.to_owned()))
            }
            None => (rest, None),
        };
        let (registry, path) = rest.split_once('/').ok_or_else(|| ReferenceError::Incomplete(text.to_owned()))?;
        // A tag follows the last `:` after the last `/`.
        let (repository, tag) = match path.rsplit_once(':') {
            Some((repository, tag)) if !tag.contains('/') => (repository, Some(tag.to_owned())),
            _ => (path, None),
        };
        if registry.is_empty() || repository.is_empty() {
            return Err(ReferenceError::Incomplete(text.to_owned()));
        }
        let repository_ok = repository
            .split('/')
            .all(|part| !part.is_empty() && part.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b)));
        if !repository_ok {
            return Err(ReferenceError::Repository(text.to_owned(), repository.to_owned()));
        }
        if let Some(tag) = &tag
            && (tag.is_empty() || tag.len() > 128 || !tag.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b)))
        {
            return Err(ReferenceError::Tag(text.to_owned(), tag.clone()));
        }
        Ok(OciReference { registry: registry.to_owned(), repository: repository.to_owned(), tag, digest })
    }

    /// The same reference pinned to the manifest `digest` (the tag is kept for people).
    pub fn pinned(&self, digest: &str) -> Self {
        OciReference { digest: Some(digest.to_owned()), ..self.clone() }
    }
}

impl fmt::Display for OciReference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "oci://{}/{}", self.registry, self.repository)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIGEST: &str = "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

    #[test]
    fn references_parse_and_print_back() {
        for text in [
            "oci://ghcr.io/acme/voice:1.2.0".to_owned(),
            "oci://127.0.0.1:5000/acme/voice".to_owned(),
            format!("oci://localhost:5000/a/b/c:v2@{DIGEST}"),
            format!("oci://registry.example/voice@{DIGEST}"),
        ] {
            assert_eq!(OciReference::parse(&text).expect("parses").to_string(), text);
        }
        let parsed = OciReference::parse("oci://127.0.0.1:5000/acme/voice:v1").expect("parses");
        assert_eq!(
            (parsed.registry.as_str(), parsed.repository.as_str(), parsed.tag.as_deref()),
            ("127.0.0.1:5000", "acme/voice", Some("v1"))
        );
        assert_eq!(parsed.pinned(DIGEST).to_string(), format!("oci://127.0.0.1:5000/acme/voice:v1@{DIGEST}"));
    }

    #[test]
    fn malformed_references_are_refused_with_the_reason() {
        type Expected = fn(&ReferenceError) -> bool;
        let cases: [(&str, Expected); 6] = [
            ("https://ghcr.io/a/b", |e| matches!(e, ReferenceError::Scheme(_))),
            ("oci://ghcr.io", |e| matches!(e, ReferenceError::Incomplete(_))),
            ("oci://ghcr.io/", |e| matches!(e, ReferenceError::Incomplete(_))),
            ("oci://ghcr.io/Acme/voice", |e| matches!(e, ReferenceError::Repository(..))),
            ("oci://ghcr.io/acme/voice:bad tag", |e| matches!(e, ReferenceError::Tag(..))),
            ("oci://ghcr.io/acme/voice@sha256:abc", |e| matches!(e, ReferenceError::Digest(..))),
        ];
        for (text, expected) in cases {
            let error = OciReference::parse(text).expect_err(text);
            assert!(expected(&error), "{text}: {error}");
        }
    }
}
