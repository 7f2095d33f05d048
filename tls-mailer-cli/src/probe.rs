//! `tls-mailer probe HOST`: what a submission server offers on its
//! implicit-TLS and STARTTLS ports, and which to use. Nothing beyond EHLO
//! and QUIT is sent, and no password is read.

use clap::Args;
use serde_json::{Value, json};
use tls_mailer::proto::Security;
use tls_mailer::{Error, Probe};

use tls_mailer::outbox::Route;

use crate::connection::ConnectionArgs;
use crate::exit::{self, Failure};

#[derive(Debug, Args)]
pub struct ProbeArgs {
    /// The server to probe (else --host, or the --account's).
    #[arg(value_name = "HOST")]
    pub target: Option<String>,
    /// The implicit-TLS port to try (default: --port, else 465).
    #[arg(long, value_name = "PORT")]
    pub implicit_port: Option<u16>,
    /// One JSON object on stdout, for scripts.
    #[arg(long)]
    pub json: bool,
    /// Find the servers from DOMAIN's DNS SRV records instead
    /// (_submissions._tcp for implicit TLS, then _submission._tcp; RFC
    /// 6186, RFC 8314) and probe those.
    #[arg(long, value_name = "DOMAIN", conflicts_with = "target")]
    pub discover: Option<String>,
    /// The DNS server to ask for --discover (default: the first nameserver
    /// of /etc/resolv.conf), as IP or IP:PORT.
    #[arg(long, value_name = "ADDR", requires = "discover")]
    pub dns_server: Option<String>,
    #[command(flatten)]
    pub connection: ConnectionArgs,
}

/// Probes both modes, prints what each showed and the advice; 0 when one
/// of them is usable, 69 when neither is.
pub fn run(args: &ProbeArgs) -> Result<u8, Failure> {
    let (host, targets, discovered) = match &args.discover {
        Some(domain) => discovered_targets(domain, args.dns_server.as_deref())?,
        None => {
            let host = args.connection.host.clone().ok_or_else(|| {
                Failure::Usage(
                    "probe needs a HOST (or --host, --account with a host, or --discover DOMAIN)"
                        .into(),
                )
            })?;
            let implicit_port = args
                .implicit_port
                .or(args.connection.port)
                .unwrap_or(Security::ImplicitTls.default_port());
            let starttls_port = args.connection.starttls_port.unwrap_or(587);
            let targets = vec![
                (host.clone(), implicit_port, Security::ImplicitTls),
                (host.clone(), starttls_port, Security::StartTls),
            ];
            (host, targets, None)
        }
    };
    let clients = crate::connection::Clients::new(&args.connection);
    let mut probes = Vec::new();
    for (host, port, security) in &targets {
        // No user: the builder then reads no password, and the probe logs in as nobody.
        let route = Route::new(host, *port, *security);
        probes.push((host.clone(), clients.builder(&route)?.probe()));
    }
    let advice = advice(&probes);
    let probes: Vec<Probe> = probes.into_iter().map(|(_, probe)| probe).collect();
    if args.json {
        let report = json!({
            "host": host,
            "discovered": discovered,
            "modes": probes.iter().map(probe_json).collect::<Vec<_>>(),
            "recommendation": advice,
        });
        println!("{report:#}");
    } else {
        if let Some(Value::Array(found)) = &discovered {
            for server in found {
                println!("found: {}", server["srv"].as_str().unwrap_or_default());
            }
        }
        for (probe, (host, _, _)) in probes.iter().zip(&targets) {
            print_probe(host, probe);
        }
        println!("recommendation: {advice}");
    }
    Ok(if probes.iter().any(Probe::is_usable) {
        0
    } else {
        exit::UNAVAILABLE
    })
}

fn mode_name(security: Security) -> &'static str {
    if security == Security::StartTls {
        "starttls"
    } else {
        "implicit"
    }
}

/// What to probe: host, port, mode.
type Target = (String, u16, Security);

/// The SRV records of `domain`, and the first server of each kind to
/// probe: (the domain, what to probe, what was found, for --json).
fn discovered_targets(
    domain: &str,
    dns_server: Option<&str>,
) -> Result<(String, Vec<Target>, Option<Value>), Failure> {
    let nameserver = dns_server
        .map(|text| {
            text.parse::<std::net::SocketAddr>()
                .or_else(|_| text.parse::<std::net::IpAddr>().map(|ip| (ip, 53).into()))
                .map_err(|_| Failure::Usage(format!("--dns-server {text:?}: give IP or IP:PORT")))
        })
        .transpose()?;
    let servers = tls_mailer::discover(domain, nameserver)?;
    if servers.is_empty() {
        return Err(Failure::Send(tls_mailer::Error::Resolve {
            host: domain.to_owned(),
            source: std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "no _submissions._tcp or _submission._tcp SRV record: probe its mail host by \
                 name instead",
            ),
        }));
    }
    let found = servers
        .iter()
        .map(|server| {
            let label = if server.security == Security::StartTls {
                "_submission._tcp"
            } else {
                "_submissions._tcp"
            };
            json!({
                "srv": format!("{label}.{domain} -> {}:{} (priority {}, weight {})",
                    server.host, server.port, server.priority, server.weight),
                "host": server.host,
                "port": server.port,
                "mode": mode_name(server.security),
            })
        })
        .collect();
    let mut targets = Vec::new();
    for security in [Security::ImplicitTls, Security::StartTls] {
        if let Some(server) = servers.iter().find(|server| server.security == security) {
            targets.push((server.host.clone(), server.port, security));
        }
    }
    Ok((domain.to_owned(), targets, Some(Value::Array(found))))
}

