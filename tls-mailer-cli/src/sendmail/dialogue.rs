//! `sendmail -bs`: an SMTP dialogue with the caller on stdin and stdout
//! (Symfony Mailer's default transport), each message relayed to the
//! account's server when the caller's final dot comes, and the real
//! server's verdict given back as the reply to that dot.
//!
//! The dialogue's grammar is [`ServerSession`] in the engine; this file
//! only moves bytes and relays. Decisions:
//!
//! - **Relay at the end of data, all recipients or none.** A
//!   [`Connection`] sends whole messages, so the caller's RCPTs are checked
//!   here (syntax, bounds) and the real server sees them with the message.
//!   The client uses [`RecipientPolicy::AllOrNone`]: if the real server
//!   refuses any recipient, nothing is sent and the caller's reply to the
//!   final dot carries that refusal's code and text (a permanent one when
//!   there is one). So a `250` always means every recipient got it, and a
//!   refusal means none did: the caller can retry or bounce the whole
//!   message without duplicating it.
//! - **Connect lazily, at the first message, and keep the connection**
//!   for the rest of the dialogue (reconnecting when the server closed it).
//!   A dialogue that sends nothing (a caller checking the greeting) costs
//!   no connection and no password lookup, and the greeting does not wait
//!   on the network. The cost: a server that is down is found out after the
//!   caller sent the body; the caller then gets a `451` and still has the
//!   message.
//! - **`421` is never passed on**: it would tell the caller that *this*
//!   dialogue is closing. A real server's 421 becomes `451`.
//! - **A configuration that cannot work** (no account, no host) still
//!   answers: a `554` greeting with the reason and `503` to everything but
//!   QUIT (RFC 5321 3.1), so the caller shows why.

use std::fs::File;
use std::io::{self, Read, Seek, Write};

use tls_mailer::proto::ReplyCode;
use tls_mailer::proto::server::{ServerEvent, ServerSession};
use tls_mailer::{BodyInfo, Client, Connection, Envelope, Error, RawMessage, Reply};

use crate::exit::{self, Failure};

/// The name in the greeting and EHLO reply.
const HOSTNAME: &str = "localhost";

/// Runs the dialogue on stdin and stdout. `relay` is the client for the
/// account's server, or why there is none. The exit code: 0 when every
/// message was relayed (or none was given), else that of the last one
/// that was not, as `send` would exit; 74 when the input ended inside a
/// message (which was not relayed).
pub fn run(relay: Result<Client, Failure>, full_name: Option<String>) -> Result<u8, Failure> {
    let (mut session, mut relay, mut code) = match relay {
        Ok(client) => (
            ServerSession::new(HOSTNAME),
            Some(Relay {
                client,
                connection: None,
                full_name,
            }),
            0,
        ),
        Err(failure) => {
            eprintln!("tls-mailer: {failure}");
            (
                ServerSession::refusing(HOSTNAME, &failure.to_string()),
                None,
                exit::code(&failure),
            )
        }
    };
    let mut stdin = io::stdin().lock();
    let mut stdout = io::stdout().lock();
    let mut buffer = vec![0u8; 16 * 1024];
    let mut spool: Option<File> = None;
    let mut wire = Vec::new();
    let closed_inside_message = 'dialogue: loop {
        // Replies first: a pipelining caller waits for them.
        write_replies(&mut session, &mut wire, &mut stdout)?;
        if session.is_closed() {
            break false;
        }
        let read = match stdin.read(&mut buffer) {
            Ok(0) => break session.in_data(),
            Ok(read) => read,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(error) => {
                return Err(Failure::NoInput(format!(
                    "cannot read the SMTP dialogue from stdin: {error}"
                )));
            }
        };
        let mut input = &buffer[..read];
        while !input.is_empty() {
            let taken = session.handle_input(input);
            input = &input[taken..];
            while let Some(event) = session.poll_event() {
                match event {
                    ServerEvent::Data(bytes) => {
                        let file = match &mut spool {
                            Some(file) => file,
                            None => spool.insert(tempfile::tempfile().map_err(spool_failure)?),
                        };
                        file.write_all(bytes).map_err(spool_failure)?;
                    }
                    ServerEvent::MessageEnd => {
                        let file = match spool.take() {
                            Some(file) => file,
                            None => tempfile::tempfile().map_err(spool_failure)?,
                        };
                        let sender = session.sender().unwrap_or_default().to_owned();
                        let (verdict, failed) = match &mut relay {
                            Some(relay) => relay.relay(
                                &sender,
                                session.recipients(),
                                session.eight_bit(),
                                file,
                            ),
                            None => (reply(554, "5.3.5 no mail service"), None),
                        };
                        if let Some(failed) = failed {
                            code = failed;
                        }
                        let _ = session.finish_message(&verdict);
                    }
                    ServerEvent::Quit => {
                        write_replies(&mut session, &mut wire, &mut stdout)?;
                        break 'dialogue false;
                    }
                }
            }
            if taken == 0 {
                // Replies wait to be written before more input is taken.
                write_replies(&mut session, &mut wire, &mut stdout)?;
            }
        }
    };
    if let Some(relay) = relay
        && let Some(connection) = relay.connection
    {
        // The messages are decided; a failed QUIT changes nothing.
        let _ = connection.quit();
    }
    if closed_inside_message {
        eprintln!(
            "tls-mailer: the caller closed the dialogue inside a message; that message was \
             not relayed"
        );
        return Ok(exit::IO_ERROR);
    }
    Ok(code)
}

