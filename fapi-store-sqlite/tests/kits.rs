//! Every adapter passes its crate's conformance kit, under each way the
//! store can run its statements; stays correct with two stores (two bank
//! processes) on one file; survives a restart; and the audit chain read
//! back from the database fails verification after a byte is changed.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;
use common::{at, b, TempDb};
use fapi_consent::Permission;

use std::sync::{Arc, Barrier};

use fapi_consent::audit::{
    verify_chain, AuditAction, AuditEvent, AuditLog, ChainError, EntryProblem,
};
use fapi_core::replay::ReplayCache;

#[test]
fn replay_cache_passes_the_kit() {
    let db = TempDb::new("replay");
    b(fapi_core::testing::replay_cache_conformance(
        &db.open().replay_cache(),
    ))
    .unwrap();
}

#[test]
fn revoked_token_store_passes_the_kit() {
    let db = TempDb::new("revoked");
    b(fapi_core::testing::revoked_token_store_conformance(
        &db.open().revoked_tokens(),
    ))
    .unwrap();
}

#[test]
fn payment_store_passes_the_kit() {
    let db = TempDb::new("payments");
    b(fapi_consent::testing::payment_store_conformance(
        &db.open().payments(),
    ))
    .unwrap();
}

#[test]
fn refresh_grant_store_passes_the_kit() {
    let db = TempDb::new("refresh");
    b(fapi_core::testing::refresh_grant_store_conformance(
        &db.open().refresh_grants(),
    ))
    .unwrap();
}

/// A refresh grant row written before the binding was typed (its
/// certificate as an `x5t#S256` string) reads back with the same binding,
/// so an upgrade does not log every customer's TPP out.
#[test]
fn a_refresh_grant_row_of_the_old_shape_reads_back() {
    use fapi_core::access_token::Confirmation;
    use fapi_core::refresh::{RefreshGrantStore, RefreshToken};
    use fapi_core::CertificateThumbprint;
    use sha2::Digest;
    let db = TempDb::new("refresh-old");
    let store = db.open().refresh_grants();
    let token = RefreshToken::generate().unwrap();
    let thumb = CertificateThumbprint::of_der(b"cert-a");
    let hash: [u8; 32] = sha2::Sha256::digest(token.secret().as_bytes()).into();
    let body = serde_json::json!({
        "id": "rt-old", "client_id": "tpp-a", "certificate": thumb.to_b64url(),
        "consent_id": "aac-1", "customer_id": "alice", "scope": "openid accounts"
    });
    rusqlite::Connection::open(&db.0)
        .unwrap()
        .execute(
            "INSERT INTO refresh_tokens (hash, id, body) VALUES (?1, 'rt-old', ?2)",
            rusqlite::params![&hash[..], body.to_string()],
        )
        .unwrap();
    let grant = b(store.grant(&token)).unwrap().unwrap();
    assert_eq!(
        grant.confirmation,
        Confirmation::CertificateThumbprint(thumb)
    );
    assert_eq!(grant.id.as_str(), "rt-old");
}

#[test]
fn a_revocation_by_one_handle_is_seen_by_another() {
    use fapi_core::revocation::RevokedTokenStore;
    let db = TempDb::new("revoked-two");
    let (one, two) = (db.open().revoked_tokens(), db.open().revoked_tokens());
    let jti = fapi_core::JwtId::try_from("at-1").unwrap();
    assert!(!b(two.is_revoked(&jti)).unwrap());
    b(one.revoke(std::slice::from_ref(&jti), at(0))).unwrap();
    assert!(b(two.is_revoked(&jti)).unwrap());
}

#[test]
fn idempotency_store_passes_the_kit() {
    let db = TempDb::new("idem");
    b(fapi_consent::testing::idempotency_store_conformance(
        &db.open().idempotency(),
    ))
    .unwrap();
}

