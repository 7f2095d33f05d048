//! Finding a domain's submission server from DNS SRV records (RFC 6186,
//! with RFC 8314's `_submissions._tcp` for implicit TLS first): a small
//! DNS client of its own, sans-IO like the rest (the query is built and
//! the answer read by plain functions, bounded against hostile replies),
//! and one blocking UDP exchange with the system's resolver.

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use tls_mailer_proto::Security;

use crate::error::Error;

/// A submission server a domain names in DNS.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubmissionServer {
    /// The host to connect to (no trailing dot).
    pub host: String,
    /// Its port.
    pub port: u16,
    /// [`Security::ImplicitTls`] for `_submissions._tcp`,
    /// [`Security::StartTls`] for `_submission._tcp`.
    pub security: Security,
    /// The record's priority (lower first) and weight.
    pub priority: u16,
    /// The record's weight (higher first within a priority).
    pub weight: u16,
}

/// The longest DNS answer read over UDP (EDNS is not asked for; a
/// truncated answer is taken as it is).
const MAX_ANSWER: usize = 4096;
/// How many compression pointers one name may follow.
const MAX_POINTERS: usize = 32;
/// SRV (RFC 2782) and class IN.
const TYPE_SRV: u16 = 33;
const CLASS_IN: u16 = 1;

/// The servers `domain` publishes, implicit TLS first (RFC 8314 5.1), each
/// kind ordered by priority then weight; empty when it publishes none (or
/// says "." : no such service). `nameserver` replaces the first one of
/// /etc/resolv.conf.
///
/// ```no_run
/// for server in tls_mailer::discover("example.org", None)? {
///     println!("{}:{} {:?}", server.host, server.port, server.security);
/// }
/// # Ok::<(), tls_mailer::Error>(())
/// ```
pub fn discover(
    domain: &str,
    nameserver: Option<SocketAddr>,
) -> Result<Vec<SubmissionServer>, Error> {
    let domain = domain.trim_end_matches('.');
    let nameserver = match nameserver {
        Some(address) => address,
        None => system_nameserver()?,
    };
    let mut servers = Vec::new();
    for (label, security) in [
        ("_submissions._tcp", Security::ImplicitTls),
        ("_submission._tcp", Security::StartTls),
    ] {
        let name = format!("{label}.{domain}");
        let records = lookup_srv(&name, nameserver, Duration::from_secs(5))?;
        let mut found: Vec<SubmissionServer> = records
            .into_iter()
            .filter(|record| record.target != "." && !record.target.is_empty() && record.port != 0)
            .map(|record| SubmissionServer {
                host: record.target.trim_end_matches('.').to_owned(),
                port: record.port,
                security,
                priority: record.priority,
                weight: record.weight,
            })
            .collect();
        found.sort_by(|a, b| a.priority.cmp(&b.priority).then(b.weight.cmp(&a.weight)));
        servers.extend(found);
    }
    Ok(servers)
}

/// The first `nameserver` of /etc/resolv.conf (port 53).
fn system_nameserver() -> Result<SocketAddr, Error> {
    let text = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    text.lines()
        .filter_map(|line| line.trim().strip_prefix("nameserver"))
        .filter_map(|rest| rest.trim().parse::<std::net::IpAddr>().ok())
        .map(|ip| SocketAddr::new(ip, 53))
        .next()
        .ok_or_else(|| {
            Error::Config("no nameserver in /etc/resolv.conf: give a DNS server to ask".into())
        })
}

