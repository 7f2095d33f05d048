//! The client side of SCRAM-SHA-256 (RFC 5802, RFC 7677), with or without
//! channel binding to the TLS session (`-PLUS`, `tls-exporter`, RFC 9266):
//! the password never crosses the wire, the server proves it knows it too,
//! and with the binding a man in the middle who terminates TLS cannot relay
//! the exchange. The nonce comes from the caller (the engine has no random
//! source); the iteration count a server may ask for is bounded, since a
//! hostile one could otherwise make the client spin.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use zeroize::{Zeroize, Zeroizing};

use crate::sasl::{Credentials, Secret};

type HmacSha256 = Hmac<Sha256>;

/// The most PBKDF2 iterations a server may ask for (OWASP's figure for
/// PBKDF2-HMAC-SHA256); common servers use 4096.
pub(crate) const MAX_ITERATIONS: u32 = 600_000;

/// What the GS2 header says about channel binding (RFC 5802 7).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Binding<'a> {
    /// `n`: no binding on this connection (no TLS 1.3 exporter).
    None,
    /// `y`: the client could bind but the server did not offer `-PLUS`; a
    /// server that did offer it sees the downgrade.
    NotOffered,
    /// `p=tls-exporter` with the exporter's 32 bytes (SCRAM-SHA-256-PLUS).
    TlsExporter(&'a [u8]),
}

impl Binding<'_> {
    fn gs2_header(self) -> &'static str {
        match self {
            Self::None => "n,,",
            Self::NotOffered => "y,,",
            Self::TlsExporter(_) => "p=tls-exporter,,",
        }
    }

    /// The `c=` attribute's bytes: the header, and the binding data.
    fn channel_binding(self) -> Vec<u8> {
        let mut bytes = self.gs2_header().as_bytes().to_vec();
        if let Self::TlsExporter(data) = self {
            bytes.extend_from_slice(data);
        }
        bytes
    }
}

/// Why a SCRAM exchange cannot go on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ScramError {
    /// The server's first message is not `r=..,s=..,i=..`, or its nonce does
    /// not extend ours, or it asks for an extension we do not know.
    BadServerFirst,
    /// More iterations than [`MAX_ITERATIONS`].
    TooManyIterations,
    /// The server's signature is wrong: it does not know the password.
    ServerNotVerified,
    /// The server reported an error (`e=`).
    ServerError,
}

/// A SCRAM-SHA-256 exchange in progress.
pub(crate) struct ScramClient {
    client_first_bare: String,
    /// The `c=` value: GS2 header and binding data, base64.
    channel_binding: String,
    nonce: String,
    password: Secret,
    /// What the server's final message must prove, once the proof is sent.
    server_signature: Option<Zeroizing<Vec<u8>>>,
}

impl std::fmt::Debug for ScramClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScramClient").finish_non_exhaustive()
    }
}

impl ScramClient {
    /// Starts the exchange with `nonce` (printable, no comma) and `binding`;
    /// returns the initial response (base64 of the client's first message).
    pub(crate) fn start(
        credentials: &Credentials,
        nonce: &str,
        binding: Binding<'_>,
    ) -> (Self, Secret) {
        let user = credentials
            .username()
            .replace('=', "=3D")
            .replace(',', "=2C");
        let client_first_bare = format!("n={user},r={nonce}");
        let initial = BASE64.encode(format!("{}{client_first_bare}", binding.gs2_header()));
        let client = Self {
            client_first_bare,
            channel_binding: BASE64.encode(binding.channel_binding()),
            nonce: nonce.to_owned(),
            password: credentials.secret().clone(),
            server_signature: None,
        };
        (client, Secret::new(initial))
    }

    /// The answer to the server's first message (a base64 challenge): the
    /// client's final message with its proof, base64.
    pub(crate) fn answer(&mut self, challenge: &str) -> Result<Secret, ScramError> {
        let server_first = decode(challenge).ok_or(ScramError::BadServerFirst)?;
        let mut nonce = None;
        let mut salt = None;
        let mut iterations = None;
        for (index, attribute) in server_first.split(',').enumerate() {
            match attribute.split_at_checked(2) {
                Some(("r=", value)) if index == 0 => nonce = Some(value),
                Some(("s=", value)) => salt = BASE64.decode(value).ok(),
                Some(("i=", value)) => iterations = value.parse::<u32>().ok(),
                // RFC 5802 5.1: a mandatory extension we do not know.
                Some(("m=", _)) => return Err(ScramError::BadServerFirst),
                _ => {}
            }
        }
        let (Some(nonce), Some(salt), Some(iterations)) = (nonce, salt, iterations) else {
            return Err(ScramError::BadServerFirst);
        };
        if !nonce.starts_with(&self.nonce) || nonce.len() == self.nonce.len() || iterations == 0 {
            return Err(ScramError::BadServerFirst);
        }
        if iterations > MAX_ITERATIONS {
            return Err(ScramError::TooManyIterations);
        }
        let mut salted = Zeroizing::new([0u8; 32]);
        pbkdf2::pbkdf2_hmac::<Sha256>(
            self.password.expose().as_bytes(),
            &salt,
            iterations,
            salted.as_mut(),
        );
        let client_key = Zeroizing::new(hmac(salted.as_ref(), b"Client Key"));
        let stored_key = Sha256::digest(client_key.as_slice());
        let without_proof = format!("c={},r={nonce}", self.channel_binding);
        let auth_message = format!("{},{server_first},{without_proof}", self.client_first_bare);
        let client_signature = hmac(&stored_key, auth_message.as_bytes());
        let mut proof: Vec<u8> = client_key
            .iter()
            .zip(&client_signature)
            .map(|(key, signature)| key ^ signature)
            .collect();
        let server_key = Zeroizing::new(hmac(salted.as_ref(), b"Server Key"));
        self.server_signature = Some(Zeroizing::new(hmac(&server_key, auth_message.as_bytes())));
        let final_message = Zeroizing::new(format!("{without_proof},p={}", BASE64.encode(&proof)));
        proof.zeroize();
        Ok(Secret::new(BASE64.encode(final_message.as_bytes())))
    }