#[test]
fn audit_log_passes_the_kit() {
    let db = TempDb::new("audit");
    b(fapi_consent::testing::audit_log_conformance(
        &db.open().audit_log(),
    ))
    .unwrap();
}

/// Two handles on one file (two bank processes), 100 threads each, one jti:
/// exactly one insert wins.
#[test]
fn jti_race_across_two_database_handles() {
    let db = TempDb::new("race");
    let handles = [
        Arc::new(db.open().replay_cache()),
        Arc::new(db.open().replay_cache()),
    ];
    let barrier = Arc::new(Barrier::new(200));
    let threads: Vec<_> = (0..200)
        .map(|i| {
            let (h, barrier) = (handles[i % 2].clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                b(h.insert_if_absent("tpp-a", "jti-1", at(60), at(0))).unwrap()
            })
        })
        .collect();
    let wins = threads
        .into_iter()
        .map(|t| t.join().unwrap())
        .filter(|w| *w)
        .count();
    assert_eq!(wins, 1);
}

#[test]
fn replay_protection_survives_a_restart() {
    let db = TempDb::new("restart");
    assert!(b(db
        .open()
        .replay_cache()
        .insert_if_absent("tpp-a", "jti-1", at(60), at(0)))
    .unwrap());
    // a new process opens the same file
    assert!(!b(db
        .open()
        .replay_cache()
        .insert_if_absent("tpp-a", "jti-1", at(60), at(1)))
    .unwrap());
    assert!(b(db
        .open()
        .replay_cache()
        .insert_if_absent("tpp-a", "jti-2", at(60), at(1)))
    .unwrap());
}

#[test]
fn audit_chain_from_the_database_fails_after_a_byte_is_changed() {
    let db = TempDb::new("tamper");
    let log = db.open().audit_log();
    for i in 0..5 {
        let mut e = AuditEvent::new(AuditAction::ConsentAuthorised, at(i));
        e.client_id = Some(fapi_core::ClientId::try_from("tpp-a").unwrap());
        b(log.append(e)).unwrap();
    }
    let keys = fapi_core::jwk::KeySet::default();
    assert_eq!(
        verify_chain(&b(log.entries(1, 100)).unwrap(), &[], &keys, &[]).unwrap(),
        5
    );
    drop(log);
    // someone with database access edits one row: "tpp-a" -> "tpp-b"
    let conn = rusqlite::Connection::open(&db.0).unwrap();
    let changed = conn
        .execute(
            "UPDATE audit SET event = replace(event, 'tpp-a', 'tpp-b') WHERE seq = 3",
            [],
        )
        .unwrap();
    assert_eq!(changed, 1);
    drop(conn);
    let entries = b(db.open().audit_log().entries(1, 100)).unwrap();
    assert_eq!(
        verify_chain(&entries, &[], &keys, &[]).unwrap_err(),
        ChainError::Entry {
            seq: 3,
            problem: EntryProblem::Hash
        }
    );
}

mod consents {
    use super::*;
    use fapi_consent::consent::Actor;
    use fapi_consent::store::{apply_event, ApplyError};
    use fapi_consent::{Consent, ConsentEvent, ConsentStatus, ConsentStore, EventKind};

    fn aac(id: &str) -> Consent {
        fapi_consent::testing::sample_account_access(id, at(0)).unwrap()
    }

    fn pdc(id: &str) -> Consent {
        fapi_consent::testing::sample_domestic_payment(id, at(0)).unwrap()
    }

    #[test]
    fn consent_store_passes_the_kit() {
        let db = TempDb::new("consents");
        b(fapi_consent::testing::consent_store_conformance(
            &db.open().consents(),
            aac("aac-kit"),
            pdc("pdc-kit"),
        ))
        .unwrap();
    }