/// The account's server, connected at the first message.
struct Relay {
    client: Client,
    connection: Option<Connection>,
    full_name: Option<String>,
}

impl Relay {
    /// Relays one message; the reply for the caller, and the exit code
    /// `send` would have given when it was not relayed.
    fn relay(
        &mut self,
        sender: &str,
        recipients: &[String],
        eight_bit: bool,
        mut file: File,
    ) -> (Reply, Option<u8>) {
        let prepared = (|| {
            let envelope = Envelope::new(sender, recipients)
                .map_err(|error| Failure::BadMessage(error.to_string()))?;
            let size = file.stream_position().map_err(spool_failure)?;
            file.rewind().map_err(spool_failure)?;
            let raw = RawMessage::read(file, Some(size))
                .map_err(|error| Failure::BadMessage(error.to_string()))?
                .keep_bcc(false);
            // Exact: the header section as sent (Bcc removed), the body.
            let size = raw.size().unwrap_or(size);
            let (reader, added) =
                super::message::with_from(raw, Some(sender), self.full_name.as_deref())?;
            Ok::<_, Failure>((envelope, reader, size + added))
        })();
        let (envelope, mut reader, size) = match prepared {
            Ok(prepared) => prepared,
            Err(failure) => {
                eprintln!("tls-mailer: message from <{sender}> not relayed: {failure}");
                let text = format!("5.6.0 not relayed: {failure}");
                return (reply(554, &text), Some(exit::code(&failure)));
            }
        };
        let info = BodyInfo {
            size: Some(size),
            eight_bit: eight_bit.then_some(true),
            binary: false,
        };
        let outcome = match &mut self.connection {
            Some(connection) if connection.is_open() => {
                connection.send_reader(&envelope, &mut reader, info)
            }
            _ => match self.client.connect() {
                Ok(connection) => {
                    self.connection
                        .insert(connection)
                        .send_reader(&envelope, &mut reader, info)
                }
                Err(error) => Err(error),
            },
        };
        match outcome {
            Ok(report) => (report.reply, None),
            Err(error) => {
                eprintln!("tls-mailer: message from <{sender}> not relayed: {error}");
                let verdict = verdict(&error);
                (verdict, Some(exit::code(&Failure::Send(error))))
            }
        }
    }
}

/// What the caller is told when the relay failed: the real server's own
/// refusal of the sender, a recipient or the message, else a reply that
/// says why in our words (451 when trying again later may help).
fn verdict(error: &Error) -> Reply {
    match error {
        Error::Rejected(rejection)
            if rejection.command.is_mail_transaction() && rejection.reply.code().value() != 421 =>
        {
            rejection.reply.clone()
        }
        Error::RecipientsRejected(outcomes) => {
            let refused = outcomes
                .iter()
                .filter(|outcome| !outcome.accepted())
                .min_by_key(|outcome| outcome.reply.is_transient());
            match refused {
                Some(outcome) if outcome.reply.code().value() != 421 => outcome.reply.clone(),
                _ => reply(451, &format!("4.3.0 not relayed, try again later: {error}")),
            }
        }
        _ if error.is_transient() => {
            reply(451, &format!("4.3.0 not relayed, try again later: {error}"))
        }
        _ => reply(554, &format!("5.3.0 not relayed: {error}")),
    }
}

fn reply(code: u16, text: &str) -> Reply {
    let code = ReplyCode::new(code).expect("the codes given here are reply codes");
    Reply::new(code, vec![text.to_owned()])
}

fn spool_failure(error: io::Error) -> Failure {
    Failure::Output {
        target: "a temporary file for the message".into(),
        error,
    }
}

/// Writes every reply the session has ready (through `wire`) to the caller.
fn write_replies(
    session: &mut ServerSession,
    wire: &mut Vec<u8>,
    stdout: &mut impl Write,
) -> Result<(), Failure> {
    while session.poll_transmit(wire) {}
    if wire.is_empty() {
        return Ok(());
    }
    stdout
        .write_all(wire)
        .and_then(|()| stdout.flush())
        .map_err(output_failure)?;
    wire.clear();
    Ok(())
}

fn output_failure(error: io::Error) -> Failure {
    Failure::Output {
        target: "the SMTP dialogue on stdout".into(),
        error,
    }
}
