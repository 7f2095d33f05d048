//! SASL for AUTH (RFC 4954): PLAIN (RFC 4616), LOGIN and CRAM-MD5 (RFC 2195,
//! for old servers) with a password,
//! OAUTHBEARER (RFC 7628) and XOAUTH2 with an OAuth 2.0 access token, and
//! credentials that never show up in logs or `Debug` output.

use std::fmt;

use zeroize::{Zeroize, Zeroizing};

/// A string that must not be logged: its `Debug` prints `<redacted>`, and
/// its memory is wiped when it is dropped.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Drop for Secret {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

/// Dropping a `Secret` wipes its bytes (see the `Drop` impl above).
impl zeroize::ZeroizeOnDrop for Secret {}

/// Dropping `Credentials` wipes the password (it is a [`Secret`]).
impl zeroize::ZeroizeOnDrop for Credentials {}

impl Secret {
    /// Wraps a secret.
    pub fn new(secret: String) -> Self {
        Self(secret)
    }

    /// The secret itself; call only where it goes on the wire.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// A user name and password for AUTH.
///
/// ```
/// use tls_mailer_proto::Credentials;
/// let credentials = Credentials::new("alice", "hunter2");
/// assert!(!format!("{credentials:?}").contains("hunter2"));
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    username: String,
    /// The password, or the access token.
    password: Secret,
    kind: SecretKind,
}

/// What the secret of [`Credentials`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SecretKind {
    Password,
    BearerToken,
}

impl Credentials {
    /// Credentials for AUTH PLAIN or LOGIN.
    pub fn new(username: impl Into<String>, password: impl Into<String>) -> Self {
        Self {
            username: username.into(),
            password: Secret::new(password.into()),
            kind: SecretKind::Password,
        }
    }

    /// An OAuth 2.0 access token for `username`, for AUTH OAUTHBEARER
    /// (RFC 7628) or XOAUTH2 (what Gmail and Microsoft 365 call it). A
    /// token is never sent with PLAIN or LOGIN, nor a password with these.
    ///
    /// ```
    /// use tls_mailer_proto::Credentials;
    ///
    /// let credentials = Credentials::bearer_token("alice@example.org", "ya29.a0Af");
    /// assert!(credentials.is_bearer_token());
    /// assert!(!format!("{credentials:?}").contains("ya29"));
    /// ```
    pub fn bearer_token(username: impl Into<String>, token: impl Into<String>) -> Self {
        Self {
            username: username.into(),
            password: Secret::new(token.into()),
            kind: SecretKind::BearerToken,
        }
    }

    /// The secret is an OAuth 2.0 access token.
    pub fn is_bearer_token(&self) -> bool {
        self.kind == SecretKind::BearerToken
    }

    /// Why the token cannot go on the wire, if it cannot: a bearer token is
    /// base64-like text (RFC 6750 2.1), and the user name must not hold the
    /// separator the mechanisms use (`^A`).
    pub(crate) fn bearer_problem(&self) -> Option<&'static str> {
        let token = self.password.0.as_bytes();
        let token_ok = !token.is_empty()
            && token
                .iter()
                .all(|&byte| byte.is_ascii_alphanumeric() || b"-._~+/=".contains(&byte));
        if !token_ok {
            return Some(
                "an OAuth 2.0 access token is letters, digits and -._~+/= only (RFC 6750 2.1): \
                 check what the token command printed",
            );
        }
        if self.username.chars().any(char::is_control) {
            return Some("the user name of an OAuth 2.0 login must not hold a control character");
        }
        None
    }

    /// The OAUTHBEARER initial response (RFC 7628 3.1): the GS2 header with
    /// the user as authorization identity, then `auth=Bearer <token>`.
    pub(crate) fn oauthbearer_response(&self) -> Secret {
        let user = self.username.replace('=', "=3D").replace(',', "=2C");
        let raw = Zeroizing::new(format!(
            "n,a={user},\x01auth=Bearer {}\x01\x01",
            self.password.0
        ));
        Secret::new(base64(raw.as_bytes()))
    }

    /// The XOAUTH2 initial response: `user=<user>^Aauth=Bearer <token>^A^A`.
    pub(crate) fn xoauth2_response(&self) -> Secret {
        let raw = Zeroizing::new(format!(
            "user={}\x01auth=Bearer {}\x01\x01",
            self.username, self.password.0
        ));
        Secret::new(base64(raw.as_bytes()))
    }

    /// The user name.
    pub fn username(&self) -> &str {
        &self.username
    }

    /// The password (or token), for the mechanisms that compute with it.
    pub(crate) fn secret(&self) -> &Secret {
        &self.password
    }

    /// Neither the user name nor the password holds a NUL, which AUTH PLAIN
    /// uses as its separator (RFC 4616 2).
    pub fn fits_plain(&self) -> bool {
        !self.username.contains('\0') && !self.password.0.contains('\0')
    }

    /// The PLAIN initial response: base64 of `\0user\0password`; `None`
    /// when a NUL in either would change the meaning.
    pub(crate) fn plain_response(&self) -> Option<Secret> {
        if !self.fits_plain() {
            return None;
        }
        let mut raw = Zeroizing::new(Vec::with_capacity(
            self.username.len() + self.password.0.len() + 2,
        ));
        raw.push(0);
        raw.extend_from_slice(self.username.as_bytes());
        raw.push(0);
        raw.extend_from_slice(self.password.0.as_bytes());
        Some(Secret::new(base64(&raw)))
    }

    /// The CRAM-MD5 answer (RFC 2195) to a decoded `challenge`: base64 of
    /// the user name, a space and the lowercase hex HMAC-MD5 of the
    /// challenge keyed with the password.
    pub(crate) fn cram_md5_response(&self, challenge: &[u8]) -> Secret {
        use hmac::{Hmac, Mac};
        let mut mac = Hmac::<md5::Md5>::new_from_slice(self.password.0.as_bytes())
            .expect("HMAC takes a key of any length");
        mac.update(challenge);
        let digest = mac.finalize().into_bytes();
        let mut raw = Zeroizing::new(Vec::with_capacity(self.username.len() + 33));
        raw.extend_from_slice(self.username.as_bytes());
        raw.push(b' ');
        for byte in digest {
            raw.extend_from_slice(format!("{byte:02x}").as_bytes());
        }
        Secret::new(base64(&raw))
    }

    /// The LOGIN answers: base64 of the user name, then of the password.
    pub(crate) fn login_responses(&self) -> [Secret; 2] {
        [
            Secret::new(base64(self.username.as_bytes())),
            Secret::new(base64(self.password.0.as_bytes())),
        ]
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &self.password)
            .finish()
    }
}