    #[test]
    fn consent_round_trips_through_the_file_and_a_restart() {
        let db = TempDb::new("consent-restart");
        let c = aac("aac-1");
        b(db.open().consents().create(c.clone())).unwrap();
        let ev = ConsentEvent {
            kind: EventKind::Authorise {
                customer_id: "alice".into(),
                accounts: vec!["acc-1".into()],
            },
            actor: Actor::Customer("alice".into()),
            reason: "ok".into(),
            at: at(1),
        };
        let authorised = b(apply_event(&db.open().consents(), c.id(), ev)).unwrap();
        let reread = b(db.open().consents().get(c.id())).unwrap().unwrap();
        assert_eq!(reread, authorised);
        assert_eq!(
            b(db.open().consents().list_for_customer("alice")).unwrap(),
            vec![authorised]
        );
    }

    /// Two handles (two bank processes), 100 threads each, revoke vs expire
    /// on one consent: one change wins, one consistent history.
    #[test]
    fn consent_race_across_two_database_handles() {
        let db = TempDb::new("consent-race");
        let c = aac("aac-race");
        let h = db.open().consents();
        b(h.create(c.clone())).unwrap();
        let ev = |kind| ConsentEvent {
            kind,
            actor: Actor::Bank,
            reason: "race".into(),
            at: at(1),
        };
        b(apply_event(
            &h,
            c.id(),
            ev(EventKind::Authorise {
                customer_id: "alice".into(),
                accounts: vec!["a".into()],
            }),
        ))
        .unwrap();
        let handles = [
            Arc::new(db.open().consents()),
            Arc::new(db.open().consents()),
        ];
        let barrier = Arc::new(Barrier::new(200));
        let id = Arc::new(c.id().clone());
        let threads: Vec<_> = (0..200)
            .map(|i| {
                let (h, barrier, id) = (handles[i % 2].clone(), barrier.clone(), id.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    let kind = if i % 3 == 0 {
                        EventKind::Expire
                    } else {
                        EventKind::Revoke
                    };
                    b(apply_event(&*h, &id, ev(kind)))
                })
            })
            .collect();
        let results: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 1);
        assert!(results
            .iter()
            .all(|r| r.is_ok() || matches!(r, Err(ApplyError::Transition(_)))));
        let stored = b(h.get(c.id())).unwrap().unwrap();
        assert!(matches!(
            stored.status(),
            ConsentStatus::Revoked | ConsentStatus::Expired
        ));
        assert_eq!((stored.version(), stored.history().len()), (3, 2));
    }

    #[test]
    fn tampered_consent_row_is_an_error_not_a_default() {
        let db = TempDb::new("consent-tamper");
        let c = aac("aac-t");
        b(db.open().consents().create(c.clone())).unwrap();
        let conn = rusqlite::Connection::open(&db.0).unwrap();
        // an invalid client id written straight into the row
        conn.execute(
            "UPDATE consents SET body = replace(body, '\"tpp-a\"', '\"\"')",
            [],
        )
        .unwrap();
        drop(conn);
        assert!(b(db.open().consents().get(c.id())).is_err());
    }
}

mod directory {
    use super::*;
    use crate::common::registration;
    use fapi_core::crypto::{default_provider, Algorithm};
    use fapi_core::{CertificateThumbprint, ClientId};
    use fapi_mtls_binding::directory::{
        ensure_registered_certificate, CertificateStatus, Standing, TppDirectory,
    };
    use fapi_mtls_binding::registry::{RegisterError, TppRegistry};
    use fapi_store_sqlite::SqliteDirectory;

    fn cert(n: u8) -> CertificateThumbprint {
        CertificateThumbprint::from_bytes([n; 32])
    }

    fn id(s: &str) -> ClientId {
        ClientId::try_from(s).unwrap()
    }

    fn register(db: &SqliteDirectory, client: &str, n: u8) -> bool {
        let key = default_provider()
            .generate_signing_key(Algorithm::Es256)
            .unwrap();
        match b(db.register_client(&id(client), registration(client, &*key), &cert(n), at(0))) {
            Ok(()) => true,
            Err(RegisterError::Revoked) => false,
            Err(e) => panic!("{e}"),
        }
    }

