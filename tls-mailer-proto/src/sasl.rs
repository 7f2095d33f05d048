//! SASL for AUTH (RFC 4954): PLAIN (RFC 4616) and LOGIN, and credentials
//! that never show up in logs or `Debug` output.

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
    password: Secret,
}

impl Credentials {
    /// Credentials for AUTH PLAIN or LOGIN.
    pub fn new(username: impl Into<String>, password: impl Into<String>) -> Self {
        Self {
            username: username.into(),
            password: Secret::new(password.into()),
        }
    }

    /// The user name.
    pub fn username(&self) -> &str {
        &self.username
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
}

impl Mechanism {
    /// Every mechanism the engine speaks, best first.
    pub const ALL: [Self; 2] = [Self::Plain, Self::Login];

    /// The first of `preferred` that the server offers.
    pub fn choose(offered: &[String], preferred: &[Self]) -> Option<Self> {
        preferred.iter().copied().find(|mechanism| {
            offered
                .iter()
                .any(|name| name.eq_ignore_ascii_case(mechanism.name()))
        })
    }

    /// The mechanism's name on the wire.
    pub fn name(self) -> &'static str {
        match self {
            Self::Plain => "PLAIN",
            Self::Login => "LOGIN",
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
        assert_eq!(choose(&["XOAUTH2"], all), None);
        assert_eq!(
            choose(&["PLAIN", "LOGIN"], &[Mechanism::Login]),
            Some(Mechanism::Login)
        );
        assert_eq!(choose(&["PLAIN"], &[Mechanism::Login]), None);
    }
}
