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

/// How many registered clients race to add one certificate in the kit.
pub const ADDERS: usize = 32;

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

    // certificates added to a registration (a rotation)
    expect(
        "a certificate is added to a registered client",
        registry.add_certificate(&a, &cert(5), now).await,
        Ok(()),
    )?;
    expect(
        "adding a certificate the client holds is idempotent",
        registry.add_certificate(&a, &cert(5), now).await,
        Ok(()),
    )?;
    let s = standing("an added certificate", registry, &a, &cert(5)).await?;
    expect(
        "an added certificate is active and owned",
        (s.status, s.owner),
        (CertificateStatus::Active, Some(a.clone())),
    )?;
    let s = standing(
        "the registered certificate after an addition",
        registry,
        &a,
        &cert(3),
    )
    .await?;
    expect(
        "adding a certificate keeps the registered one",
        (s.status, s.owner),
        (CertificateStatus::Active, Some(a.clone())),
    )?;
    expect(
        "an addition leaves the registration as it was",
        registry.client(&a).await,
        Ok(Some(row(&a, "a-2", 3, false))),
    )?;
    expect(
        "adding another client's certificate is refused",
        registry.add_certificate(&a, &cert(2), now).await,
        Err(RegisterError::CertificateTaken),
    )?;
    let s = standing(
        "a certificate another client tried to add",
        registry,
        &b,
        &cert(2),
    )
    .await?;
    expect(
        "a refused addition leaves the owner",
        s.owner,
        Some(b.clone()),
    )?;
    expect(
        "registering with another client's added certificate is refused",
        registry
            .register_client(&b, "b-2".into(), &cert(5), now)
            .await,
        Err(RegisterError::CertificateTaken),
    )?;
    expect(
        "adding a certificate to an unknown client is refused",
        registry.add_certificate(&unknown, &cert(6), now).await,
        Err(RegisterError::NotRegistered),
    )?;
    let s = standing(
        "a certificate refused to an unknown client",
        registry,
        &unknown,
        &cert(6),
    )
    .await?;
    expect("a refused addition writes nothing", s.owner, None)?;
    registry
        .revoke_certificate(&cert(5), now)
        .await
        .map_err(|e| fail("revoking an added certificate", e))?;
    let s = standing("a revoked added certificate", registry, &a, &cert(5)).await?;
    expect(
        "an added certificate is revoked on its own",
        s.status,
        CertificateStatus::CertificateRevoked,
    )?;
    let s = standing(
        "the registered certificate after revoking an added one",
        registry,
        &a,
        &cert(3),
    )
    .await?;
    expect(
        "revoking an added certificate leaves the registered one active",
        s.status,
        CertificateStatus::Active,
    )?;
    expect(
        "a second certificate is added",
        registry.add_certificate(&a, &cert(7), now).await,
        Ok(()),
    )?;
    expect(
        "a client re-registers with its added certificate",
        registry
            .register_client(&a, "a-2".into(), &cert(7), now)
            .await,
        Ok(()),
    )?;
    let s = standing(
        "an added certificate after a re-registration",
        registry,
        &a,
        &cert(5),
    )
    .await?;
    expect("re-registering drops the added certificates", s.owner, None)?;
    let s = standing(
        "the old registered certificate after a re-registration",
        registry,
        &a,
        &cert(3),
    )
    .await?;
    expect(
        "re-registering drops the registered certificate",
        s.owner,
        None,
    )?;
    let s = standing("the certificate re-registered with", registry, &a, &cert(7)).await?;
    expect(
        "the certificate re-registered with is owned",
        s.owner,
        Some(a.clone()),
    )?;
    expect(
        "the re-registration reads back",
        registry.client(&a).await,
        Ok(Some(row(&a, "a-2", 7, false))),
    )?;

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
    let s = standing("a revoked client", registry, &a, &cert(7)).await?;
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
        Ok(Some(row(&a, "a-2", 7, true))),
    )?;
    expect(
        "adding a certificate to a revoked client is refused",
        registry.add_certificate(&a, &cert(8), now).await,
        Err(RegisterError::Revoked),
    )?;
    let s = standing(
        "a certificate refused to a revoked client",
        registry,
        &a,
        &cert(8),
    )
    .await?;
    expect(
        "an addition refused to a revoked client writes nothing",
        s.owner,
        None,
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
    let s = standing("a reinstated client", registry, &a, &cert(7)).await?;
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

    // registered clients race to add one certificate: exactly one holds it
    let adders = (0..ADDERS)
        .map(|i| id(&format!("tpp-adder-{i:03}")))
        .collect::<Result<Vec<_>, _>>()?;
    for (i, c) in adders.iter().enumerate() {
        let mut own = [0xad; 32];
        own[0] = u8::try_from(i).map_err(|e| fail("adders", e))?;
        expect(
            "an adder is registered",
            registry
                .register_client(
                    c,
                    c.as_str().to_owned(),
                    &CertificateThumbprint::from_bytes(own),
                    now,
                )
                .await,
            Ok(()),
        )?;
    }
    let contested = cert(10);
    let results = join_all(
        adders
            .iter()
            .map(|c| registry.add_certificate(c, &contested, now)),
    )
    .await;
    let mut winners = Vec::new();
    for (c, r) in adders.iter().zip(results) {
        match r {
            Ok(()) => winners.push(c.clone()),
            Err(RegisterError::CertificateTaken) => {}
            other => return Err(fail("racing additions of one certificate", other)),
        }
    }
    expect(
        "exactly one racing addition holds the certificate",
        winners.len(),
        1,
    )?;
    let owner = registry
        .certificate_owner(&contested)
        .await
        .map_err(|e| fail("the addition race's owner", e))?;
    expect(
        "the added certificate's owner is the winner",
        owner,
        winners.pop(),
    )?;
    Ok(())
}
