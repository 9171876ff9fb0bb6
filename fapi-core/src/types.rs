//! Newtypes for protocol values ([oauth2-rs] style): each checks its rules in
//! `TryFrom`, compares exactly (never normalised), and secrets redact their
//! `Debug`, compare in constant time and are wiped on drop.
//!
//! [oauth2-rs]: https://docs.rs/oauth2

use core::fmt;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::encoding::{b64url_decode, b64url_encode};

/// Why a protocol value was rejected.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{what} is invalid: {why}")]
pub struct InvalidValue {
    /// Which value.
    pub what: &'static str,
    /// Which rule it broke.
    pub why: &'static str,
}

fn invalid(what: &'static str, why: &'static str) -> InvalidValue {
    InvalidValue { what, why }
}

/// Printable ASCII without controls (RFC 6749 VSCHAR, %x20-7E).
fn is_vschar(s: &str) -> bool {
    s.bytes().all(|b| (0x20..=0x7e).contains(&b))
}

fn bounded_vschar(what: &'static str, s: &str, max: usize) -> Result<(), InvalidValue> {
    if s.is_empty() {
        return Err(invalid(what, "must not be empty"));
    }
    if s.len() > max {
        return Err(invalid(what, "is too long"));
    }
    if !is_vschar(s) {
        return Err(invalid(what, "must be printable ASCII"));
    }
    Ok(())
}

macro_rules! string_value {
    ($(#[$doc:meta])* $name:ident, $what:literal, $check:expr) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub(crate) String);

        impl $name {
            /// The value as sent on the wire.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = InvalidValue;
            fn try_from(s: String) -> Result<Self, InvalidValue> {
                let check: fn(&'static str, &str) -> Result<(), InvalidValue> = $check;
                check($what, &s)?;
                Ok(Self(s))
            }
        }

        impl TryFrom<&str> for $name {
            type Error = InvalidValue;
            fn try_from(s: &str) -> Result<Self, InvalidValue> {
                Self::try_from(s.to_owned())
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }

        /// Deserializing checks the same rules as `TryFrom`: a stored value
        /// is never trusted more than a fresh one.
        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                Self::try_from(s).map_err(serde::de::Error::custom)
            }
        }
    };
}

string_value!(
    /// An OAuth client identifier ([RFC 6749 §2.2]).
    ///
    /// [RFC 6749 §2.2]: https://www.rfc-editor.org/rfc/rfc6749#section-2.2
    ClientId, "client_id", |w, s| bounded_vschar(w, s, 256)
);

string_value!(
    /// The resource server an access token is for (its `aud`,
    /// [RFC 9068 §3]): printable ASCII, compared exactly.
    ///
    /// [RFC 9068 §3]: https://www.rfc-editor.org/rfc/rfc9068#section-3
    TokenAudience, "aud", |w, s| bounded_vschar(w, s, 2048)
);

string_value!(
    /// An authorization server's issuer identifier ([RFC 8414 §2]): an
    /// `https` URL without query or fragment, compared exactly.
    ///
    /// [RFC 8414 §2]: https://www.rfc-editor.org/rfc/rfc8414#section-2
    Issuer, "issuer", |w, s| {
        bounded_vschar(w, s, 2048)?;
        let url = url::Url::parse(s).map_err(|_| invalid(w, "must be an absolute URL"))?;
        if url.scheme() != "https" {
            return Err(invalid(w, "must use https"));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(invalid(w, "must not have a query or fragment"));
        }
        Ok(())
    }
);

string_value!(
    /// A redirect URI ([RFC 6749 §3.1.2], FAPI-RULES "redirect_uri"):
    /// absolute, `https`, or `http` to a loopback IP literal for native
    /// apps; no fragment. Compared as exact strings, never normalised.
    ///
    /// [RFC 6749 §3.1.2]: https://www.rfc-editor.org/rfc/rfc6749#section-3.1.2
    RedirectUri, "redirect_uri", |w, s| {
        bounded_vschar(w, s, 2048)?;
        let url = url::Url::parse(s).map_err(|_| invalid(w, "must be an absolute URL"))?;
        if url.fragment().is_some() {
            return Err(invalid(w, "must not have a fragment"));
        }
        match (url.scheme(), url.host()) {
            ("https", Some(_)) => Ok(()),
            ("http", Some(url::Host::Ipv4(ip))) if ip.is_loopback() => Ok(()),
            ("http", Some(url::Host::Ipv6(ip))) if ip.is_loopback() => Ok(()),
            _ => Err(invalid(w, "must use https (http only to a loopback IP literal)")),
        }
    }
);

string_value!(
    /// The `state` parameter, returned verbatim ([RFC 6749 §4.1.1]).
    ///
    /// [RFC 6749 §4.1.1]: https://www.rfc-editor.org/rfc/rfc6749#section-4.1.1
    State, "state", |w, s| bounded_vschar(w, s, 1024)
);

string_value!(
    /// The OpenID `nonce`. Values of 64 characters and more work; a value is
    /// never truncated (FAPI-RULES "nonce").
    Nonce, "nonce", |w, s| bounded_vschar(w, s, 1024)
);

string_value!(
    /// A consent identifier (UK Open Banking `ConsentId`, 1-128 characters).
    ConsentId, "consent_id", |w, s| {
        bounded_vschar(w, s, 128)?;
        if s.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b)) {
            Ok(())
        } else {
            Err(invalid(w, "may contain only letters, digits and - _ . :"))
        }
    }
);

