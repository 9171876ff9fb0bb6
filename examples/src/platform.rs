//! The whole platform on one machine, for the demo, the end-to-end tests
//! and the load generator: a development PKI in a data directory, the bank
//! on loopback (real TLS, real sockets, the SQLite store), both TPPs
//! onboarded through their signed software statements, and a TPP client
//! for each.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use fapi_core::crypto::{default_provider, CryptoProvider};
use fapi_core::Clock;
use fapi_mtls_binding::ClientCertificate;

use crate::bank::{self, BankConfig, OffsetClock, RunningBank};
use crate::pki::{DevPki, FileKeySource};
use crate::registry::{onboard, verify_software_statement};
use crate::tpp::{Tpp, TppConfig};

/// Any error, for programs and tests.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A running platform.
#[derive(Debug)]
pub struct Platform {
    /// The bank.
    pub bank: RunningBank,
    /// The bank's configuration.
    pub config: BankConfig,
    /// The generated PKI.
    pub pki: DevPki,
    /// The TPP clients, in the order of `tpp_names`.
    pub tpps: Vec<Tpp>,
    /// The clock the bank and the TPPs read (tests move it forward).
    pub clock: Arc<OffsetClock>,
    /// A browser for the customer pages (no client certificate).
    pub browser: reqwest::Client,
}

impl Platform {
    /// Generates the PKI into `data_dir`, starts the bank with the
    /// development configuration as changed by `adjust`, onboards each TPP
    /// from its software statement, and connects a client for each.
    ///
    /// # Errors
    /// Any failure, described.
    pub async fn start(
        data_dir: &Path,
        tpp_names: &[&str],
        adjust: impl FnOnce(&mut BankConfig),
    ) -> Result<Self, BoxError> {
        let provider = default_provider();
        let clock = Arc::new(OffsetClock::default());
        let pki = DevPki::generate(data_dir, &*provider, tpp_names, clock.now())?;
        let mut config = BankConfig::development(data_dir);
        adjust(&mut config);
        let bank = bank::start_with_clock(&config, clock.clone()).await?;
        let profile = config.profile()?;

        // onboarding, as `bank tpp onboard` does it
        let directory_keys = config.directory_keys(&*provider)?;
        for files in &pki.tpps {
            let statement = std::fs::read_to_string(&files.software_statement)?;
            let registration = verify_software_statement(
                &statement,
                &directory_keys,
                &config.directory_issuer,
                profile,
                clock.now(),
            )?;
            let certificate =
                ClientCertificate::from_pem(&std::fs::read_to_string(&files.certificate)?)?;
            onboard(
                &bank.registry(),
                &registration,
                &certificate,
                &bank.trust,
                &*provider,
                profile,
                clock.now(),
            )
            .await?;
        }

        let key_source = FileKeySource::new(data_dir, provider.clone());
        let mut tpps = Vec::new();
        for files in &pki.tpps {
            let tpp = Tpp::connect(
                tpp_config(&bank, &pki, files, profile),
                &key_source,
                provider.clone(),
                clock.clone(),
            )
            .await?;
            tpps.push(tpp);
        }
        let browser = browser(&pki.scheme_ca)?;
        Ok(Self {
            bank,
            config,
            pki,
            tpps,
            clock,
            browser,
        })
    }

    /// The customer pages' base URL (the issuer).
    pub fn customer_base(&self) -> &str {
        &self.bank.issuer
    }

    /// The crypto provider the platform uses.
    pub fn provider(&self) -> Arc<dyn CryptoProvider> {
        default_provider()
    }
}

/// The client configuration of a TPP of the development PKI.
pub fn tpp_config(
    bank: &RunningBank,
    pki: &DevPki,
    files: &crate::pki::TppFiles,
    profile: fapi_core::Profile,
) -> TppConfig {
    let mut config = TppConfig::development(
        &files.client_id,
        format!("{}/.well-known/openid-configuration", bank.issuer),
        pki.scheme_ca.clone(),
        files.certificate.clone(),
        profile,
    );
    config.signing_key = files.signing_key.clone();
    config
}

/// A customer's browser: trusts the scheme CA (which issued the bank's
/// server certificate), presents no client certificate, follows no
/// redirects.
///
/// # Errors
/// The CA file cannot be read.
pub fn browser(ca: &PathBuf) -> Result<reqwest::Client, BoxError> {
    Ok(crate::tpp::browser_client(&std::fs::read_to_string(ca)?)?)
}
