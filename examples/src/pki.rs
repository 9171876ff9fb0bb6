//! A development PKI for the demo, generated in code (rcgen) into the data
//! directory: the scheme CA, the bank's TLS server certificate, and for each
//! TPP a client certificate (clientAuth EKU, organisation DN) and a JWS
//! signing key with its JWKS; plus the directory's and the bank's signing
//! keys. Private keys are written owner-only (0600) and are read back only
//! through a [`KeySource`], never from environment variables.
//!
//! The bank runs against any scheme PKI given to it; this one exists so the
//! demo works on a fresh machine with nothing but the repository.

use core::fmt;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use fapi_core::crypto::{
    signing_key_from_pkcs8_pem, signing_key_to_pkcs8_pem, Algorithm, CryptoProvider, SigningKey,
};
use fapi_core::jwk::{Jwk, JwkSet};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};

/// Why the PKI could not be made or a key not loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PkiError {
    /// File system error (the path is named, the content never).
    #[error("cannot write or read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// Certificate generation failed.
    #[error("certificate generation failed: {0}")]
    Generate(String),
    /// A key file is readable by group or others.
    #[error("key file {0} must not be readable by group or others (chmod 600)")]
    KeyFilePermissions(PathBuf),
    /// A key file does not hold a usable key.
    #[error("key file {0} does not hold a PKCS#8 private key of a supported type")]
    KeyFileContent(PathBuf),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> PkiError + '_ {
    move |source| PkiError::Io {
        path: path.to_owned(),
        source,
    }
}

fn gen(e: impl fmt::Display) -> PkiError {
    PkiError::Generate(e.to_string())
}

/// Writes `content` to `path` readable by the owner only (0600).
fn write_private(path: &Path, content: &[u8]) -> Result<(), PkiError> {
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(io(path))?;
    f.write_all(content).map_err(io(path))?;
    // also tighten a file that existed with wider permissions
    fs::set_permissions(path, fs::Permissions::from_mode(0o600)).map_err(io(path))
}

fn write_public(path: &Path, content: &[u8]) -> Result<(), PkiError> {
    fs::write(path, content).map_err(io(path))
}

/// The files of one TPP.
#[derive(Clone, Debug)]
pub struct TppFiles {
    /// The client id (also the certificate's CN).
    pub client_id: String,
    /// Client certificate (PEM).
    pub certificate: PathBuf,
    /// Client certificate's private key (PEM, 0600).
    pub certificate_key: PathBuf,
    /// Name of its JWS signing key in the [`KeySource`].
    pub signing_key: String,
    /// Its public JWKS (JSON).
    pub jwks: PathBuf,
    /// Its software statement, signed by the development directory.
    pub software_statement: PathBuf,
}

/// Where the generated PKI lives.
#[derive(Clone, Debug)]
pub struct DevPki {
    /// The data directory.
    pub dir: PathBuf,
    /// Scheme CA certificate (PEM): the trust anchor for client certificates.
    pub scheme_ca: PathBuf,
    /// The scheme CA's CRL (PEM), empty, current for [`DEV_CRL_DAYS`] days.
    pub crl: PathBuf,
    /// Bank TLS server certificate (PEM), for `localhost` / `127.0.0.1`.
    pub server_certificate: PathBuf,
    /// Its private key (PEM, 0600).
    pub server_key: PathBuf,
    /// The directory's public JWKS (verifies software statements).
    pub directory_jwks: PathBuf,
    /// The TPPs.
    pub tpps: Vec<TppFiles>,
}

fn ca_params() -> Result<CertificateParams, PkiError> {
    let mut p = CertificateParams::new(Vec::<String>::new()).map_err(gen)?;
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    p.distinguished_name
        .push(DnType::CommonName, "fapi demo scheme CA");
    p.distinguished_name
        .push(DnType::OrganizationName, "fapi demo scheme");
    Ok(p)
}

