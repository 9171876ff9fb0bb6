//! Conformance kit for [`TppRegistry`] adapters (feature `testing`).
//!
//! ```
//! # futures_executor::block_on(async {
//! use fapi_core::UnixTime;
//! use fapi_mtls_binding::directory::InMemoryTppDirectory;
//! let now = UnixTime::from_secs(1_700_000_000).unwrap();
//! fapi_mtls_binding::testing::tpp_registry_conformance(&InMemoryTppDirectory::new(), now)
//!     .await
//!     .unwrap();
//! # });
//! ```

use fapi_core::testing::ConformanceFailure;
use fapi_core::UnixTime;
use fapi_core::{CertificateThumbprint, ClientId};
use futures_util::future::join_all;

use crate::directory::{CertificateStatus, Standing};
use crate::registry::{RegisterError, RegisteredClient, TppRegistry};

/// How many registrations race for one certificate in the kit.
pub const RACERS: usize = 200;

fn fail(case: &'static str, detail: impl core::fmt::Debug) -> ConformanceFailure {
    ConformanceFailure {
        case,
        detail: format!("{detail:?}"),
    }
}

fn expect<T: PartialEq + core::fmt::Debug>(
    case: &'static str,
    got: T,
    want: T,
) -> Result<(), ConformanceFailure> {
    if got == want {
        Ok(())
    } else {
        Err(fail(case, format_args!("got {got:?}, expected {want:?}")))
    }
}

fn id(s: &str) -> Result<ClientId, ConformanceFailure> {
    ClientId::try_from(s).map_err(|e| fail("client id", e))
}

fn cert(n: u8) -> CertificateThumbprint {
    CertificateThumbprint::from_bytes([n; 32])
}

/// The directory's one-read answer, checked against its two single
/// answers (an adapter's `standing` must not disagree with them).
async fn standing(
    case: &'static str,
    registry: &dyn TppRegistry,
    client: &ClientId,
    certificate: &CertificateThumbprint,
) -> Result<Standing, ConformanceFailure> {
    let one = registry
        .standing(client, certificate)
        .await
        .map_err(|e| fail(case, e))?;
    let composed = Standing {
        status: registry
            .status(client, certificate)
            .await
            .map_err(|e| fail(case, e))?,
        owner: registry
            .certificate_owner(certificate)
            .await
            .map_err(|e| fail(case, e))?,
    };
    expect(case, &one, &composed)?;
    Ok(one)
}