fn lookup_srv(
    name: &str,
    nameserver: SocketAddr,
    timeout: Duration,
) -> Result<Vec<SrvRecord>, Error> {
    let failed = |reason: String| Error::Resolve {
        host: name.to_owned(),
        source: std::io::Error::other(reason),
    };
    let bind = if nameserver.is_ipv6() {
        "[::]:0"
    } else {
        "0.0.0.0:0"
    };
    let socket = UdpSocket::bind(bind).map_err(|error| failed(error.to_string()))?;
    socket
        .connect(nameserver)
        .map_err(|error| failed(format!("cannot reach the DNS server {nameserver}: {error}")))?;
    let id = query_id();
    let query = srv_query(id, name).map_err(failed)?;
    let deadline = Instant::now() + timeout;
    // Sent again after a second without an answer: UDP may drop it.
    let mut buffer = vec![0u8; MAX_ANSWER];
    let mut sent_at = None;
    loop {
        let now = Instant::now();
        if now >= deadline {
            return Err(failed(format!(
                "the DNS server {nameserver} did not answer"
            )));
        }
        if sent_at.is_none_or(|at: Instant| now.duration_since(at) >= Duration::from_secs(1)) {
            socket
                .send(&query)
                .map_err(|error| failed(format!("DNS query to {nameserver}: {error}")))?;
            sent_at = Some(now);
        }
        let wait = Duration::from_secs(1).min(deadline.saturating_duration_since(now));
        let _ = socket.set_read_timeout(Some(wait.max(Duration::from_millis(1))));
        match socket.recv(&mut buffer) {
            Ok(read) => match parse_srv_answer(id, &buffer[..read]) {
                Ok(records) => return Ok(records),
                // Not our answer (another id): keep waiting for it.
                Err(DnsError::NotOurs) => {}
                Err(DnsError::Bad(reason)) => return Err(failed(reason)),
            },
            Err(error)
                if matches!(
                    error.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(error) => return Err(failed(format!("DNS answer from {nameserver}: {error}"))),
        }
    }
}

/// An id that differs between queries (not a security measure: the answer
/// is checked against the question too, and the result only picks a
/// server whose certificate is verified as always).
fn query_id() -> u16 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.subsec_nanos())
        .unwrap_or(0);
    (nanos ^ std::process::id()) as u16
}

/// One SRV record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SrvRecord {
    pub(crate) priority: u16,
    pub(crate) weight: u16,
    pub(crate) port: u16,
    pub(crate) target: String,
}

#[derive(Debug, PartialEq, Eq)]
pub(crate) enum DnsError {
    /// An answer to another query.
    NotOurs,
    /// A broken or refusing answer, said in words.
    Bad(String),
}

/// The query for `name`'s SRV records, recursion desired.
pub(crate) fn srv_query(id: u16, name: &str) -> Result<Vec<u8>, String> {
    let mut query = Vec::with_capacity(name.len() + 18);
    query.extend_from_slice(&id.to_be_bytes());
    query.extend_from_slice(&[0x01, 0x00]); // RD
    query.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]); // one question
    for label in name.trim_end_matches('.').split('.') {
        if label.is_empty() || label.len() > 63 {
            return Err(format!("{name:?} is not a DNS name"));
        }
        query.push(label.len() as u8);
        query.extend_from_slice(label.as_bytes());
    }
    query.push(0);
    if query.len() > 12 + 255 + 1 {
        return Err(format!("{name:?} is longer than DNS allows"));
    }
    query.extend_from_slice(&TYPE_SRV.to_be_bytes());
    query.extend_from_slice(&CLASS_IN.to_be_bytes());
    Ok(query)
}