impl DevPki {
    /// Generates the PKI into `dir` (created 0700 if missing), with keys from
    /// `provider` for the JWS signing keys and rcgen's for certificates;
    /// each TPP also gets a software statement issued at `now`.
    ///
    /// # Errors
    /// [`PkiError`].
    pub fn generate(
        dir: &Path,
        provider: &dyn CryptoProvider,
        tpps: &[&str],
        now: fapi_core::UnixTime,
    ) -> Result<Self, PkiError> {
        Self::generate_with(dir, provider, tpps, now, Algorithm::Ps256)
    }

    /// As [`Self::generate`], with the bank's signing key of `bank_alg`
    /// (`bank init --signing-alg`).
    ///
    /// # Errors
    /// [`PkiError`].
    pub fn generate_with(
        dir: &Path,
        provider: &dyn CryptoProvider,
        tpps: &[&str],
        now: fapi_core::UnixTime,
        bank_alg: Algorithm,
    ) -> Result<Self, PkiError> {
        fs::create_dir_all(dir).map_err(io(dir))?;
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(io(dir))?;
        let ca_key = KeyPair::generate().map_err(gen)?;
        // kept (0600) so the development scheme can issue more certificates
        // and CRLs; a bank never holds a real scheme's CA key
        write_private(
            &dir.join("scheme-ca.key.pem"),
            ca_key.serialize_pem().as_bytes(),
        )?;
        let ca_params = ca_params()?;
        let ca_cert = ca_params.self_signed(&ca_key).map_err(gen)?;
        let issuer = Issuer::new(ca_params, ca_key);
        let scheme_ca = dir.join("scheme-ca.pem");
        write_public(&scheme_ca, ca_cert.pem().as_bytes())?;
        let crl = write_crl_valid_for(
            dir,
            &issuer,
            DEV_CRL,
            &[],
            now,
            time::Duration::days(DEV_CRL_DAYS),
        )?;

        let server_key = KeyPair::generate().map_err(gen)?;
        let mut sp = CertificateParams::new(vec!["localhost".to_string()]).map_err(gen)?;
        sp.subject_alt_names
            .push(SanType::IpAddress(std::net::IpAddr::from([127, 0, 0, 1])));
        sp.distinguished_name
            .push(DnType::CommonName, "fapi demo bank");
        sp.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let server_cert = sp.signed_by(&server_key, &issuer).map_err(gen)?;
        let server_certificate = dir.join("bank-server.pem");
        let server_key_path = dir.join("bank-server.key.pem");
        write_public(&server_certificate, server_cert.pem().as_bytes())?;
        write_private(&server_key_path, server_key.serialize_pem().as_bytes())?;

        let mut directory_key = None;
        for (name, alg) in [
            ("bank-signing", bank_alg),
            ("directory-signing", Algorithm::Es256),
        ] {
            let key = provider.generate_signing_key(alg).map_err(gen)?;
            let pem = signing_key_to_pkcs8_pem(&*key).map_err(gen)?;
            write_private(&dir.join(format!("{name}.key.pem")), pem.as_bytes())?;
            directory_key = Some(key);
        }
        let directory_key = directory_key.ok_or_else(|| gen("no directory key"))?;
        let directory_jwks = dir.join("directory.jwks.json");
        let public = JwkSet::new(vec![Jwk::from_public_key(
            directory_key.public_key().clone(),
            Some("directory-signing".into()),
        )]);
        write_public(&directory_jwks, public.to_json().to_string().as_bytes())?;

        let mut files = Vec::new();
        for client_id in tpps {
            files.push(tpp_files(
                dir,
                &issuer,
                &*directory_key,
                provider,
                client_id,
                now,
            )?);
        }
        Ok(Self {
            dir: dir.to_owned(),
            scheme_ca,
            crl,
            server_certificate,
            server_key: server_key_path,
            directory_jwks,
            tpps: files,
        })
    }
}

