//! After EHLO: STARTTLS when required, then AUTH (PLAIN, LOGIN, SCRAM-SHA-256
//! or CRAM-MD5 with a password, OAUTHBEARER or XOAUTH2 with a token), then idle.

use crate::capabilities::Capabilities;
use crate::command::{Command, CommandKind};
use crate::error::{InvalidInput, ProtocolError, Rejection, SessionError, Unsupported};
use crate::pipeline::{AuthStep, Expect};
use crate::reply::Reply;
use crate::sasl::{Mechanism, Secret};
use crate::scram::{Binding, ScramClient, ScramError};

use super::{Security, Session};

impl Session {
    pub(super) fn after_ehlo(&mut self, capabilities: Capabilities) -> Result<(), SessionError> {
        let starttls_needed = self.config.security == Security::StartTls && !self.tls_active;
        let starttls = capabilities.starttls;
        let mechanisms = capabilities.auth_mechanisms.clone();
        self.capabilities = Some(capabilities);
        if starttls_needed {
            if !starttls {
                return Err(Unsupported::StartTls.into());
            }
            self.send(Command::StartTls, Expect::StartTls);
            return Ok(());
        }
        let Some(credentials) = self.config.credentials.clone() else {
            self.become_ready();
            return Ok(());
        };
        if !self.tls_active && !self.config.allow_plaintext_auth {
            return Err(SessionError::CredentialsWithoutTls);
        }
        let nonce = self.config.sasl_nonce.clone();
        let binding = self.channel_binding.filter(|_| self.tls_active);
        let usable: Vec<Mechanism> = (self.config.auth_mechanisms.iter().copied())
            .filter(|mechanism| mechanism.takes(&credentials))
            .filter(|mechanism| match mechanism {
                Mechanism::ScramSha256 => nonce.is_some(),
                Mechanism::ScramSha256Plus => nonce.is_some() && binding.is_some(),
                _ => true,
            })
            .collect();
        match Mechanism::choose(&mechanisms, &usable) {
            Some(Mechanism::Plain) => {
                let response = credentials.plain_response().ok_or_else(|| {
                    SessionError::InvalidInput(InvalidInput {
                        what: "credentials",
                        input: credentials.username().escape_debug().to_string(),
                        reason: "AUTH PLAIN cannot carry a NUL in the user name or password \
                                 (RFC 4616)",
                    })
                })?;
                self.send(
                    Command::Auth {
                        mechanism: Mechanism::Plain.name(),
                        initial_response: Some(response),
                    },
                    Expect::Auth(AuthStep::Plain),
                );
            }
            Some(Mechanism::Login) => self.send(
                Command::Auth {
                    mechanism: Mechanism::Login.name(),
                    initial_response: None,
                },
                Expect::Auth(AuthStep::LoginStart),
            ),
            Some(Mechanism::CramMd5) => self.send(
                Command::Auth {
                    mechanism: Mechanism::CramMd5.name(),
                    initial_response: None,
                },
                Expect::Auth(AuthStep::CramChallenge),
            ),
            Some(mechanism @ (Mechanism::ScramSha256 | Mechanism::ScramSha256Plus)) => {
                let nonce = nonce.unwrap_or_default();
                let offered = |name: &str| mechanisms.iter().any(|m| m.eq_ignore_ascii_case(name));
                let binding = match (mechanism, &binding) {
                    (Mechanism::ScramSha256Plus, Some(data)) => Binding::TlsExporter(data),
                    // RFC 5802 6: "y" only when the server did not offer
                    // -PLUS; if it did (and -PLUS was not allowed here), "n".
                    (_, Some(_)) if !offered(Mechanism::ScramSha256Plus.name()) => {
                        Binding::NotOffered
                    }
                    _ => Binding::None,
                };
                let (scram, initial) = ScramClient::start(&credentials, &nonce, binding);
                self.scram = Some(scram);
                self.send(
                    Command::Auth {
                        mechanism: mechanism.name(),
                        initial_response: Some(initial),
                    },
                    Expect::Auth(AuthStep::ScramFirst),
                );
            }
            Some(mechanism @ (Mechanism::OAuthBearer | Mechanism::XOAuth2)) => {
                if let Some(reason) = credentials.bearer_problem() {
                    return Err(SessionError::InvalidInput(InvalidInput {
                        what: "credentials",
                        input: credentials.username().escape_debug().to_string(),
                        reason,
                    }));
                }
                let response = if mechanism == Mechanism::OAuthBearer {
                    credentials.oauthbearer_response()
                } else {
                    credentials.xoauth2_response()
                };
                self.send(
                    Command::Auth {
                        mechanism: mechanism.name(),
                        initial_response: Some(response),
                    },
                    Expect::Auth(AuthStep::Token),
                );
            }
            None => {
                return Err(Unsupported::Auth {
                    offered: mechanisms,
                }
                .into());
            }
        }
        Ok(())
    }