string_value!(
    /// A JWT ID (`jti`, [RFC 7519 §4.1.7]).
    ///
    /// [RFC 7519 §4.1.7]: https://www.rfc-editor.org/rfc/rfc7519#section-4.1.7
    JwtId, "jti", |w, s| bounded_vschar(w, s, 256)
);

string_value!(
    /// A PKCE `code_challenge` for method `S256` ([RFC 7636 §4.2]): exactly
    /// 43 base64url characters, the encoding of a SHA-256 digest.
    ///
    /// [RFC 7636 §4.2]: https://www.rfc-editor.org/rfc/rfc7636#section-4.2
    CodeChallenge, "code_challenge", |w, s| {
        if s.len() != 43 {
            return Err(invalid(w, "must be 43 characters (base64url of a SHA-256 digest)"));
        }
        b64url_decode(s, 43).map(|_| ()).map_err(|_| invalid(w, "must be base64url"))
    }
);

/// A space-delimited `scope` ([RFC 6749 §3.3]): distinct tokens of
/// NQCHAR (%x21 / %x23-5B / %x5D-7E).
///
/// [RFC 6749 §3.3]: https://www.rfc-editor.org/rfc/rfc6749#section-3.3
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Scope(Vec<String>);

impl Scope {
    /// Whether the scope contains `token` exactly.
    pub fn contains(&self, token: &str) -> bool {
        self.0.iter().any(|t| t == token)
    }
    /// The tokens in the order given.
    pub fn tokens(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(String::as_str)
    }
}

impl TryFrom<&str> for Scope {
    type Error = InvalidValue;
    fn try_from(s: &str) -> Result<Self, InvalidValue> {
        const W: &str = "scope";
        bounded_vschar(W, s, 2048)?;
        let mut tokens: Vec<String> = Vec::new();
        for t in s.split(' ') {
            if t.is_empty() {
                return Err(invalid(W, "tokens must be separated by single spaces"));
            }
            if !t
                .bytes()
                .all(|b| b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b))
            {
                return Err(invalid(
                    W,
                    "contains a character not allowed in a scope token",
                ));
            }
            if tokens.iter().any(|x| x == t) {
                return Err(invalid(W, "repeats a token"));
            }
            tokens.push(t.to_owned());
        }
        Ok(Self(tokens))
    }
}

impl serde::Serialize for Scope {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> serde::Deserialize<'de> for Scope {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::try_from(s.as_str()).map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.join(" "))
    }
}