/// Issues `dir/<client_id>.pem` (clientAuth, organisation DN) and its key
/// `dir/<client_id>.key.pem` (0600) from `issuer`.
fn client_certificate(
    dir: &Path,
    issuer: &Issuer<'_, KeyPair>,
    client_id: &str,
) -> Result<(PathBuf, PathBuf), PkiError> {
    let key = KeyPair::generate().map_err(gen)?;
    let mut p = CertificateParams::new(vec![format!("{client_id}.example")]).map_err(gen)?;
    // the UK OB shape, X.501 order, most significant first: the RFC 4514
    // string is CN=<software id>,OU=<org id>,
    // organizationIdentifier=PSDGB-FCA-<id>,O=<id> Ltd,C=GB, with the
    // statement's ids (<id>-software, <id>-org), which dynamic registration
    // matches (a fresh name: CertificateParams::new starts with a
    // placeholder CN that would otherwise keep the first place)
    p.distinguished_name = rcgen::DistinguishedName::new();
    p.distinguished_name.push(DnType::CountryName, "GB");
    p.distinguished_name
        .push(DnType::OrganizationName, format!("{client_id} Ltd"));
    p.distinguished_name.push(
        DnType::CustomDnType(vec![2, 5, 4, 97]),
        format!("PSDGB-FCA-{client_id}"),
    );
    p.distinguished_name
        .push(DnType::OrganizationalUnitName, format!("{client_id}-org"));
    p.distinguished_name
        .push(DnType::CommonName, format!("{client_id}-software"));
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    let cert = p.signed_by(&key, issuer).map_err(gen)?;
    let certificate = dir.join(format!("{client_id}.pem"));
    let certificate_key = dir.join(format!("{client_id}.key.pem"));
    write_public(&certificate, cert.pem().as_bytes())?;
    write_private(&certificate_key, key.serialize_pem().as_bytes())?;
    Ok((certificate, certificate_key))
}

/// One TPP's files as the development scheme issues them: its transport
/// certificate from the scheme CA, its PS256 signing key and public JWKS,
/// and its software statement signed by the directory.
fn tpp_files(
    dir: &Path,
    issuer: &Issuer<'_, KeyPair>,
    directory_key: &dyn SigningKey,
    provider: &dyn CryptoProvider,
    client_id: &str,
    now: fapi_core::UnixTime,
) -> Result<TppFiles, PkiError> {
    let (certificate, certificate_key) = client_certificate(dir, issuer, client_id)?;
    let signing = provider
        .generate_signing_key(Algorithm::Ps256)
        .map_err(gen)?;
    let signing_name = format!("{client_id}-signing");
    let pem = signing_key_to_pkcs8_pem(&*signing).map_err(gen)?;
    write_private(&dir.join(format!("{signing_name}.key.pem")), pem.as_bytes())?;
    let jwks = JwkSet::new(vec![Jwk::from_public_key(
        signing.public_key().clone(),
        Some(signing_name.clone()),
    )]);
    let jwks_path = dir.join(format!("{client_id}.jwks.json"));
    write_public(&jwks_path, jwks.to_json().to_string().as_bytes())?;
    let registration = crate::registry::Registration {
        client_id: client_id.to_owned(),
        client_name: format!("{client_id} Ltd"),
        redirect_uris: vec![format!("https://{client_id}.example/cb")],
        jwks: jwks.to_json(),
        token_endpoint_auth_method: "private_key_jwt".into(),
        certificate_subject: Default::default(),
        software_roles: vec!["AISP".into(), "PISP".into()],
        software_id: Some(format!("{client_id}-software")),
        org_id: Some(format!("{client_id}-org")),
        registration_access_token_sha256: None,
        software_jwks_endpoint: None,
        signing_algorithms: Vec::new(),
    };
    let statement = crate::registry::sign_software_statement(
        directory_key,
        "directory-signing",
        &registration,
        now,
    )
    .map_err(gen)?;
    let software_statement = dir.join(format!("{client_id}.ssa.jwt"));
    write_public(&software_statement, statement.as_bytes())?;
    Ok(TppFiles {
        software_statement,
        client_id: client_id.to_owned(),
        certificate,
        certificate_key,
        signing_key: signing_name,
        jwks: jwks_path,
    })
}

/// The development scheme CA of a generated PKI in `dir`, as an issuer.
fn scheme_issuer(dir: &Path) -> Result<Issuer<'static, KeyPair>, PkiError> {
    let key_path = dir.join("scheme-ca.key.pem");
    let key = zeroize::Zeroizing::new(fs::read_to_string(&key_path).map_err(io(&key_path))?);
    let key = KeyPair::from_pem(&key).map_err(gen)?;
    // the same subject and key-identifier method as the CA certificate
    Ok(Issuer::new(ca_params()?, key))
}