    /// The registry's guarantees, on a fresh file.
    #[test]
    fn directory_passes_the_registry_kit() {
        let tmp = TempDb::new("registry-kit");
        b(fapi_mtls_binding::testing::tpp_registry_conformance(
            &tmp.open().directory(),
            at(0),
        ))
        .unwrap();
    }

    /// A file written before clients could hold several certificates
    /// (`clients.certificate` only): opening it gives each client the
    /// certificate it was registered with, so its calls keep working and
    /// a certificate added later sits beside it.
    #[test]
    fn a_file_from_before_added_certificates_keeps_each_clients_certificate() {
        let tmp = TempDb::new("registry-migration");
        b(tmp
            .open()
            .directory()
            .register_client(&id("tpp-a"), "a".into(), &cert(1), at(0)))
        .unwrap();
        // the older layout: no client_certificates table
        let conn = rusqlite::Connection::open(&tmp.0).unwrap();
        conn.execute_batch("DROP TABLE client_certificates;")
            .unwrap();
        drop(conn);
        let db = tmp.open().directory();
        let s = b(db.standing(&id("tpp-a"), &cert(1))).unwrap();
        assert_eq!(
            (s.status, s.owner),
            (CertificateStatus::Active, Some(id("tpp-a")))
        );
        b(db.add_certificate(&id("tpp-a"), &cert(2), at(1))).unwrap();
        assert_eq!(
            b(db.certificate_owner(&cert(2))).unwrap(),
            Some(id("tpp-a"))
        );
        // opening it again copies nothing twice and loses nothing
        let db = tmp.open().directory();
        assert_eq!(
            b(db.certificate_owner(&cert(1))).unwrap(),
            Some(id("tpp-a"))
        );
        assert_eq!(
            b(db.certificate_owner(&cert(2))).unwrap(),
            Some(id("tpp-a"))
        );
    }

    /// The trait's own composition of the two single answers.
    fn composed(
        db: &SqliteDirectory,
        client: &ClientId,
        certificate: &CertificateThumbprint,
    ) -> Standing {
        Standing {
            status: b(db.status(client, certificate)).unwrap(),
            owner: b(db.certificate_owner(certificate)).unwrap(),
        }
    }

    /// The one-statement standing the bank reads on every call agrees with
    /// `status` + `certificate_owner` in every state a pair can be in, and
    /// the check built on it refuses what it must.
    #[test]
    fn one_read_standing_agrees_with_the_two_single_answers() {
        let tmp = TempDb::new("standing");
        let db = tmp.open().directory();
        assert!(register(&db, "tpp-a", 1));
        assert!(register(&db, "tpp-b", 2));
        let (a, b_) = (id("tpp-a"), id("tpp-b"));
        let case = |client: &ClientId, c: &CertificateThumbprint| {
            let one = b(db.standing(client, c)).unwrap();
            assert_eq!(one, composed(&db, client, c));
            (one, b(ensure_registered_certificate(client, c, &db)))
        };
        // its own certificate: active, owned, accepted
        let (s, r) = case(&a, &cert(1));
        assert_eq!(
            (s.status, s.owner),
            (CertificateStatus::Active, Some(a.clone()))
        );
        assert!(r.is_ok());
        // another client's certificate: owned by b, refused
        let (s, r) = case(&a, &cert(2));
        assert_eq!(s.owner, Some(b_.clone()));
        assert!(r.is_err());
        // an unregistered certificate: no owner, refused
        let (s, r) = case(&a, &cert(9));
        assert_eq!((s.status, s.owner), (CertificateStatus::Active, None));
        assert!(r.is_err());
        // an unknown client
        let (s, _) = case(&id("tpp-x"), &cert(1));
        assert_eq!(s.owner, Some(a.clone()));
        // a revoked certificate
        b(db.revoke_certificate(&cert(1), at(1))).unwrap();
        let (s, r) = case(&a, &cert(1));
        assert_eq!(s.status, CertificateStatus::CertificateRevoked);
        assert!(r.is_err());
        // a revoked TPP (takes precedence over the certificate)
        assert!(b(db.revoke_client(&a)).unwrap());
        let (s, r) = case(&a, &cert(1));
        assert_eq!(s.status, CertificateStatus::TppRevoked);
        assert!(r.is_err());
        // the other TPP is untouched
        let (s, r) = case(&b_, &cert(2));
        assert_eq!(
            (s.status, s.owner),
            (CertificateStatus::Active, Some(b_.clone()))
        );
        assert!(r.is_ok());
    }

