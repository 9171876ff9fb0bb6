//! The TPP's HTTP transport: rustls with the FAPI policy, the server's CA,
//! its own client certificate, no redirects followed; reading responses.

#[allow(clippy::wildcard_imports)]
use super::*;

pub(super) fn roots(pem: &str) -> Result<rustls::RootCertStore, TppError> {
    use rustls_pki_types::pem::PemObject;
    let mut store = rustls::RootCertStore::empty();
    for c in rustls_pki_types::CertificateDer::pem_slice_iter(pem.as_bytes()) {
        store.add(c.map_err(local)?).map_err(local)?;
    }
    Ok(store)
}

/// An HTTP client trusting `server_ca`, presenting a client certificate
/// when given one, never following redirects (the caller reads them).
pub(super) fn http_client(
    server_ca: &str,
    identity: Option<(Vec<Vec<u8>>, rustls_pki_types::PrivateKeyDer<'static>)>,
) -> Result<reqwest::Client, TppError> {
    let provider = restrict_to_fapi(rustls::crypto::aws_lc_rs::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(provider))
        .with_protocol_versions(FAPI_PROTOCOL_VERSIONS)
        .map_err(local)?
        .with_root_certificates(roots(server_ca)?);
    let tls = match identity {
        Some((chain, key)) => builder
            .with_client_auth_cert(
                chain
                    .into_iter()
                    .map(rustls_pki_types::CertificateDer::from)
                    .collect(),
                key,
            )
            .map_err(local)?,
        None => builder.with_no_client_auth(),
    };
    reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .map_err(local)
}

/// A client without a certificate that trusts `server_ca` (PEM) and
/// follows no redirects: the customer's browser.
///
/// # Errors
/// [`TppError::Local`] for an unusable CA bundle.
pub fn browser_client(server_ca: &str) -> Result<reqwest::Client, TppError> {
    http_client(server_ca, None)
}

/// The server's signing keys from its `jwks_uri`.
pub(super) async fn fetch_jwks(
    public: &reqwest::Client,
    jwks_uri: &str,
    provider: &dyn CryptoProvider,
    config: &TppConfig,
) -> Result<KeySet, TppError> {
    let jwks = read(public.get(jwks_uri).send().await.map_err(transport)?)
        .await?
        .ok()?;
    let jwks = JwkSet::from_json(&jwks.body).map_err(local)?;
    KeySet::from_jwks(&jwks, provider, &config.profile.key_policy()).map_err(local)
}

pub(super) async fn read(resp: reqwest::Response) -> Result<ApiResponse, TppError> {
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp.bytes().await.map_err(transport)?.to_vec();
    Ok(ApiResponse {
        status,
        headers,
        body,
    })
}