/// Runs every [`TppRegistry`] guarantee (and the [`TppDirectory`]
/// answers it feeds) against `registry`, which must start empty. The race
/// case polls [`RACERS`] registrations of one certificate concurrently on
/// the caller's executor.
///
/// [`TppDirectory`]: crate::directory::TppDirectory
///
/// # Errors
/// The first [`ConformanceFailure`].
pub async fn tpp_registry_conformance(
    registry: &dyn TppRegistry,
    now: UnixTime,
) -> Result<(), ConformanceFailure> {
    let (a, b, unknown) = (id("tpp-a")?, id("tpp-b")?, id("tpp-unknown")?);
    let row = |client: &ClientId, doc: &str, c: u8, revoked: bool| RegisteredClient {
        client_id: client.clone(),
        registration: doc.to_owned(),
        certificate: cert(c),
        revoked,
    };

    expect(
        "an empty registry lists no client",
        registry
            .client_ids()
            .await
            .map_err(|e| fail("client_ids", e))?,
        vec![],
    )?;
    expect(
        "an unknown client is absent",
        registry.client(&a).await,
        Ok(None),
    )?;
    let s = standing("an unregistered certificate", registry, &a, &cert(1)).await?;
    expect("an unregistered certificate has no owner", s.owner, None)?;

    // registration, and what the directory then answers
    expect(
        "a new client is registered",
        registry
            .register_client(&a, "a-1".into(), &cert(1), now)
            .await,
        Ok(()),
    )?;
    expect(
        "a registered client reads back",
        registry.client(&a).await,
        Ok(Some(row(&a, "a-1", 1, false))),
    )?;
    let s = standing("a registered certificate", registry, &a, &cert(1)).await?;
    expect(
        "its own certificate is active and owned",
        (s.status, s.owner),
        (CertificateStatus::Active, Some(a.clone())),
    )?;

    // one certificate, one client
    expect(
        "another client's certificate is refused",
        registry
            .register_client(&b, "b-1".into(), &cert(1), now)
            .await,
        Err(RegisterError::CertificateTaken),
    )?;
    expect(
        "a refused registration writes nothing",
        registry.client(&b).await,
        Ok(None),
    )?;
    expect(
        "a second client is registered",
        registry
            .register_client(&b, "b-1".into(), &cert(2), now)
            .await,
        Ok(()),
    )?;
    expect(
        "client ids are listed in order",
        registry
            .client_ids()
            .await
            .map_err(|e| fail("client_ids", e))?,
        vec![a.clone(), b.clone()],
    )?;
    let s = standing("another client's certificate", registry, &a, &cert(2)).await?;
    expect(
        "a certificate names its owner, not the caller",
        s.owner,
        Some(b.clone()),
    )?;

    // an update replaces the certificate
    expect(
        "an active client is updated",
        registry
            .register_client(&a, "a-2".into(), &cert(3), now)
            .await,
        Ok(()),
    )?;
    expect(
        "the update reads back",
        registry.client(&a).await,
        Ok(Some(row(&a, "a-2", 3, false))),
    )?;
    let s = standing("a replaced certificate", registry, &a, &cert(1)).await?;
    expect("a replaced certificate is no longer owned", s.owner, None)?;

    // revocation
    expect(
        "revoking a registered client",
        registry.revoke_client(&a).await,
        Ok(true),
    )?;
    expect(
        "revoking an unknown client",
        registry.revoke_client(&unknown).await,
        Ok(false),
    )?;
    let s = standing("a revoked client", registry, &a, &cert(3)).await?;
    expect(
        "a revoked client reads as revoked",
        s.status,
        CertificateStatus::TppRevoked,
    )?;
    expect(
        "registering a revoked client is refused",
        registry
            .register_client(&a, "a-3".into(), &cert(4), now)
            .await,
        Err(RegisterError::Revoked),
    )?;
    expect(
        "a refused re-registration writes nothing",
        registry.client(&a).await,
        Ok(Some(row(&a, "a-2", 3, true))),
    )?;
    let s = standing(
        "another client while one is revoked",
        registry,
        &b,
        &cert(2),
    )
    .await?;
    expect(
        "revoking one client leaves another active",
        s.status,
        CertificateStatus::Active,
    )?;

    // reinstatement
    expect(
        "reinstating a registered client",
        registry.reinstate_client(&a).await,
        Ok(true),
    )?;
    expect(
        "reinstating an unknown client",
        registry.reinstate_client(&unknown).await,
        Ok(false),
    )?;
    let s = standing("a reinstated client", registry, &a, &cert(3)).await?;
    expect(
        "a reinstated client is active",
        s.status,
        CertificateStatus::Active,
    )?;
    expect(
        "a reinstated client can be updated",
        registry
            .register_client(&a, "a-3".into(), &cert(4), now)
            .await,
        Ok(()),
    )?;

    // certificate revocation, and the order of precedence
    for case in ["revoking a certificate", "revoking it again"] {
        registry
            .revoke_certificate(&cert(2), now)
            .await
            .map_err(|e| fail(case, e))?;
    }
    let s = standing("a revoked certificate", registry, &b, &cert(2)).await?;
    expect(
        "a revoked certificate reads as revoked",
        s.status,
        CertificateStatus::CertificateRevoked,
    )?;
    let s = standing("another certificate", registry, &a, &cert(4)).await?;
    expect(
        "revoking one certificate leaves others active",
        s.status,
        CertificateStatus::Active,
    )?;
    expect("revoking b", registry.revoke_client(&b).await, Ok(true))?;
    let s = standing(
        "a revoked client with a revoked certificate",
        registry,
        &b,
        &cert(2),
    )
    .await?;
    expect(
        "a revoked TPP outranks a revoked certificate",
        s.status,
        CertificateStatus::TppRevoked,
    )?;

    // many clients race for one certificate: exactly one holds it
    let racers = (0..RACERS)
        .map(|i| id(&format!("tpp-racer-{i:03}")))
        .collect::<Result<Vec<_>, _>>()?;
    let contested = cert(9);
    let results = join_all(
        racers
            .iter()
            .map(|c| registry.register_client(c, c.as_str().to_owned(), &contested, now)),
    )
    .await;
    let mut winners = Vec::new();
    for (c, r) in racers.iter().zip(results) {
        match r {
            Ok(()) => winners.push(c.clone()),
            Err(RegisterError::CertificateTaken) => {}
            other => return Err(fail("racing registrations of one certificate", other)),
        }
    }
    expect(
        "exactly one racing registration holds the certificate",
        winners.len(),
        1,
    )?;
    let owner = registry
        .certificate_owner(&contested)
        .await
        .map_err(|e| fail("the race's owner", e))?;
    expect(
        "the certificate's owner is the winner",
        owner,
        winners.pop(),
    )?;
    Ok(())
}