    pub(super) fn handle_auth_reply(
        &mut self,
        step: AuthStep,
        reply: Reply,
    ) -> Result<(), SessionError> {
        let code = reply.code();
        if code.is_transient_negative() || code.is_permanent_negative() {
            return Err(SessionError::Rejected(Rejection {
                command: CommandKind::Auth,
                reply,
            }));
        }
        match (step, code.value()) {
            (AuthStep::Plain | AuthStep::LoginPassword | AuthStep::Token, 235)
            | (AuthStep::ScramDone | AuthStep::CramAnswer, 235) => {
                self.scram = None;
                self.become_ready();
            }
            (AuthStep::ScramFirst, 334) => {
                let answer = self
                    .scram
                    .as_mut()
                    .map(|scram| scram.answer(reply.lines().first().map_or("", String::as_str)));
                match answer {
                    Some(Ok(proof)) => self.send(
                        Command::AuthResponse(proof),
                        Expect::Auth(AuthStep::ScramFinal),
                    ),
                    Some(Err(error)) => return Err(scram_failure(error, reply)),
                    None => return Err(scram_failure(ScramError::BadServerFirst, reply)),
                }
            }
            (AuthStep::ScramFinal, 334) => {
                let text = reply.lines().first().map_or("", String::as_str);
                let verified = self.scram.take().map(|scram| scram.verify(text));
                match verified {
                    Some(Ok(())) => self.send(
                        Command::AuthResponse(Secret::new(String::new())),
                        Expect::Auth(AuthStep::ScramDone),
                    ),
                    Some(Err(error)) => return Err(scram_failure(error, reply)),
                    None => return Err(scram_failure(ScramError::ServerNotVerified, reply)),
                }
            }
            // The token was refused: the challenge is the server's JSON
            // error; an empty answer ends the exchange, and the refusal
            // (535) follows (RFC 7628 3.2.3).
            (AuthStep::Token, 334) => self.send(
                Command::AuthResponse(Secret::new(String::new())),
                Expect::Auth(AuthStep::TokenRefused),
            ),
            (AuthStep::CramChallenge, 334) => {
                use base64::Engine as _;
                let text = reply.lines().first().map_or("", String::as_str);
                let challenge = base64::engine::general_purpose::STANDARD
                    .decode(text.trim())
                    .ok()
                    .filter(|challenge| !challenge.is_empty());
                let (Some(challenge), Some(credentials)) = (challenge, &self.config.credentials)
                else {
                    return Err(ProtocolError::UnexpectedReply {
                        command: CommandKind::Auth,
                        reply,
                    }
                    .into());
                };
                let answer = credentials.cram_md5_response(&challenge);
                self.send(
                    Command::AuthResponse(answer),
                    Expect::Auth(AuthStep::CramAnswer),
                );
            }
            (AuthStep::LoginStart, 334) => {
                let [user, _] = self.login_responses();
                self.send(
                    Command::AuthResponse(user),
                    Expect::Auth(AuthStep::LoginUser),
                );
            }
            (AuthStep::LoginUser, 334) => {
                let [_, password] = self.login_responses();
                self.send(
                    Command::AuthResponse(password),
                    Expect::Auth(AuthStep::LoginPassword),
                );
            }
            _ => {
                return Err(ProtocolError::UnexpectedReply {
                    command: CommandKind::Auth,
                    reply,
                }
                .into());
            }
        }
        Ok(())
    }

    /// The LOGIN answers; AUTH LOGIN is only sent with credentials.
    fn login_responses(&self) -> [Secret; 2] {
        match &self.config.credentials {
            Some(credentials) => credentials.login_responses(),
            None => [Secret::new(String::new()), Secret::new(String::new())],
        }
    }
}

/// A SCRAM exchange that cannot go on. A server whose signature is wrong
/// does not know the password (not the server it claims to be, or a
/// broken one); the others break the protocol.
fn scram_failure(error: ScramError, reply: Reply) -> SessionError {
    match error {
        ScramError::ServerNotVerified => ProtocolError::ScramServerNotVerified.into(),
        ScramError::TooManyIterations => ProtocolError::ScramIterations {
            limit: crate::scram::MAX_ITERATIONS,
        }
        .into(),
        ScramError::ServerError | ScramError::BadServerFirst => ProtocolError::UnexpectedReply {
            command: CommandKind::Auth,
            reply,
        }
        .into(),
    }
}
