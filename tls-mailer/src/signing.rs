//! DKIM signing on the way out. The signature must cover exactly the bytes
//! the server stores, so the message is normalised to CRLF first (as the
//! encoders will send it) and then signed. A stream is spooled, normalised,
//! to a private temporary file: one pass to sign, one pass to send.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};

use tls_mailer_message::DkimSigner;
use tls_mailer_proto::CrlfNormalizer;

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
    let mut spool = tempfile::tempfile().map_err(Error::ReadMessage)?;
    let mut normalizer = CrlfNormalizer::new();
    let mut chunk = vec![0; 64 * 1024];
    let mut out = Vec::with_capacity(70 * 1024);
    let mut length = 0u64;
    loop {
        let read = match message.read(&mut chunk) {
            Ok(0) => break,
            Ok(read) => read,
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(error) => return Err(Error::ReadMessage(error)),
        };
        out.clear();
        normalizer.encode(&chunk[..read], &mut out);
        spool.write_all(&out).map_err(Error::ReadMessage)?;
        length += out.len() as u64;
    }
    out.clear();
    normalizer.finish(&mut out);
    spool.write_all(&out).map_err(Error::ReadMessage)?;
    length += out.len() as u64;
    spool.seek(SeekFrom::Start(0)).map_err(Error::ReadMessage)?;
    let header = signer.sign_reader(&mut spool)?;
    spool.seek(SeekFrom::Start(0)).map_err(Error::ReadMessage)?;
    Ok((header, spool, length))
}
