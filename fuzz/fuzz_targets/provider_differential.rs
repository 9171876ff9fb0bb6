//! The two crypto providers must agree on every input: arbitrary message
//! and signature bytes against the same public key, for each algorithm,
//! and arbitrary tokens through the whole JWS verifier. Any disagreement
//! in accept/reject is a crash.
#![no_main]
use std::sync::{Arc, OnceLock};

use fapi_core::crypto::aws_lc::AwsLcProvider;
use fapi_core::crypto::rustcrypto::RustCryptoProvider;
use fapi_core::crypto::{Algorithm, CryptoProvider, VerifyingKey};
use fapi_core::jose::{ExpectedType, JwsPolicy, UnverifiedJws};
use fapi_core::jwk::KeySet;
use fapi_fuzz::*;
use libfuzzer_sys::fuzz_target;

struct Pair {
    aws: Arc<dyn VerifyingKey>,
    rc: Arc<dyn VerifyingKey>,
    aws_set: KeySet,
    rc_set: KeySet,
    /// A genuine signature over [`MESSAGE`].
    good: Vec<u8>,
}

const MESSAGE: &[u8] = b"eyJhbGciOiJFUzI1NiJ9.eyJpc3MiOiJhIn0";

fn pairs() -> &'static Vec<Pair> {
    static P: OnceLock<Vec<Pair>> = OnceLock::new();
    P.get_or_init(|| {
        [Algorithm::Es256, Algorithm::Ps256, Algorithm::EdDsa]
            .into_iter()
            .map(|alg| {
                let key = AwsLcProvider.generate_signing_key(alg).unwrap();
                let set = |p: &dyn CryptoProvider| {
                    KeySet::from_jwks(&jwks(&*key, "k"), p, &PROFILE.key_policy()).unwrap()
                };
                Pair {
                    aws: AwsLcProvider.verifying_key(key.public_key()).unwrap(),
                    rc: RustCryptoProvider.verifying_key(key.public_key()).unwrap(),
                    aws_set: set(&AwsLcProvider),
                    rc_set: set(&RustCryptoProvider),
                    good: key.sign(MESSAGE).unwrap(),
                }
            })
            .collect()
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let pair = &pairs()[usize::from(selector) % 3];
    // arbitrary message || signature
    let cut = rest
        .len()
        .min(usize::from(rest.first().copied().unwrap_or(0)));
    let (message, signature) = rest.split_at(cut);
    assert_eq!(
        pair.aws.verify(message, signature).is_ok(),
        pair.rc.verify(message, signature).is_ok(),
        "providers disagree on a raw signature"
    );
    // a genuine signature with bytes changed where the input says
    let mut sig = pair.good.clone();
    for pair_of in rest.chunks(2).take(4) {
        if let [at, value] = pair_of {
            let i = usize::from(*at) % sig.len();
            sig[i] ^= *value;
        }
    }
    assert_eq!(
        pair.aws.verify(MESSAGE, &sig).is_ok(),
        pair.rc.verify(MESSAGE, &sig).is_ok(),
        "providers disagree on a modified genuine signature"
    );
    // whole tokens through the JWS verifier with each provider's key set
    if let Ok(s) = std::str::from_utf8(rest) {
        let policy = JwsPolicy::new(PROFILE.algorithms(), ExpectedType::JwtOrAbsent);
        let a = UnverifiedJws::parse(s)
            .and_then(|j| j.verify(&pair.aws_set, &policy))
            .is_ok();
        let r = UnverifiedJws::parse(s)
            .and_then(|j| j.verify(&pair.rc_set, &policy))
            .is_ok();
        assert_eq!(a, r, "providers disagree on a token");
    }
});