fn advice(probes: &[(String, Probe)]) -> String {
    let usable = |security| {
        probes
            .iter()
            .find(|(_, probe)| probe.security == security && probe.is_usable())
    };
    if let Some((host, probe)) = usable(Security::ImplicitTls) {
        let port = probe.port;
        format!(
            "use implicit TLS on port {port} (RFC 8314): --host {host} --security implicit \
             --port {port}"
        )
    } else if let Some((host, probe)) = usable(Security::StartTls) {
        let port = probe.port;
        format!(
            "use STARTTLS on port {port}: --host {host} --security starttls --port {port} \
             (implicit TLS did not work, see above)"
        )
    } else if probes
        .iter()
        .any(|(_, probe)| matches!(probe.error, Some(Error::Tls { .. })))
    {
        "no mode is usable: a certificate does not verify; if it is your own CA's, give \
         --ca-file, or pin the key shown (--pin-sha256)"
            .into()
    } else {
        "no mode is usable: check the host name and ports, or a firewall on the way".into()
    }
}

fn print_probe(host: &str, probe: &Probe) {
    let mode = mode_name(probe.security);
    let elapsed = probe.elapsed.as_millis();
    match &probe.error {
        None => println!(
            "{mode} ({host} port {}): usable, in {elapsed} ms",
            probe.port
        ),
        Some(error) => println!("{mode} ({host} port {}): not usable: {error}", probe.port),
    }
    if let Some(greeting) = &probe.greeting {
        println!("  greeting: {greeting}");
    }
    if let Some(tls) = &probe.tls {
        println!("  TLS: {} {}", tls.version, tls.cipher_suite);
    }
    for (index, certificate) in probe.certificates.iter().enumerate() {
        let role = if index == 0 {
            "certificate"
        } else {
            "issued by"
        };
        println!("  {role}: {}", certificate.subject);
        if index == 0 {
            println!("    names: {}", certificate.names.join(", "));
            println!("    issuer: {}", certificate.issuer);
        }
        println!(
            "    valid: {} to {}",
            certificate.not_before, certificate.not_after
        );
        println!("    pin: --pin-sha256 {}", certificate.pin);
    }
    if let Some(capabilities) = &probe.capabilities {
        println!("  server: {}", capabilities.server_name);
        println!("  offers: {}", offered(capabilities).join(" "));
    }
}

/// The extensions that matter for sending, as the server named them.
fn offered(capabilities: &tls_mailer::proto::Capabilities) -> Vec<String> {
    let mut offered = Vec::new();
    let mut flag = |on: bool, name: &str| {
        if on {
            offered.push(name.to_owned());
        }
    };
    flag(capabilities.pipelining, "PIPELINING");
    flag(capabilities.chunking, "CHUNKING");
    flag(capabilities.eight_bit_mime, "8BITMIME");
    flag(capabilities.binary_mime, "BINARYMIME");
    flag(capabilities.smtputf8, "SMTPUTF8");
    flag(capabilities.dsn, "DSN");
    flag(capabilities.requiretls, "REQUIRETLS");
    flag(capabilities.enhanced_status_codes, "ENHANCEDSTATUSCODES");
    match capabilities.size {
        Some(0) => offered.push("SIZE".into()),
        Some(limit) => offered.push(format!("SIZE={limit}")),
        None => {}
    }
    if !capabilities.auth_mechanisms.is_empty() {
        offered.push(format!("AUTH={}", capabilities.auth_mechanisms.join(",")));
    }
    offered
}

fn probe_json(probe: &Probe) -> Value {
    json!({
        "mode": mode_name(probe.security),
        "port": probe.port,
        "usable": probe.is_usable(),
        "error": probe.error.as_ref().map(ToString::to_string),
        "elapsed_ms": probe.elapsed.as_millis() as u64,
        "greeting": probe.greeting,
        "tls": probe.tls.as_ref().map(|tls| json!({
            "version": tls.version,
            "cipher_suite": tls.cipher_suite,
        })),
        "certificates": probe.certificates.iter().map(|certificate| json!({
            "subject": certificate.subject,
            "issuer": certificate.issuer,
            "names": certificate.names,
            "not_before": certificate.not_before,
            "not_after": certificate.not_after,
            "pin_sha256": certificate.pin,
        })).collect::<Vec<_>>(),
        "capabilities": probe.capabilities.as_ref().map(|capabilities| json!({
            "server_name": capabilities.server_name,
            "offered": offered(capabilities),
            "auth": capabilities.auth_mechanisms,
            "size": capabilities.size,
        })),
    })
}