/// The mechanisms the engine speaks, in order of preference.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Mechanism {
    /// AUTH PLAIN with an initial response: one round trip.
    Plain,
    /// AUTH LOGIN: user name and password in answer to two challenges.
    Login,
    /// AUTH SCRAM-SHA-256-PLUS: SCRAM bound to the TLS session (RFC 5802
    /// channel binding, `tls-exporter` of RFC 9266), so a man in the middle
    /// holding a certificate for the host still cannot relay the login.
    /// Used over TLS 1.3 when the driver gives the session the exporter
    /// ([`crate::Session::set_channel_binding`]).
    ScramSha256Plus,
    /// AUTH SCRAM-SHA-256 (RFC 7677): the password never crosses the wire
    /// and the server proves it knows it; three round trips. Used when the
    /// driver gives the session a nonce ([`crate::SessionConfig::sasl_nonce`]).
    ScramSha256,
    /// AUTH OAUTHBEARER (RFC 7628) with an access token: one round trip.
    OAuthBearer,
    /// AUTH CRAM-MD5 (RFC 2195), for old servers that offer nothing
    /// better: the password does not cross the wire, but MD5 is weak and
    /// the server must keep the password itself; two round trips. Last in
    /// [`Mechanism::ALL`].
    CramMd5,
    /// AUTH XOAUTH2 (Google's, also Microsoft's) with an access token: one
    /// round trip.
    XOAuth2,
}

impl Mechanism {
    /// Every mechanism the engine speaks, best first; each kind of
    /// credentials takes only its own ([`Mechanism::takes`]).
    pub const ALL: [Self; 7] = [
        Self::Plain,
        Self::Login,
        Self::ScramSha256Plus,
        Self::ScramSha256,
        Self::OAuthBearer,
        Self::XOAuth2,
        Self::CramMd5,
    ];

    /// The first of `preferred` that the server offers.
    pub fn choose(offered: &[String], preferred: &[Self]) -> Option<Self> {
        preferred.iter().copied().find(|mechanism| {
            offered
                .iter()
                .any(|name| name.eq_ignore_ascii_case(mechanism.name()))
        })
    }

    /// Whether these credentials go with this mechanism: a password with
    /// PLAIN, LOGIN, SCRAM-SHA-256 and CRAM-MD5, a token with OAUTHBEARER
    /// and XOAUTH2.
    pub fn takes(self, credentials: &Credentials) -> bool {
        let token = matches!(self, Self::OAuthBearer | Self::XOAuth2);
        token == credentials.is_bearer_token()
    }

    /// The mechanism's name on the wire.
    pub fn name(self) -> &'static str {
        match self {
            Self::Plain => "PLAIN",
            Self::Login => "LOGIN",
            Self::ScramSha256Plus => "SCRAM-SHA-256-PLUS",
            Self::ScramSha256 => "SCRAM-SHA-256",
            Self::OAuthBearer => "OAUTHBEARER",
            Self::XOAuth2 => "XOAUTH2",
            Self::CramMd5 => "CRAM-MD5",
        }
    }
}

