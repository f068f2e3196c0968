//! Talking to a registry: pulling a component (manifest and layer checked against their
//! digests) and pushing one, as the wasm OCI artifact layout has it: a config of type
//! `application/vnd.wasm.config.v0+json` and one layer of type `application/wasm`.
//!
//! Settings come from the environment: `SWITCHBOARD_REGISTRY_USERNAME` and
//! `SWITCHBOARD_REGISTRY_PASSWORD` (HTTP basic, else anonymous), `SWITCHBOARD_REGISTRY_CA_FILE`
//! (extra PEM roots) and `SWITCHBOARD_REGISTRY_INSECURE` (comma-separated `host:port`s
//! reached over plain HTTP; every other registry over HTTPS).

use std::time::Duration;

use oci_client::client::{ClientConfig, ClientProtocol, Config, ImageLayer};
use oci_client::manifest::OciImageManifest;
use oci_client::secrets::RegistryAuth;
use sha2::{Digest, Sha256};

use super::OciError;
use super::OciReference;

/// The largest component pulled (the admin API's upload limit).
pub const MAX_COMPONENT_BYTES: u64 = crate::deploy::MAX_COMPONENT_BYTES as u64;
/// The wasm artifact's config type.
pub const CONFIG_MEDIA_TYPE: &str = "application/vnd.wasm.config.v0+json";
/// The wasm artifact's layer type.
pub const LAYER_MEDIA_TYPE: &str = "application/wasm";
/// The layer type older tools write.
const OLD_LAYER_MEDIA_TYPE: &str = "application/vnd.wasm.content.layer.v1+wasm";

fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect::<String>())
}

/// The reference as `oci-client` takes it.
fn client_reference(reference: &OciReference) -> oci_client::Reference {
    match (&reference.digest, &reference.tag) {
        (Some(digest), _) => oci_client::Reference::with_digest(reference.registry.clone(), reference.repository.clone(), digest.clone()),
        (None, tag) => oci_client::Reference::with_tag(
            reference.registry.clone(),
            reference.repository.clone(),
            tag.clone().unwrap_or_else(|| "latest".to_owned()),
        ),
    }
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|value| !value.is_empty())
}

/// A client with the environment's settings.
fn client() -> Result<(oci_client::Client, RegistryAuth), OciError> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut config = ClientConfig {
        connect_timeout: Some(Duration::from_secs(5)),
        read_timeout: Some(Duration::from_secs(30)),
        ..ClientConfig::default()
    };
    if let Some(hosts) = env("SWITCHBOARD_REGISTRY_INSECURE") {
        config.protocol = ClientProtocol::HttpsExcept(hosts.split(',').map(|h| h.trim().to_owned()).collect());
    }
    if let Some(path) = env("SWITCHBOARD_REGISTRY_CA_FILE") {
        let data = std::fs::read(&path).map_err(|e| OciError::Setup(format!("SWITCHBOARD_REGISTRY_CA_FILE {path}: {e}")))?;
        config
            .extra_root_certificates
            .push(oci_client::client::Certificate { encoding: oci_client::client::CertificateEncoding::Pem, data });
    }
    let auth = match (env("SWITCHBOARD_REGISTRY_USERNAME"), env("SWITCHBOARD_REGISTRY_PASSWORD")) {
        (Some(user), Some(password)) => RegistryAuth::Basic(user, password),
        _ => RegistryAuth::Anonymous,
    };
    let client = oci_client::Client::try_from(config).map_err(|e| OciError::Setup(e.to_string()))?;
    Ok((client, auth))
}