    /// The registry's writes: a revoked client is not re-registered behind
    /// the operator's back (only a reinstatement makes it active), a
    /// certificate belongs to one client, and every write is seen by a
    /// second store on the file.
    #[test]
    fn registry_writes_keep_revocation_and_certificate_ownership() {
        let tmp = TempDb::new("registry");
        let (db, other) = (tmp.open().directory(), tmp.open().directory());
        let a = id("tpp-a");
        assert!(register(&db, "tpp-a", 1));
        let row = b(other.client(&a)).unwrap().unwrap();
        assert_eq!((row.certificate, row.revoked), (cert(1), false));
        // an update of an active client is written
        assert!(register(&db, "tpp-a", 3));
        assert_eq!(b(other.client(&a)).unwrap().unwrap().certificate, cert(3));
        // another client cannot take tpp-a's certificate
        let key = default_provider()
            .generate_signing_key(Algorithm::Es256)
            .unwrap();
        assert_eq!(
            b(db.register_client(&id("tpp-b"), registration("tpp-b", &*key), &cert(3), at(0))),
            Err(RegisterError::CertificateTaken)
        );
        // revoked: onboarding again writes nothing
        assert!(b(db.revoke_client(&a)).unwrap());
        assert!(!register(&db, "tpp-a", 4));
        assert!(b(other.client(&a)).unwrap().unwrap().revoked);
        assert_eq!(
            b(other.standing(&a, &cert(3))).unwrap().status,
            CertificateStatus::TppRevoked
        );
        // reinstated: active again, and updatable
        assert!(b(db.reinstate_client(&a)).unwrap());
        assert_eq!(
            b(other.standing(&a, &cert(3))).unwrap().status,
            CertificateStatus::Active
        );
        assert!(register(&db, "tpp-a", 4));
        // an unknown client is neither revoked nor reinstated
        assert!(!b(db.revoke_client(&id("tpp-x"))).unwrap());
        assert!(!b(db.reinstate_client(&id("tpp-x"))).unwrap());
        assert_eq!(b(other.client_ids()).unwrap(), vec![a]);
    }
}