/// Standard base64 with padding (RFC 4648 4); small enough not to need a crate.
fn base64(input: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let bytes = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let group = u32::from_be_bytes([0, bytes[0], bytes[1], bytes[2]]);
        for index in 0..4 {
            if index <= chunk.len() {
                let sextet = (group >> (18 - 6 * index)) & 0x3f;
                out.push(char::from(ALPHABET[sextet as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_vectors() {
        // RFC 4648 10.
        for (input, output) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(input.as_bytes()), output);
        }
    }

    #[test]
    fn plain_and_login_responses() {
        let credentials = Credentials::new("tim", "tanstaaftanstaaf");
        // RFC 4616 4 example, without an authorization identity.
        assert_eq!(
            credentials.plain_response().unwrap().expose(),
            "AHRpbQB0YW5zdGFhZnRhbnN0YWFm"
        );
        // RFC 4616 2: NUL separates the fields, so it cannot be inside one.
        assert!(
            Credentials::new("tim\0admin", "x")
                .plain_response()
                .is_none()
        );
        assert!(
            Credentials::new("tim", "pass\0word")
                .plain_response()
                .is_none()
        );
        let [user, password] = credentials.login_responses();
        assert_eq!(user.expose(), "dGlt");
        assert_eq!(password.expose(), "dGFuc3RhYWZ0YW5zdGFhZg==");
    }

    /// RFC 2195 2's example exchange.
    #[test]
    fn cram_md5_response_matches_rfc_2195() {
        let credentials = Credentials::new("tim", "tanstaaftanstaaf");
        let response = credentials.cram_md5_response(b"<1896.697170952@postoffice.reston.mci.net>");
        assert_eq!(
            response.expose(),
            "dGltIGI5MTNhNjAyYzdlZGE3YTQ5NWI0ZTZlNzMzNGQzODkw"
        );
    }

    #[test]
    fn bearer_token_responses() {
        let credentials = Credentials::bearer_token(
            "user@example.com",
            "ya29.vF9dft4qmTc2Nvb3RlckBhdHRhdmlzdGEuY29tCg",
        );
        // The XOAUTH2 form Google documents, and RFC 7628 3.1's layout.
        let decoded = |secret: Secret| {
            let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
            let mut bits = 0u32;
            let mut count = 0;
            let mut out = Vec::new();
            for byte in secret.expose().bytes().filter(|&b| b != b'=') {
                let value = alphabet.iter().position(|&a| a == byte).unwrap() as u32;
                bits = bits << 6 | value;
                count += 6;
                if count >= 8 {
                    count -= 8;
                    out.push((bits >> count) as u8);
                }
            }
            String::from_utf8(out).unwrap()
        };
        assert_eq!(
            decoded(credentials.xoauth2_response()),
            "user=user@example.com\x01auth=Bearer ya29.vF9dft4qmTc2Nvb3RlckBhdHRhdmlzdGEuY29tCg\x01\x01"
        );
        assert_eq!(
            decoded(Credentials::bearer_token("a,b=c", "t").oauthbearer_response()),
            "n,a=a=2Cb=3Dc,\x01auth=Bearer t\x01\x01"
        );
        assert!(credentials.bearer_problem().is_none());
        assert!(
            Credentials::bearer_token("u", "two words")
                .bearer_problem()
                .is_some()
        );
        assert!(
            Credentials::bearer_token("u", "")
                .bearer_problem()
                .is_some()
        );
        assert!(
            Credentials::bearer_token("u\x01", "t")
                .bearer_problem()
                .is_some()
        );
    }

    #[test]
    fn secrets_are_wiped_when_dropped() {
        fn wiped_on_drop<T: zeroize::ZeroizeOnDrop>() {}
        wiped_on_drop::<Secret>();
        wiped_on_drop::<Credentials>();
        // The wipe itself: what drop runs, observed before the memory is freed.
        let mut secret = Secret::new("hunter2".to_owned());
        secret.0.zeroize();
        assert_eq!(secret.expose(), "");
    }

    #[test]
    fn mechanism_preference() {
        let offered = |list: &[&str]| list.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let all = &Mechanism::ALL;
        let choose =
            |list: &[&str], preferred: &[Mechanism]| Mechanism::choose(&offered(list), preferred);
        assert_eq!(choose(&["LOGIN", "plain"], all), Some(Mechanism::Plain));
        assert_eq!(choose(&["CRAM-MD5", "LOGIN"], all), Some(Mechanism::Login));
        assert_eq!(choose(&["CRAM-MD5"], all), Some(Mechanism::CramMd5));
        assert_eq!(choose(&["XOAUTH2"], all), Some(Mechanism::XOAuth2));
        let password = Credentials::new("a", "b");
        let token = Credentials::bearer_token("a", "t0ken");
        assert!(Mechanism::Plain.takes(&password) && !Mechanism::Plain.takes(&token));
        assert!(Mechanism::XOAuth2.takes(&token) && !Mechanism::OAuthBearer.takes(&password));
        assert_eq!(
            choose(&["PLAIN", "LOGIN"], &[Mechanism::Login]),
            Some(Mechanism::Login)
        );
        assert_eq!(choose(&["PLAIN"], &[Mechanism::Login]), None);
    }
}