/// The SRV records of an answer to query `id`. NXDOMAIN and an empty
/// answer are no records; other error codes are errors.
pub(crate) fn parse_srv_answer(id: u16, answer: &[u8]) -> Result<Vec<SrvRecord>, DnsError> {
    let bad = |why: &str| DnsError::Bad(format!("a broken DNS answer: {why}"));
    if answer.len() < 12 {
        return Err(bad("shorter than its header"));
    }
    if u16::from_be_bytes([answer[0], answer[1]]) != id || answer[2] & 0x80 == 0 {
        return Err(DnsError::NotOurs);
    }
    match answer[3] & 0x0F {
        0 => {}
        3 => return Ok(Vec::new()), // NXDOMAIN: no such name
        code => {
            return Err(DnsError::Bad(format!(
                "the DNS server answered with error code {code}"
            )));
        }
    }
    let questions = u16::from_be_bytes([answer[4], answer[5]]);
    let answers = u16::from_be_bytes([answer[6], answer[7]]);
    let mut at = 12;
    for _ in 0..questions {
        at = skip_name(answer, at).ok_or_else(|| bad("a question's name"))?;
        at = at
            .checked_add(4)
            .filter(|&end| end <= answer.len())
            .ok_or_else(|| bad("a question"))?;
    }
    let mut records = Vec::new();
    for _ in 0..answers {
        at = skip_name(answer, at).ok_or_else(|| bad("a record's name"))?;
        let fixed = answer
            .get(at..at + 10)
            .ok_or_else(|| bad("a record's header"))?;
        let kind = u16::from_be_bytes([fixed[0], fixed[1]]);
        let class = u16::from_be_bytes([fixed[2], fixed[3]]);
        let length = usize::from(u16::from_be_bytes([fixed[8], fixed[9]]));
        let data_at = at + 10;
        let data = answer
            .get(data_at..data_at + length)
            .ok_or_else(|| bad("a record's data"))?;
        if kind == TYPE_SRV && class == CLASS_IN {
            if data.len() < 7 {
                return Err(bad("an SRV record"));
            }
            let target = read_name(answer, data_at + 6).ok_or_else(|| bad("an SRV target"))?;
            records.push(SrvRecord {
                priority: u16::from_be_bytes([data[0], data[1]]),
                weight: u16::from_be_bytes([data[2], data[3]]),
                port: u16::from_be_bytes([data[4], data[5]]),
                target,
            });
        }
        at = data_at + length;
    }
    Ok(records)
}

/// The offset after the name at `at` (labels, or a pointer ending it).
fn skip_name(message: &[u8], mut at: usize) -> Option<usize> {
    loop {
        let length = *message.get(at)?;
        match length {
            0 => return Some(at + 1),
            l if l & 0xC0 == 0xC0 => {
                message.get(at + 1)?;
                return Some(at + 2);
            }
            l if l & 0xC0 == 0 => at += 1 + usize::from(l),
            _ => return None,
        }
    }
}

