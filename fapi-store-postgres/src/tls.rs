//! TLS to the database with rustls.
//!
//! [`DatabaseTls`] is the client side: the CA certificates the database's
//! certificate must chain to (or a whole `rustls::ClientConfig` of your
//! own, for a client certificate or other roots). With it
//! [`PostgresStore::connect_tls`] builds a pool whose every connection is
//! TLS or nothing: the connection's `sslmode` is forced to `require`, so a
//! server (or anyone on the path) answering "no TLS" ends the connection
//! instead of downgrading it to plaintext, and rustls checks the chain and
//! that the certificate names the host in the URL (`host`, also when
//! `hostaddr` gives the address), which is libpq's `verify-full`. The
//! handshake offers TLS 1.3 and 1.2 with rustls' safe defaults on AWS-LC.
//! SCRAM authentication binds to the TLS channel (`SCRAM-SHA-256-PLUS`)
//! when the server offers it.

use std::sync::Arc;

use fapi_core::store::StoreError;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;
use tokio_postgres::config::SslMode;

use crate::{unavailable, PostgresStore};

/// How connections to the database are protected: rustls with the roots
/// (and any client certificate) of one `rustls::ClientConfig`. Cheap to
/// clone.
#[derive(Clone)]
pub struct DatabaseTls {
    config: Arc<rustls::ClientConfig>,
}

impl core::fmt::Debug for DatabaseTls {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("DatabaseTls").finish_non_exhaustive()
    }
}

impl DatabaseTls {
    /// Trusts the CA certificates in `pem` (one or more `CERTIFICATE`
    /// blocks: the CA that signed the database's certificate, or a
    /// self-signed server certificate itself), and nothing else.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] if `pem` holds no certificate, a block
    /// does not parse, or a certificate is not usable as a trust anchor.
    pub fn from_ca_pem(pem: &[u8]) -> Result<Self, StoreError> {
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(pem) {
            let cert = cert.map_err(|e| unavailable(format!("the database CA file: {e}")))?;
            roots
                .add(cert)
                .map_err(|e| unavailable(format!("a database CA certificate: {e}")))?;
        }
        if roots.is_empty() {
            return Err(unavailable(
                "the database CA file holds no PEM CERTIFICATE block",
            ));
        }
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(unavailable)?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Self::from_client_config(config))
    }

    /// Your own client configuration (other roots, a client certificate
    /// for certificate authentication to the database).
    pub fn from_client_config(config: rustls::ClientConfig) -> Self {
        Self {
            config: Arc::new(config),
        }
    }

    pub(crate) fn connector(&self) -> tokio_postgres_rustls::MakeRustlsConnect {
        tokio_postgres_rustls::MakeRustlsConnect::new((*self.config).clone())
    }
}

impl PostgresStore {
    /// A pool of at most `max_size` connections to `config`, each over
    /// TLS checked with `tls` (see [`DatabaseTls`]): `sslmode` is forced to
    /// `require`, so no connection of this pool is ever plaintext.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] if `config` says `sslmode=disable` (a
    /// contradiction, refused rather than resolved either way) or the pool
    /// cannot be built. A server without TLS, a certificate that does not
    /// chain to the roots or does not name the host fails each connection
    /// (the first operation's error says which).
    pub fn connect_tls(
        mut config: tokio_postgres::Config,
        max_size: usize,
        tls: &DatabaseTls,
    ) -> Result<Self, StoreError> {
        if config.get_ssl_mode() == SslMode::Disable {
            return Err(unavailable(
                "sslmode=disable and TLS to the database were both asked for; drop one",
            ));
        }
        config.ssl_mode(SslMode::Require);
        Self::with_manager(config, tls.connector(), max_size)
    }
}