fn registry_error(reference: &OciReference, error: oci_client::errors::OciDistributionError) -> OciError {
    use oci_client::errors::OciDistributionError as E;
    let message = format!("{error}");
    match error {
        E::AuthenticationFailure(_) | E::UnauthorizedError { .. } => OciError::Unauthorized { reference: reference.to_string(), message },
        E::ImageManifestNotFoundError(_) => OciError::NotFound { reference: reference.to_string(), message },
        E::RegistryError { envelope, .. }
            if envelope.errors.iter().any(|e| {
                use oci_client::errors::OciErrorCode as C;
                matches!(e.code, C::ManifestUnknown | C::NameUnknown | C::BlobUnknown)
            }) =>
        {
            OciError::NotFound { reference: reference.to_string(), message }
        }
        E::RequestError(_) => OciError::Unreachable { reference: reference.to_string(), message: format!("{error:#}") },
        _ => OciError::Registry { reference: reference.to_string(), message },
    }
}

/// What a pull found.
#[derive(Debug, Clone)]
pub struct Pulled {
    /// The reference pinned to the manifest's digest.
    pub pinned: OciReference,
    /// The component's bytes.
    pub bytes: Vec<u8>,
}

/// Pulls the component `reference` names. With a digest in the reference, the manifest
/// must hash to it; the layer must hash to the digest the manifest gives it.
pub async fn pull(reference: &OciReference) -> Result<Pulled, OciError> {
    let (client, auth) = client()?;
    let target = client_reference(reference);
    let (manifest_bytes, _) = client
        .pull_manifest_raw(&target, &auth, &[oci_client::manifest::OCI_IMAGE_MEDIA_TYPE, oci_client::manifest::IMAGE_MANIFEST_MEDIA_TYPE])
        .await
        .map_err(|e| registry_error(reference, e))?;
    let manifest_digest = sha256(&manifest_bytes);
    if let Some(expected) = &reference.digest
        && *expected != manifest_digest
    {
        return Err(OciError::DigestMismatch { what: "manifest".to_owned(), expected: expected.clone(), actual: manifest_digest });
    }
    let manifest: OciImageManifest = serde_json::from_slice(&manifest_bytes).map_err(|e| OciError::NotAComponent {
        reference: reference.to_string(),
        message: format!("the manifest is not an OCI image manifest: {e}"),
    })?;
    let layer = match manifest.layers.as_slice() {
        [layer] if layer.media_type == LAYER_MEDIA_TYPE || layer.media_type == OLD_LAYER_MEDIA_TYPE => layer.clone(),
        layers => {
            let types: Vec<&str> = layers.iter().map(|l| l.media_type.as_str()).collect();
            return Err(OciError::NotAComponent {
                reference: reference.to_string(),
                message: format!("expected one layer of type {LAYER_MEDIA_TYPE}, found {types:?}"),
            });
        }
    };
    if layer.size < 0 || layer.size as u64 > MAX_COMPONENT_BYTES {
        return Err(OciError::NotAComponent {
            reference: reference.to_string(),
            message: format!("the layer is {} bytes; at most {MAX_COMPONENT_BYTES} are pulled", layer.size),
        });
    }
    let pinned = reference.pinned(&manifest_digest);
    let mut bytes = Vec::with_capacity(layer.size as usize);
    client.pull_blob(&client_reference(&pinned), &layer, &mut bytes).await.map_err(|e| registry_error(reference, e))?;
    let layer_digest = sha256(&bytes);
    if layer_digest != layer.digest {
        return Err(OciError::DigestMismatch { what: "layer".to_owned(), expected: layer.digest.clone(), actual: layer_digest });
    }
    Ok(Pulled { pinned, bytes })
}

/// Pushes `bytes` as a wasm component artifact to `reference` (a tag); returns it pinned.
pub async fn push(reference: &OciReference, bytes: Vec<u8>) -> Result<OciReference, OciError> {
    let (client, auth) = client()?;
    let target = client_reference(reference);
    let layer = ImageLayer::new(bytes, LAYER_MEDIA_TYPE.to_owned(), None);
    let config = Config::new(br#"{"architecture":"wasm","os":"wasip2"}"#.to_vec(), CONFIG_MEDIA_TYPE.to_owned(), None);
    client.push(&target, &[layer], config, &auth, None).await.map_err(|e| registry_error(reference, e))?;
    let digest = client.fetch_manifest_digest(&target, &auth).await.map_err(|e| registry_error(reference, e))?;
    Ok(reference.pinned(&digest))
}
