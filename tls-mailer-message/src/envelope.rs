//! The envelope rules shared by [`Email`](crate::Email) and
//! [`RawMessage`](crate::RawMessage), so a message gets the same MAIL FROM
//! and RCPT TO whichever way it is read.

use tls_mailer_proto::{Address, Envelope, ReversePath};

use crate::error::MessageError;

/// The envelope sender (RFC 5322 3.6.2): the Sender address if there is
/// one, else the From address when there is exactly one.
pub(crate) fn envelope_sender<'a, T>(
    sender: Option<&'a T>,
    from: &'a [T],
) -> Result<&'a T, MessageError> {
    match (sender, from) {
        (Some(sender), _) => Ok(sender),
        (None, [single]) => Ok(single),
        (None, []) => Err(MessageError::NoFrom),
        (None, _) => Err(MessageError::MultipleFromWithoutSender),
    }
}

/// One address per mailbox, first occurrence kept, by the rule of
/// [`Envelope`] itself ([`Address::same_mailbox`]).
pub(crate) fn unique_recipients(addresses: impl IntoIterator<Item = Address>) -> Vec<Address> {
    Envelope::from_addresses(ReversePath::Null, addresses)
        .map(|envelope| envelope.recipients().to_vec())
        .unwrap_or_default()
}

/// The engine's envelope; [`MessageError::NoRecipients`] without recipient.
pub(crate) fn envelope(
    sender: &Address,
    recipients: impl IntoIterator<Item = Address>,
) -> Result<Envelope, MessageError> {
    Envelope::from_addresses(ReversePath::Address(sender.clone()), recipients)
        .map_err(|_| MessageError::NoRecipients)
}
