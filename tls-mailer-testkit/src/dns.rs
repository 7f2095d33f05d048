//! A DNS server on loopback for the discovery tests: answers SRV queries
//! from a fixed zone (RFC 1035 and RFC 2782, written on its own), says
//! NXDOMAIN for other names, and can drop the first query to make the
//! client ask again.

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;

/// One SRV record: priority, weight, port, target ("." for none).
pub type Srv = (u16, u16, u16, &'static str);

/// A DNS server on 127.0.0.1, answering until the process ends.
#[derive(Debug)]
pub struct TestDns {
    address: SocketAddr,
    queries: Arc<AtomicUsize>,
}

impl TestDns {
    /// Serves `zone` (name, records); drops the first query when `lossy`.
    pub fn start(zone: Vec<(&'static str, Vec<Srv>)>, lossy: bool) -> std::io::Result<Self> {
        let socket = UdpSocket::bind("127.0.0.1:0")?;
        let address = socket.local_addr()?;
        let queries = Arc::new(AtomicUsize::new(0));
        let counted = queries.clone();
        thread::spawn(move || {
            let mut buffer = [0u8; 512];
            while let Ok((read, from)) = socket.recv_from(&mut buffer) {
                let seen = counted.fetch_add(1, Ordering::SeqCst);
                if lossy && seen == 0 {
                    continue;
                }
                if let Some(reply) = reply(&buffer[..read], &zone) {
                    let _ = socket.send_to(&reply, from);
                }
            }
        });
        Ok(Self { address, queries })
    }

    /// Where it listens.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// How many queries came (dropped ones included).
    pub fn queries(&self) -> usize {
        self.queries.load(Ordering::SeqCst)
    }
}

/// The queried name, lowercase, without the root dot.
fn question_name(query: &[u8]) -> Option<(String, usize)> {
    let mut at = 12;
    let mut labels = Vec::new();
    loop {
        let length = usize::from(*query.get(at)?);
        if length == 0 {
            return Some((labels.join(".").to_ascii_lowercase(), at + 1));
        }
        labels.push(String::from_utf8_lossy(query.get(at + 1..at + 1 + length)?).into_owned());
        at += 1 + length;
    }
}

fn reply(query: &[u8], zone: &[(&'static str, Vec<Srv>)]) -> Option<Vec<u8>> {
    let (name, question_end) = question_name(query)?;
    let mut out = query.get(..question_end + 4)?.to_vec();
    out[2] = 0x81; // QR, RD
    out[3] = 0x80; // RA
    out[6..12].copy_from_slice(&[0, 0, 0, 0, 0, 0]);
    let Some((_, records)) = zone.iter().find(|(zone_name, _)| *zone_name == name) else {
        out[3] |= 3; // NXDOMAIN
        return Some(out);
    };
    out[7] = u8::try_from(records.len()).ok()?;
    for &(priority, weight, port, target) in records {
        out.extend_from_slice(&[0xC0, 12]); // the question's name
        out.extend_from_slice(&[0, 33, 0, 1]); // SRV, IN
        out.extend_from_slice(&300u32.to_be_bytes());
        let mut data = Vec::new();
        data.extend_from_slice(&priority.to_be_bytes());
        data.extend_from_slice(&weight.to_be_bytes());
        data.extend_from_slice(&port.to_be_bytes());
        if target != "." {
            for label in target.split('.') {
                data.push(u8::try_from(label.len()).ok()?);
                data.extend_from_slice(label.as_bytes());
            }
        }
        data.push(0);
        out.extend_from_slice(&u16::try_from(data.len()).ok()?.to_be_bytes());
        out.extend_from_slice(&data);
    }
    Some(out)
}
