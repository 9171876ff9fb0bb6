#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub(crate) use fapi_store_postgres::testing::TestDb;

pub(crate) fn at(secs: i64) -> fapi_core::UnixTime {
    fapi_core::UnixTime::from_secs(1_900_000_000 + secs).unwrap()
}

/// The profile the tests' registrations are made for.
pub(crate) const PROFILE: fapi_core::Profile = fapi_core::Profile::Fapi2MessageSigning;

/// A registration document as the example bank stores it: the redirect
/// URI and the JWKS holding `key`'s public key under kid `k`.
pub(crate) fn registration(id: &str, key: &dyn fapi_core::SigningKey) -> String {
    use fapi_core::jwk::{Jwk, JwkSet};
    serde_json::json!({
        "redirect_uri": format!("https://{id}.example/cb"),
        "jwks": JwkSet::new(vec![Jwk::from_public_key(key.public_key().clone(), Some("k".into()))]).to_json(),
    })
    .to_string()
}

/// The registrations in a [`fapi_store_postgres::PostgresDirectory`], read
/// live (a revoked TPP has none).
#[derive(Debug)]
pub(crate) struct Registrations(pub(crate) fapi_store_postgres::PostgresDirectory);

impl fapi_par::CurrentRegistration for Registrations {
    fn current<'a>(
        &'a self,
        client: &'a fapi_core::ClientId,
    ) -> fapi_core::BoxFuture<
        'a,
        Result<Option<std::sync::Arc<fapi_core::ClientMetadata>>, fapi_core::StoreError>,
    > {
        use fapi_core::client::AuthMethod;
        use fapi_core::jwk::JwkSet;
        use fapi_core::StoreError;
        use fapi_mtls_binding::registry::TppRegistry;
        Box::pin(async move {
            let Some(row) = self.0.client(client).await?.filter(|c| !c.revoked) else {
                return Ok(None);
            };
            let v: serde_json::Value =
                serde_json::from_str(&row.registration).map_err(StoreError::unavailable)?;
            let redirect = v["redirect_uri"].as_str().unwrap_or_default();
            let jwks = JwkSet::from_json(v["jwks"].to_string().as_bytes())
                .map_err(|e| StoreError::unavailable(e.to_string()))?;
            let metadata = fapi_core::ClientMetadata::new(
                client.clone(),
                AuthMethod::PrivateKeyJwt,
                vec![fapi_core::RedirectUri::try_from(redirect).map_err(StoreError::unavailable)?],
                jwks,
                &*fapi_core::crypto::default_provider(),
                PROFILE,
            )
            .map_err(|e| StoreError::unavailable(e.to_string()))?;
            Ok(Some(std::sync::Arc::new(metadata)))
        })
    }
}