/// The name at `at`, following compression pointers (at most
/// [`MAX_POINTERS`], so a loop of pointers ends); "." for the root.
fn read_name(message: &[u8], mut at: usize) -> Option<String> {
    let mut labels: Vec<String> = Vec::new();
    let mut pointers = 0;
    let mut length_so_far = 0;
    loop {
        let length = *message.get(at)?;
        match length {
            0 => break,
            l if l & 0xC0 == 0xC0 => {
                pointers += 1;
                if pointers > MAX_POINTERS {
                    return None;
                }
                at = usize::from(u16::from_be_bytes([l & 0x3F, *message.get(at + 1)?]));
            }
            l if l & 0xC0 == 0 => {
                let label = message.get(at + 1..at + 1 + usize::from(l))?;
                length_so_far += label.len() + 1;
                if length_so_far > 255 || !label.iter().all(|b| b.is_ascii_graphic()) {
                    return None;
                }
                labels.push(String::from_utf8_lossy(label).into_owned());
                at += 1 + usize::from(l);
            }
            _ => return None,
        }
    }
    Some(if labels.is_empty() {
        ".".to_owned()
    } else {
        labels.join(".")
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // tests unwrap: a panic is a test failure

    use super::*;

    /// An answer to `query` with these SRV records (priority, weight,
    /// port, target), targets compressed against the question's name
    /// when they end in it.
    pub(crate) fn answer(query: &[u8], records: &[(u16, u16, u16, &str)]) -> Vec<u8> {
        let mut out = query.to_vec();
        out[2] |= 0x80; // QR
        out[7] = records.len() as u8;
        for &(priority, weight, port, target) in records {
            out.extend_from_slice(&[0xC0, 12]); // the question's name
            out.extend_from_slice(&TYPE_SRV.to_be_bytes());
            out.extend_from_slice(&CLASS_IN.to_be_bytes());
            out.extend_from_slice(&300u32.to_be_bytes());
            let mut data = Vec::new();
            data.extend_from_slice(&priority.to_be_bytes());
            data.extend_from_slice(&weight.to_be_bytes());
            data.extend_from_slice(&port.to_be_bytes());
            if target == "." {
                data.push(0);
            } else {
                for label in target.split('.') {
                    data.push(label.len() as u8);
                    data.extend_from_slice(label.as_bytes());
                }
                data.push(0);
            }
            out.extend_from_slice(&(data.len() as u16).to_be_bytes());
            out.extend_from_slice(&data);
        }
        out
    }

    #[test]
    fn a_query_and_its_answer_round_trip() {
        let query = srv_query(0x1234, "_submissions._tcp.example.org").unwrap();
        assert_eq!(&query[..2], &[0x12, 0x34]);
        assert_eq!(query[12], 12); // "_submissions"
        let reply = answer(&query, &[(10, 5, 465, "mail.example.org"), (0, 0, 0, ".")]);
        let records = parse_srv_answer(0x1234, &reply).unwrap();
        assert_eq!(records[0].target, "mail.example.org");
        assert_eq!(
            (records[0].priority, records[0].weight, records[0].port),
            (10, 5, 465)
        );
        assert_eq!(records[1].target, ".");
        assert_eq!(parse_srv_answer(0x9999, &reply), Err(DnsError::NotOurs));
    }

    #[test]
    fn hostile_answers_fail_cleanly() {
        let query = srv_query(7, "_submission._tcp.example.org").unwrap();
        let good = answer(&query, &[(1, 1, 587, "smtp.example.org")]);
        // Every truncation is an error or fewer records, never a panic.
        for end in 0..good.len() {
            let _ = parse_srv_answer(7, &good[..end]);
        }
        // A pointer loop in the target ends.
        let mut looped = good.clone();
        let target_at = looped.len() - "smtp.example.org".len() - 2;
        looped[target_at] = 0xC0;
        looped[target_at + 1] = target_at as u8;
        assert!(matches!(
            parse_srv_answer(7, &looped),
            Err(DnsError::Bad(_))
        ));
        // SERVFAIL is an error, NXDOMAIN no records.
        let mut failing = good.clone();
        failing[3] |= 2;
        assert!(matches!(
            parse_srv_answer(7, &failing),
            Err(DnsError::Bad(_))
        ));
        let mut missing = query.clone();
        missing[2] |= 0x80;
        missing[3] |= 3;
        assert_eq!(parse_srv_answer(7, &missing), Ok(Vec::new()));
        assert!(srv_query(1, &format!("{}.org", "a".repeat(64))).is_err());
    }

    #[test]
    fn discover_orders_implicit_tls_first_then_by_priority_and_weight() {
        use tls_mailer_testkit::dns::TestDns;
        let zone = vec![
            (
                "_submissions._tcp.example.test",
                vec![
                    (20, 0, 465, "c.example.test"),
                    (10, 1, 465, "b.example.test"),
                    (10, 9, 465, "a.example.test"),
                ],
            ),
            (
                "_submission._tcp.example.test",
                vec![(0, 0, 587, "d.example.test")],
            ),
        ];
        // The first query is lost: the client asks again.
        let server = TestDns::start(zone, true).unwrap();
        let servers = discover("example.test.", Some(server.address())).unwrap();
        let found: Vec<(&str, u16, Security)> = servers
            .iter()
            .map(|server| (server.host.as_str(), server.port, server.security))
            .collect();
        assert_eq!(
            found,
            [
                ("a.example.test", 465, Security::ImplicitTls),
                ("b.example.test", 465, Security::ImplicitTls),
                ("c.example.test", 465, Security::ImplicitTls),
                ("d.example.test", 587, Security::StartTls),
            ]
        );
        assert_eq!(server.queries(), 3);
        // "." says there is no such service; an unknown name has none.
        let zone = vec![("_submissions._tcp.example.test", vec![(0, 0, 0, ".")])];
        let server = TestDns::start(zone, false).unwrap();
        assert!(
            discover("example.test", Some(server.address()))
                .unwrap()
                .is_empty()
        );
    }
}