/// A consent change and its audit entry commit together in the SQLite
/// store: a lost compare-and-swap leaves no entry (the composed default
/// writes the entry and a ChangeAbandoned after it), and of 64 threads
/// racing to revoke one consent the trail holds exactly the one change
/// that happened. A log of another database file is composed, not
/// mistaken for the store's own.
#[test]
fn a_consent_change_and_its_audit_entry_commit_together() {
    use fapi_consent::consent::{AccountAccessRequest, Actor};
    use fapi_consent::store::{apply_event_audited, create_audited};
    use fapi_consent::{Consent, ConsentEvent, ConsentStore, EventKind, InMemoryConsentStore};
    use fapi_core::{ClientId, ConsentId};
    let consent = || {
        Consent::account_access(
            ConsentId::try_from("aac-1").unwrap(),
            ClientId::try_from("tpp-a").unwrap(),
            &AccountAccessRequest {
                permissions: vec![Permission::ReadAccountsBasic],
                ..Default::default()
            },
            at(0),
        )
        .unwrap()
    };
    let authorise = ConsentEvent {
        kind: EventKind::Authorise {
            customer_id: "alice".into(),
            accounts: vec!["acc-1".into()],
        },
        actor: Actor::Customer("alice".into()),
        reason: "ok".into(),
        at: at(1),
    };
    let stale_swap = |store: &dyn ConsentStore, audit: &dyn AuditLog| {
        // version 1 was replaced by the authorisation: this swap loses
        let stale = consent()
            .apply(ConsentEvent {
                kind: EventKind::Reject,
                actor: Actor::Customer("alice".into()),
                reason: "late".into(),
                at: at(2),
            })
            .unwrap();
        let entry = AuditEvent::new(AuditAction::ConsentRejected, at(2));
        b(store.compare_and_swap_audited(audit, 1, stale, entry)).unwrap_err()
    };
    let actions = |audit: &dyn AuditLog| -> Vec<AuditAction> {
        b(audit.entries(1, 1000))
            .unwrap()
            .into_iter()
            .map(|e| e.event.action)
            .collect()
    };
    let id = ConsentId::try_from("aac-1").unwrap();

    // SQLite, the store's own trail (another handle on the same pool):
    // nothing for the lost swap
    let tmp = TempDb::new("audited-cas");
    let store = tmp.open();
    let (consents, log) = (store.consents(), store.audit_log());
    b(create_audited(&consents, &log, consent(), None, None)).unwrap();
    b(apply_event_audited(
        &consents,
        &log,
        &id,
        authorise.clone(),
        None,
    ))
    .unwrap();
    assert!(matches!(
        stale_swap(&consents, &log),
        fapi_consent::store::CasError::Conflict { current: 2 }
    ));
    assert_eq!(
        actions(&log),
        vec![AuditAction::ConsentCreated, AuditAction::ConsentAuthorised]
    );

    // the twin: a separate trail gets the entry, then ChangeAbandoned
    let memory = InMemoryConsentStore::new();
    let memory_log = fapi_consent::audit::InMemoryAuditLog::new();
    b(create_audited(&memory, &memory_log, consent(), None, None)).unwrap();
    b(apply_event_audited(
        &memory,
        &memory_log,
        &id,
        authorise.clone(),
        None,
    ))
    .unwrap();
    stale_swap(&memory, &memory_log);
    let composed = vec![
        AuditAction::ConsentCreated,
        AuditAction::ConsentAuthorised,
        AuditAction::ConsentRejected,
        AuditAction::ChangeAbandoned,
    ];
    assert_eq!(actions(&memory_log), composed);

    // a SQLite log in another file is not this store's own: composed
    let elsewhere = TempDb::new("audited-cas-other");
    let (consents2, other_log) = (TempDb::new("audited-cas-2"), elsewhere.open().audit_log());
    let consents2_store = consents2.open().consents();
    b(create_audited(
        &consents2_store,
        &other_log,
        consent(),
        None,
        None,
    ))
    .unwrap();
    b(apply_event_audited(
        &consents2_store,
        &other_log,
        &id,
        authorise,
        None,
    ))
    .unwrap();
    stale_swap(&consents2_store, &other_log);
    assert_eq!(actions(&other_log), composed);

    // 64 threads race to revoke: one change, one entry
    let (consents, log) = (Arc::new(consents), Arc::new(log));
    let barrier = Arc::new(Barrier::new(64));
    let threads: Vec<_> = (0..64)
        .map(|i| {
            let (consents, log, barrier, id) =
                (consents.clone(), log.clone(), barrier.clone(), id.clone());
            std::thread::spawn(move || {
                barrier.wait();
                let revoke = ConsentEvent {
                    kind: EventKind::Revoke,
                    actor: Actor::Customer("alice".into()),
                    reason: format!("revoke {i}"),
                    at: at(3),
                };
                b(apply_event_audited(&*consents, &*log, &id, revoke, None)).is_ok()
            })
        })
        .collect();
    let won = threads
        .into_iter()
        .map(|t| t.join().unwrap())
        .filter(|ok| *ok)
        .count();
    assert_eq!(won, 1);
    assert_eq!(
        actions(&*log),
        vec![
            AuditAction::ConsentCreated,
            AuditAction::ConsentAuthorised,
            AuditAction::ConsentRevoked
        ]
    );
    let entries = b(log.entries(1, 1000)).unwrap();
    verify_chain(&entries, &[], &fapi_core::jwk::KeySet::default(), &[]).unwrap();
}

