//! A raw message from stdin or a file. The library's [`RawMessage`] reads
//! it (header section, envelope, Bcc removal, streaming); this module only
//! opens the source and words the errors for the command line.

use std::fs::File;
use std::io::{self, IsTerminal, Read};
use std::path::Path;

use tls_mailer_message::{MessageError, RawMessage};

use crate::exit::Failure;

/// Opens the message file, or stdin when `path` is `None`, and reads its
/// header section.
pub fn open(path: Option<&Path>) -> Result<RawMessage<Box<dyn Read>>, Failure> {
    let (source, size): (Box<dyn Read>, Option<u64>) = match path {
        Some(path) => {
            let file = File::open(path).map_err(|error| {
                Failure::NoInput(format!(
                    "cannot open the message file {}: {error}",
                    path.display()
                ))
            })?;
            let size = file.metadata().ok().map(|metadata| metadata.len());
            (Box::new(file), size)
        }
        None => {
            if io::stdin().is_terminal() {
                eprintln!(
                    "tls-mailer: reading the message from the terminal; end it with Ctrl-D \
                     (or give --message FILE)"
                );
            }
            (Box::new(io::stdin()), None)
        }
    };
    RawMessage::read(source, size).map_err(|error| match error {
        MessageError::Io { source, .. } => Failure::NoInput(match path {
            Some(path) => format!("cannot read the message file {}: {source}", path.display()),
            None => format!("cannot read the message from stdin: {source}"),
        }),
        other => Failure::BadMessage(other.to_string()),
    })
}

/// The envelope sender the message names (Sender, else its single From),
/// with errors that say which flag helps.
pub fn sender(message: &RawMessage<impl Read>) -> Result<String, Failure> {
    match message.envelope_sender() {
        Ok(sender) => Ok(sender.as_str().to_owned()),
        Err(MessageError::NoFrom) => Err(Failure::BadMessage(
            "no sender: the message has no From address; give --from ADDR".into(),
        )),
        Err(MessageError::MultipleFromWithoutSender) => Err(Failure::BadMessage(format!(
            "no sender: the message has {} From addresses and no Sender header; give --from ADDR",
            message.from().len()
        ))),
        Err(other) => Err(other.into()),
    }
}