    /// Checks the server's final message (`v=` with its signature).
    pub(crate) fn verify(&self, challenge: &str) -> Result<(), ScramError> {
        let server_final = decode(challenge).ok_or(ScramError::ServerNotVerified)?;
        if server_final.starts_with("e=") {
            return Err(ScramError::ServerError);
        }
        let given = server_final
            .strip_prefix("v=")
            .and_then(|value| BASE64.decode(value.split(',').next()?).ok())
            .ok_or(ScramError::ServerNotVerified)?;
        let expected = self
            .server_signature
            .as_ref()
            .ok_or(ScramError::ServerNotVerified)?;
        // Compared in constant time.
        let differ = given.len() != expected.len()
            || given
                .iter()
                .zip(expected.iter())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                != 0;
        if differ {
            return Err(ScramError::ServerNotVerified);
        }
        Ok(())
    }
}

fn hmac(key: &[u8], message: &[u8]) -> Vec<u8> {
    let Ok(mut mac) = HmacSha256::new_from_slice(key) else {
        // HMAC takes keys of any length.
        return Vec::new();
    };
    mac.update(message);
    mac.finalize().into_bytes().to_vec()
}

fn decode(challenge: &str) -> Option<String> {
    String::from_utf8(BASE64.decode(challenge.trim()).ok()?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7677 3: the SCRAM-SHA-256 example exchange, byte for byte.
    #[test]
    fn rfc7677_example() {
        let credentials = Credentials::new("user", "pencil");
        let (mut client, initial) =
            ScramClient::start(&credentials, "rOprNGfwEbeRWgbNEkqO", Binding::None);
        assert_eq!(
            decode(initial.expose()).unwrap(),
            "n,,n=user,r=rOprNGfwEbeRWgbNEkqO"
        );
        let server_first = "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
                            s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
        let answer = client.answer(&BASE64.encode(server_first)).unwrap();
        assert_eq!(
            decode(answer.expose()).unwrap(),
            "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
             p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
        );
        let server_final = "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=";
        assert_eq!(client.verify(&BASE64.encode(server_final)), Ok(()));
        let forged = "v=AAAATRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=";
        assert_eq!(
            client.verify(&BASE64.encode(forged)),
            Err(ScramError::ServerNotVerified)
        );
        assert_eq!(
            client.verify(&BASE64.encode("e=invalid-proof")),
            Err(ScramError::ServerError)
        );
    }

    #[test]
    fn hostile_server_first_messages_are_refused() {
        let credentials = Credentials::new("user", "pencil");
        let refused = |server_first: &str| {
            let (mut client, _) = ScramClient::start(&credentials, "abc", Binding::None);
            client.answer(&BASE64.encode(server_first)).unwrap_err()
        };
        // Not our nonce, or not extended.
        assert_eq!(
            refused("r=xyz123,s=c2FsdA==,i=4096"),
            ScramError::BadServerFirst
        );
        assert_eq!(
            refused("r=abc,s=c2FsdA==,i=4096"),
            ScramError::BadServerFirst
        );
        // Missing or broken attributes; an unknown mandatory extension.
        assert_eq!(refused("r=abcd,i=4096"), ScramError::BadServerFirst);
        assert_eq!(refused("r=abcd,s=c2FsdA==,i=0"), ScramError::BadServerFirst);
        assert_eq!(
            refused("m=x,r=abcd,s=c2FsdA==,i=1"),
            ScramError::BadServerFirst
        );
        assert_eq!(refused("not base64 inside"), ScramError::BadServerFirst);
        // A count meant to make the client spin.
        assert_eq!(
            refused("r=abcd,s=c2FsdA==,i=4294967295"),
            ScramError::TooManyIterations
        );
    }

    #[test]
    fn user_names_are_escaped() {
        let (_, initial) =
            ScramClient::start(&Credentials::new("a,b=c", "p"), "n0nce", Binding::None);
        assert_eq!(decode(initial.expose()).unwrap(), "n,,n=a=2Cb=3Dc,r=n0nce");
    }
}