/// A PKCE `code_verifier` ([RFC 7636 §4.1]): 43-128 unreserved characters.
///
/// A secret: `Debug` is redacted, it is not `Clone`, equality is constant
/// time, and it is wiped on drop.
///
/// [RFC 7636 §4.1]: https://www.rfc-editor.org/rfc/rfc7636#section-4.1
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct CodeVerifier(String);

impl CodeVerifier {
    /// A fresh verifier: 32 bytes from the OS CSPRNG, base64url (43 chars).
    ///
    /// # Errors
    /// [`crate::random::RandomError`] if the OS CSPRNG fails.
    pub fn generate() -> Result<Self, crate::random::RandomError> {
        crate::random::token(32).map(Self)
    }

    /// The secret value, for sending to the token endpoint.
    pub fn secret(&self) -> &str {
        &self.0
    }

    /// The S256 challenge: base64url(SHA-256(verifier)).
    pub fn challenge(&self) -> CodeChallenge {
        CodeChallenge(b64url_encode(&Sha256::digest(self.0.as_bytes())))
    }
}

impl TryFrom<String> for CodeVerifier {
    type Error = InvalidValue;
    fn try_from(s: String) -> Result<Self, InvalidValue> {
        const W: &str = "code_verifier";
        let s = Self(s); // wiped on every path
        if !(43..=128).contains(&s.0.len()) {
            return Err(invalid(W, "must be 43 to 128 characters"));
        }
        if !s
            .0
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
        {
            return Err(invalid(W, "may contain only unreserved characters"));
        }
        Ok(s)
    }
}

impl fmt::Debug for CodeVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CodeVerifier([redacted])")
    }
}

impl PartialEq for CodeVerifier {
    fn eq(&self, other: &Self) -> bool {
        self.0.as_bytes().ct_eq(other.0.as_bytes()).into()
    }
}
impl Eq for CodeVerifier {}

/// The SHA-256 thumbprint of a client certificate's DER
/// (`x5t#S256`, [RFC 8705 §3.1]). Equality is constant time.
///
/// [RFC 8705 §3.1]: https://www.rfc-editor.org/rfc/rfc8705#section-3.1
#[derive(Clone, Copy)]
pub struct CertificateThumbprint([u8; 32]);

impl CertificateThumbprint {
    /// The thumbprint of a DER-encoded certificate. Never pass PEM text.
    pub fn of_der(der: &[u8]) -> Self {
        Self(Sha256::digest(der).into())
    }
    /// From the raw digest.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }
    /// Parses the base64url form found in `cnf.x5t#S256`.
    ///
    /// # Errors
    /// [`InvalidValue`] unless 43 strict base64url characters.
    pub fn from_b64url(s: &str) -> Result<Self, InvalidValue> {
        let bytes = b64url_decode(s, 43).map_err(|_| invalid("x5t#S256", "must be base64url"))?;
        bytes
            .try_into()
            .map(Self)
            .map_err(|_| invalid("x5t#S256", "must be a SHA-256 digest"))
    }
    /// base64url without padding.
    pub fn to_b64url(&self) -> String {
        b64url_encode(&self.0)
    }
    /// The raw digest.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl PartialEq for CertificateThumbprint {
    fn eq(&self, other: &Self) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}
impl Eq for CertificateThumbprint {}

impl core::hash::Hash for CertificateThumbprint {
    fn hash<H: core::hash::Hasher>(&self, state: &mut H) {
        // consistent with the constant-time `PartialEq`: equal values hash equally
        self.0.hash(state);
    }
}