/// The resource pipeline's three live reads in one SQLite statement give
/// exactly what the three adapters give one after the other, in every
/// state: the token revoked or not; the certificate unregistered,
/// registered to the caller or to another client, revoked, or its TPP
/// revoked; the consent absent from the token, unknown, or stored.
#[test]
fn the_one_statement_live_read_equals_the_three_reads() {
    use fapi_consent::consent::AccountAccessRequest;
    use fapi_consent::{Consent, ConsentStore};
    use fapi_core::revocation::RevokedTokenStore;
    use fapi_core::{CertificateThumbprint, ClientId, ConsentId, JwtId};
    use fapi_mtls_binding::directory::TppDirectory;
    use fapi_mtls_binding::registry::TppRegistry;

    let client = ClientId::try_from("tpp-a").unwrap();
    let cert = CertificateThumbprint::of_der(b"cert-a");
    let stored = ConsentId::try_from("aac-1").unwrap();
    let unknown = ConsentId::try_from("aac-404").unwrap();
    let jti = JwtId::try_from("at-1").unwrap();
    let mut checked = 0;
    for directory in [
        "unregistered",
        "registered",
        "another client's",
        "certificate revoked",
        "tpp revoked",
    ] {
        for revoked in [false, true] {
            let tmp = TempDb::new("live");
            let db = tmp.open();
            let register = |owner: &str| {
                let owner = ClientId::try_from(owner).unwrap();
                b(db.directory()
                    .register_client(&owner, "{}".into(), &cert, at(0)))
                .unwrap();
            };
            match directory {
                "registered" => register("tpp-a"),
                "another client's" => register("tpp-b"),
                "certificate revoked" => {
                    register("tpp-a");
                    b(db.directory().revoke_certificate(&cert, at(0))).unwrap();
                }
                "tpp revoked" => {
                    register("tpp-a");
                    assert!(b(db.directory().revoke_client(&client)).unwrap());
                }
                _ => {}
            }
            if revoked {
                b(db.revoked_tokens()
                    .revoke(std::slice::from_ref(&jti), at(0)))
                .unwrap();
            }
            let request = AccountAccessRequest {
                permissions: vec![Permission::ReadAccountsDetail],
                ..AccountAccessRequest::default()
            };
            b(db.consents().create(
                Consent::account_access(stored.clone(), client.clone(), &request, at(0)).unwrap(),
            ))
            .unwrap();
            for consent in [None, Some(&unknown), Some(&stored)] {
                let one = b(db.live_reads().read(&jti, &client, &cert, consent)).unwrap();
                assert_eq!(
                    one.revoked,
                    b(db.revoked_tokens().is_revoked(&jti)).unwrap()
                );
                assert_eq!(
                    one.standing,
                    b(db.directory().standing(&client, &cert)).unwrap()
                );
                let consent_now = match consent {
                    Some(id) => b(db.consents().get(id)).unwrap(),
                    None => None,
                };
                assert_eq!(
                    one.consent, consent_now,
                    "{directory}, {revoked}, {consent:?}"
                );
                assert_eq!(one.revoked, revoked);
                assert_eq!(one.consent.is_some(), consent == Some(&stored));
                checked += 1;
            }
        }
    }
    assert_eq!(checked, 30);
}