impl DevPki {
    /// Issues one more client certificate from the development scheme CA
    /// in `dir` (an outside TPP's transport certificate): returns the
    /// certificate and key paths.
    ///
    /// # Errors
    /// [`PkiError`].
    pub fn issue_client_certificate(
        dir: &Path,
        client_id: &str,
    ) -> Result<(PathBuf, PathBuf), PkiError> {
        client_certificate(dir, &scheme_issuer(dir)?, client_id)
    }

    /// Issues one more TPP from the development scheme in `dir` (what
    /// [`DevPki::generate`] does for each of its TPPs): a transport
    /// certificate, a signing key and JWKS, and a software statement signed
    /// by the development directory. The TPP is not onboarded: it registers
    /// itself (`POST /register`) or the operator onboards it.
    ///
    /// # Errors
    /// [`PkiError`].
    pub fn issue_tpp(
        dir: &Path,
        client_id: &str,
        provider: Arc<dyn CryptoProvider>,
        now: fapi_core::UnixTime,
    ) -> Result<TppFiles, PkiError> {
        let directory_key = FileKeySource::new(dir, provider.clone())
            .signing_key("directory-signing")
            .map_err(gen)?;
        tpp_files(
            dir,
            &scheme_issuer(dir)?,
            &*directory_key,
            &*provider,
            client_id,
            now,
        )
    }

    /// Writes `dir/<name>` (PEM): a CRL of the development scheme CA,
    /// valid for a day from `now`, listing the certificates in `revoked`
    /// (PEM files).
    ///
    /// # Errors
    /// [`PkiError`].
    pub fn write_crl(
        dir: &Path,
        name: &str,
        revoked: &[&Path],
        now: fapi_core::UnixTime,
    ) -> Result<PathBuf, PkiError> {
        write_crl_valid_for(
            dir,
            &scheme_issuer(dir)?,
            name,
            revoked,
            now,
            time::Duration::days(1),
        )
    }
}

/// The CRL the development configuration names: the scheme CA's, empty,
/// written by [`DevPki::generate`] and valid for [`DEV_CRL_DAYS`] days.
pub const DEV_CRL: &str = "scheme-ca.crl.pem";
/// How long the CRL [`DevPki::generate`] writes is current. A development
/// bank started later refuses every client (`crl_expired`) until a new
/// CRL is written, as a real bank must.
pub const DEV_CRL_DAYS: i64 = 30;

fn write_crl_valid_for(
    dir: &Path,
    issuer: &Issuer<'_, KeyPair>,
    name: &str,
    revoked: &[&Path],
    now: fapi_core::UnixTime,
    lifetime: time::Duration,
) -> Result<PathBuf, PkiError> {
    let at = time::OffsetDateTime::from_unix_timestamp(now.as_secs()).map_err(gen)?;
    let mut revoked_certs = Vec::new();
    for path in revoked {
        let pem = fs::read_to_string(path).map_err(io(path))?;
        let cert = fapi_mtls_binding::ClientCertificate::from_pem(&pem).map_err(gen)?;
        revoked_certs.push(rcgen::RevokedCertParams {
            serial_number: rcgen::SerialNumber::from_slice(
                cert.certificate().tbs_certificate.serial_number.as_bytes(),
            ),
            revocation_time: at,
            reason_code: Some(rcgen::RevocationReason::KeyCompromise),
            invalidity_date: None,
        });
    }
    let crl = rcgen::CertificateRevocationListParams {
        this_update: at,
        next_update: at + lifetime,
        crl_number: rcgen::SerialNumber::from(u64::try_from(now.as_secs()).unwrap_or(1)),
        issuing_distribution_point: None,
        revoked_certs,
        key_identifier_method: rcgen::KeyIdMethod::Sha256,
    }
    .signed_by(issuer)
    .map_err(gen)?;
    let out = dir.join(name);
    write_public(&out, crl.pem().map_err(gen)?.as_bytes())?;
    Ok(out)
}