impl fmt::Debug for CertificateThumbprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CertificateThumbprint({})", self.to_b64url())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deserializing_checks_the_rules() {
        let ok: ClientId = serde_json::from_str("\"tpp-a\"").unwrap();
        assert_eq!(serde_json::to_string(&ok).unwrap(), "\"tpp-a\"");
        assert!(serde_json::from_str::<ClientId>("\"\"").is_err());
        assert!(serde_json::from_str::<RedirectUri>("\"http://evil.example/cb\"").is_err());
        assert!(serde_json::from_str::<ConsentId>("\"a b\"").is_err());
        let scope: Scope = serde_json::from_str("\"openid accounts\"").unwrap();
        assert!(scope.contains("accounts"));
        assert!(serde_json::from_str::<Scope>("\"a  b\"").is_err());
    }

    #[test]
    fn token_audience_is_printable_bounded_and_exact() {
        let a = TokenAudience::try_from("https://api.bank.example").unwrap();
        assert_eq!(a.as_str(), "https://api.bank.example");
        for bad in ["", "api\u{7f}", "api\u{e9}", &"a".repeat(2049)] {
            assert!(TokenAudience::try_from(bad).is_err(), "{bad:?}");
        }
        assert!(TokenAudience::try_from("a".repeat(2048)).is_ok());
    }

    #[test]
    fn redirect_uri_rules() {
        assert!(RedirectUri::try_from("https://tpp.example/cb").is_ok());
        assert!(RedirectUri::try_from("http://127.0.0.1:8080/cb").is_ok());
        assert!(RedirectUri::try_from("http://[::1]/cb").is_ok());
        assert!(RedirectUri::try_from("http://tpp.example/cb").is_err());
        assert!(RedirectUri::try_from("http://localhost/cb").is_err());
        assert!(RedirectUri::try_from("https://tpp.example/cb#frag").is_err());
        assert!(RedirectUri::try_from("/relative").is_err());
        // exact compare: no normalisation of case, port or trailing slash
        let a = RedirectUri::try_from("https://tpp.example/cb").unwrap();
        assert_ne!(a, RedirectUri::try_from("https://TPP.example/cb").unwrap());
        assert_ne!(
            a,
            RedirectUri::try_from("https://tpp.example:443/cb").unwrap()
        );
        assert_ne!(a, RedirectUri::try_from("https://tpp.example/cb/").unwrap());
    }

    #[test]
    fn nonce_of_64_chars_and_more_is_kept_whole() {
        let long = "n".repeat(200);
        assert_eq!(Nonce::try_from(long.as_str()).unwrap().as_str(), long);
        assert!(Nonce::try_from("").is_err());
        assert!(Nonce::try_from("a\u{7f}").is_err());
    }

    #[test]
    fn scope_rules() {
        let s = Scope::try_from("openid accounts").unwrap();
        assert!(s.contains("openid") && s.contains("accounts") && !s.contains("payments"));
        assert!(Scope::try_from("openid  accounts").is_err());
        assert!(Scope::try_from("openid openid").is_err());
        assert!(Scope::try_from("a\"b").is_err());
        assert_eq!(s.to_string(), "openid accounts");
    }

    #[test]
    fn issuer_rules() {
        assert!(Issuer::try_from("https://bank.example").is_ok());
        assert!(Issuer::try_from("http://bank.example").is_err());
        assert!(Issuer::try_from("https://bank.example?x=1").is_err());
    }

    #[test]
    fn code_verifier_is_secret() {
        let v = CodeVerifier::generate().unwrap();
        assert_eq!(v.secret().len(), 43);
        assert_eq!(format!("{v:?}"), "CodeVerifier([redacted])");
        assert!(CodeVerifier::try_from("a".repeat(42)).is_err());
        assert!(CodeVerifier::try_from("a".repeat(129)).is_err());
        assert!(CodeVerifier::try_from(format!("{}+", "a".repeat(43))).is_err());
        assert!(CodeVerifier::try_from("a".repeat(128)).is_ok());
    }

    #[test]
    fn code_challenge_shape() {
        assert!(CodeChallenge::try_from("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM").is_ok());
        assert!(CodeChallenge::try_from("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-c").is_err());
        assert!(CodeChallenge::try_from("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-c=").is_err());
    }
}
