//! DKIM signing on the way out. The signature must cover exactly the bytes
//! the server stores, so the message is normalised to CRLF first (as the
//! encoders will send it) and then signed. A stream is spooled, normalised,
//! to a private temporary file: one pass to sign, one pass to send.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};

use tls_mailer_message::DkimSigner;
use tls_mailer_proto::{BodyInfo, CrlfNormalizer};

use crate::batch::Mail;
use crate::client::Settings;
use crate::error::Error;

/// The signed message: the DKIM-Signature header followed by the normalised message.
pub(crate) fn sign_bytes(signer: &DkimSigner, message: &[u8]) -> Result<Vec<u8>, Error> {
    let mut normalised = Vec::with_capacity(message.len() + message.len() / 32);
    let mut normalizer = CrlfNormalizer::new();
    normalizer.encode(message, &mut normalised);
    normalizer.finish(&mut normalised);
    let mut signed = signer.sign(&normalised)?;
    signed.extend_from_slice(&normalised);
    Ok(signed)
}

/// A streamed message, signed: the header, and the normalised message in a
/// rewound temporary file (deleted when closed), with its length.
pub(crate) fn sign_stream(
    signer: &DkimSigner,
    message: &mut dyn Read,
) -> Result<(Vec<u8>, File, u64), Error> {
    let mut spool = Spool::new()?;
    let mut chunk = vec![0; 64 * 1024];
    loop {
        match message.read(&mut chunk) {
            Ok(0) => break,
            Ok(read) => spool.push(&chunk[..read])?,
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
            Err(error) => return Err(Error::ReadMessage(error)),
        }
    }
    spool.sign(signer)
}

/// What is sent for a streamed mail: itself, or with DKIM signing
/// configured, its signed copy (spooled), whose size is then known.
pub(crate) fn prepare<'m>(
    settings: &Settings,
    mail: Mail<Box<dyn Read + 'm>>,
) -> Result<Mail<Box<dyn Read + 'm>>, Error> {
    let Some(signer) = &settings.dkim else {
        return Ok(mail);
    };
    let BodyInfo {
        eight_bit, binary, ..
    } = mail.info();
    let (envelope, mut message) = mail.into_parts();
    let (header, spool, length) = sign_stream(signer, &mut message)?;
    let info = BodyInfo {
        size: Some(header.len() as u64 + length),
        eight_bit,
        binary,
    };
    let body: Box<dyn Read + 'm> = Box::new(std::io::Cursor::new(header).chain(spool));
    Ok(Mail::new(envelope, body, info))
}

/// A message being spooled, normalised to CRLF, to a private temporary
/// file, to be signed once it is complete.
#[derive(Debug)]
pub(crate) struct Spool {
    file: File,
    normalizer: CrlfNormalizer,
    out: Vec<u8>,
    length: u64,
}

impl Spool {
    pub(crate) fn new() -> Result<Self, Error> {
        Ok(Self {
            file: tempfile::tempfile().map_err(Error::ReadMessage)?,
            normalizer: CrlfNormalizer::new(),
            out: Vec::with_capacity(70 * 1024),
            length: 0,
        })
    }

    /// The next piece of the message.
    pub(crate) fn push(&mut self, chunk: &[u8]) -> Result<(), Error> {
        self.out.clear();
        self.normalizer.encode(chunk, &mut self.out);
        self.write_out()
    }

    fn write_out(&mut self) -> Result<(), Error> {
        self.file.write_all(&self.out).map_err(Error::ReadMessage)?;
        self.length += self.out.len() as u64;
        Ok(())
    }

    /// The message is complete: the header, and the normalised message in
    /// the rewound file, with its length.
    pub(crate) fn sign(mut self, signer: &DkimSigner) -> Result<(Vec<u8>, File, u64), Error> {
        self.out.clear();
        self.normalizer.finish(&mut self.out);
        self.write_out()?;
        let mut spool = self.file;
        spool.seek(SeekFrom::Start(0)).map_err(Error::ReadMessage)?;
        let header = signer.sign_reader(&mut spool)?;
        spool.seek(SeekFrom::Start(0)).map_err(Error::ReadMessage)?;
        Ok((header, spool, self.length))
    }
}