/// Where signing keys come from: a key-management system in production
/// (Vault, an HSM), files here. Keys never come from environment variables
/// and are never logged.
pub trait KeySource: Send + Sync + fmt::Debug {
    /// The signing key called `name`.
    ///
    /// # Errors
    /// [`PkiError`].
    fn signing_key(&self, name: &str) -> Result<Arc<dyn SigningKey>, PkiError>;

    /// Generates a new signing key of `alg` and keeps it as `name` (an HSM
    /// generates it inside; never over an existing one).
    ///
    /// # Errors
    /// [`PkiError`], also when `name` is taken.
    fn generate_signing_key(
        &self,
        name: &str,
        alg: Algorithm,
    ) -> Result<Arc<dyn SigningKey>, PkiError>;

    /// The TLS private key called `name` (for rustls), as PKCS#8/SEC1/PKCS#1 DER.
    ///
    /// # Errors
    /// [`PkiError`].
    fn tls_private_key(
        &self,
        name: &str,
    ) -> Result<rustls_pki_types::PrivateKeyDer<'static>, PkiError>;
}

/// Keys from `<dir>/<name>.key.pem`, refused unless owner-only.
pub struct FileKeySource {
    dir: PathBuf,
    provider: Arc<dyn CryptoProvider>,
}

impl fmt::Debug for FileKeySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileKeySource")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

impl FileKeySource {
    /// Keys in `dir`, parsed by `provider`.
    pub fn new(dir: &Path, provider: Arc<dyn CryptoProvider>) -> Self {
        Self {
            dir: dir.to_owned(),
            provider,
        }
    }
}

/// Key names are plain identifiers: no path separators, no traversal.
fn check_key_name(dir: &Path, name: &str) -> Result<(), PkiError> {
    if name.is_empty()
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(PkiError::KeyFileContent(dir.join(name)));
    }
    Ok(())
}

impl FileKeySource {
    /// Reads `<dir>/<name>.key.pem` if `name` is a plain identifier and the
    /// file is owner-only.
    fn read_key_file(&self, name: &str) -> Result<(PathBuf, zeroize::Zeroizing<String>), PkiError> {
        check_key_name(&self.dir, name)?;
        let path = self.dir.join(format!("{name}.key.pem"));
        let meta = fs::metadata(&path).map_err(io(&path))?;
        if meta.permissions().mode() & 0o077 != 0 {
            return Err(PkiError::KeyFilePermissions(path));
        }
        let pem = zeroize::Zeroizing::new(fs::read_to_string(&path).map_err(io(&path))?);
        Ok((path, pem))
    }
}

impl KeySource for FileKeySource {
    fn signing_key(&self, name: &str) -> Result<Arc<dyn SigningKey>, PkiError> {
        let (path, pem) = self.read_key_file(name)?;
        signing_key_from_pkcs8_pem(&*self.provider, &pem)
            .map_err(|_| PkiError::KeyFileContent(path))
    }

    fn generate_signing_key(
        &self,
        name: &str,
        alg: Algorithm,
    ) -> Result<Arc<dyn SigningKey>, PkiError> {
        check_key_name(&self.dir, name)?;
        let path = self.dir.join(format!("{name}.key.pem"));
        let key = self.provider.generate_signing_key(alg).map_err(gen)?;
        let pem = signing_key_to_pkcs8_pem(&*key).map_err(gen)?;
        // create_new: a name already taken is an error, never overwritten
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(io(&path))?;
        f.write_all(pem.as_bytes()).map_err(io(&path))?;
        f.sync_all().map_err(io(&path))?;
        Ok(key)
    }

    fn tls_private_key(
        &self,
        name: &str,
    ) -> Result<rustls_pki_types::PrivateKeyDer<'static>, PkiError> {
        use rustls_pki_types::pem::PemObject;
        let (path, pem) = self.read_key_file(name)?;
        rustls_pki_types::PrivateKeyDer::from_pem_slice(pem.as_bytes())
            .map_err(|_| PkiError::KeyFileContent(path))
    }
}
