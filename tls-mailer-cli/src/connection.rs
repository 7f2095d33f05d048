//! The connection flags `send` and `queue flush` share, and the one place
//! that turns them (and a route) into a client.

use std::cell::OnceCell;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tls_mailer::oauth::TokenSource;
use tls_mailer::outbox::Route;
use tls_mailer::{ClientBuilder, Credentials, Mechanism, Protocol, Security, Timeouts, TlsVersion};
use zeroize::Zeroizing;

use crate::exit::Failure;
use crate::password::PasswordSource;
use crate::{secret_file, verbose};

/// How the connection is protected. There is deliberately no plaintext
/// choice and no way to skip certificate checks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum SecurityArg {
    /// TLS from the first byte (port 465).
    #[default]
    Implicit,
    /// STARTTLS, required (port 587).
    Starttls,
    /// Implicit TLS; if it cannot be set up, STARTTLS (required) on --starttls-port.
    ImplicitOrStarttls,
}

impl SecurityArg {
    fn security(self) -> Security {
        match self {
            Self::Implicit => Security::ImplicitTls,
            Self::Starttls => Security::StartTls,
            Self::ImplicitOrStarttls => Security::ImplicitTlsOrStartTls,
        }
    }
}

/// The protocol spoken, as a flag or in the file writes it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProtocolArg {
    /// SMTP submission.
    #[default]
    Smtp,
    /// LMTP (RFC 2033), to a local delivery agent: each recipient is
    /// answered on its own after the message.
    Lmtp,
}

impl ProtocolArg {
    fn protocol(self) -> Protocol {
        match self {
            Self::Smtp => Protocol::Smtp,
            Self::Lmtp => Protocol::Lmtp,
        }
    }
}

/// An AUTH mechanism for a password, as a flag or in the file writes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MechanismArg {
    /// AUTH PLAIN (one round trip).
    Plain,
    /// AUTH LOGIN.
    Login,
    /// AUTH SCRAM-SHA-256: the password never crosses the wire (three
    /// round trips); bound to the TLS session (SCRAM-SHA-256-PLUS) where
    /// the server offers that.
    #[value(name = "scram-sha-256")]
    #[serde(rename = "scram-sha-256")]
    ScramSha256,
    /// AUTH CRAM-MD5, for old servers only (weak; the server keeps the
    /// password). Used by default only when nothing better is offered.
    #[value(name = "cram-md5")]
    #[serde(rename = "cram-md5")]
    CramMd5,
}

impl MechanismArg {
    /// The library's mechanisms, best first.
    pub fn mechanisms(self) -> &'static [Mechanism] {
        match self {
            Self::Plain => &[Mechanism::Plain],
            Self::Login => &[Mechanism::Login],
            Self::ScramSha256 => &[Mechanism::ScramSha256Plus, Mechanism::ScramSha256],
            Self::CramMd5 => &[Mechanism::CramMd5],
        }
    }

    /// The name a flag or the file gives it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Plain => "plain",
            Self::Login => "login",
            Self::ScramSha256 => "scram-sha-256",
            Self::CramMd5 => "cram-md5",
        }
    }
}

/// The oldest TLS version accepted; nothing older than 1.2 exists here.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum TlsMinArg {
    /// TLS 1.2 or 1.3.
    #[default]
    #[value(name = "1.2")]
    Tls12,
    /// TLS 1.3 only.
    #[value(name = "1.3")]
    Tls13,
}

/// Where and how to connect. For `queue flush`, each flag given replaces
/// what the entries recorded.
#[derive(Debug, clap::Args)]
pub struct ConnectionArgs {
    /// Read accounts from this file (default:
    /// $XDG_CONFIG_HOME/tls-mailer/config.toml, else
    /// ~/.config/tls-mailer/config.toml, when it exists).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Use this account of the configuration file (default: the one whose
    /// from or from_patterns matches --from, else its default account).
    /// Flags given here override its settings.
    #[arg(long, value_name = "NAME")]
    pub account: Option<String>,
    /// The SMTP server (required by send; for queue flush, sends every entry
    /// there instead of the server it recorded).
    #[arg(long)]
    pub host: Option<String>,
    /// Connect to the server's Unix socket at PATH instead of --host (a
    /// local delivery agent, usually with --protocol lmtp). No TLS and no
    /// AUTH there: the socket's file permissions protect it, so the TLS
    /// and AUTH flags are refused with it.
    #[arg(long, value_name = "PATH")]
    pub socket: Option<PathBuf>,
    /// The protocol: smtp (default), or lmtp (RFC 2033: LHLO, and each
    /// recipient answered on its own after the message).
    #[arg(long, value_enum)]
    pub protocol: Option<ProtocolArg>,
    /// The port (default: 465 for implicit TLS, 587 for STARTTLS; for queue
    /// flush, as recorded unless --security is given).
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..))]
    pub port: Option<u16>,
    /// How the connection is protected (default: implicit; for queue flush,
    /// as recorded).
    #[arg(long, value_enum)]
    pub security: Option<SecurityArg>,
    /// The STARTTLS port tried by implicit-or-starttls (default: 587, or as
    /// recorded).
    #[arg(long, value_name = "PORT", value_parser = clap::value_parser!(u16).range(1..))]
    pub starttls_port: Option<u16>,
    /// The user name for AUTH (PLAIN or LOGIN, only over TLS; for queue
    /// flush, as recorded).
    #[arg(long)]
    pub user: Option<String>,
    /// Use only this AUTH mechanism (repeatable, best first; default: PLAIN, then LOGIN).
    #[arg(long, value_enum, value_name = "MECH")]
    pub auth_mechanism: Vec<MechanismArg>,
    #[command(flatten)]
    pub password: PasswordSource,
    /// The account's `logfile`, for `send --log`.
    #[arg(skip)]
    pub logfile: Option<PathBuf>,
    /// The account's OAuth settings, when it has an `[oauth]` table.
    #[arg(skip)]
    pub oauth: Option<crate::oauth::AccountOAuth>,
    /// Trust the CAs of this PEM file instead of the system store, as
    /// curl's --cacert does (repeatable; add --system-roots to trust both).
    #[arg(long, value_name = "PEM")]
    pub ca_file: Vec<PathBuf>,
    /// With --ca-file, trust the system store too (without --ca-file, it is
    /// the only store and always used). SSL_CERT_FILE and SSL_CERT_DIR, when
    /// set, name where the system store is.
    #[arg(long, requires = "ca_file")]
    pub system_roots: bool,
    /// The name given in EHLO (default: this host's name if fully qualified,
    /// else its address).
    #[arg(long, value_name = "NAME")]
    pub ehlo: Option<String>,
    /// Connect through this proxy: socks5h://[USER:PASSWORD@]HOST:PORT (the
    /// proxy resolves the server's name), socks5://... (resolved here) or
    /// http://HOST:PORT (HTTP CONNECT). TLS runs inside, end to end.
    #[arg(long, value_name = "URL")]
    pub proxy: Option<String>,
    /// Give up on any step that takes longer than this many seconds (1 to
    /// 86400; default: 20 s for the TLS handshake and the greeting, then the
    /// RFC 5321 limits, up to 10 minutes for the final reply).
    #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub timeout: Option<u64>,
    /// Give up on connecting, TLS handshake included, after this many
    /// seconds (1 to 86400; default 15 for TCP and 20 for the handshake).
    #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub connect_timeout: Option<u64>,
    /// Give up on a message after this many seconds in all, from MAIL FROM
    /// to the server's verdict, however the time is spent (1 to 86400;
    /// default: no bound beyond each step's).
    #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub max_time: Option<u64>,
    /// Print the SMTP conversation to stderr (credentials redacted).
    #[arg(short, long)]
    pub verbose: bool,
    /// Pin the server's public key: the base64 SHA-256 of its certificate's
    /// SubjectPublicKeyInfo, as curl's --pinnedpubkey sha256//... takes it
    /// (repeatable: the key must match one). Checked in addition to the
    /// certificate authority and host name, unless --pin-only.
    #[arg(long, value_name = "BASE64", help_heading = "TLS options")]
    pub pin_sha256: Vec<String>,
    /// Accept the server when, and only when, its key matches a
    /// --pin-sha256, instead of checking it against certificate
    /// authorities: for a self-signed server. The host name and the
    /// certificate's dates are then not checked.
    #[arg(
        long,
        requires = "pin_sha256",
        conflicts_with = "ca_file",
        help_heading = "TLS options"
    )]
    pub pin_only: bool,
    /// Present this client certificate (PEM, then any intermediates) when
    /// the server asks for one; needs --client-key.
    #[arg(
        long,
        value_name = "PEM",
        requires = "client_key",
        help_heading = "TLS options"
    )]
    pub client_cert: Option<PathBuf>,
    /// The private key of --client-cert (PEM, unencrypted; warns when other
    /// users can read the file).
    #[arg(
        long,
        value_name = "PEM",
        requires = "client_cert",
        help_heading = "TLS options"
    )]
    pub client_key: Option<PathBuf>,
    /// The oldest TLS version accepted.
    #[arg(
        long,
        value_enum,
        value_name = "VERSION",
        default_value_t,
        help_heading = "TLS options"
    )]
    pub tls_min: TlsMinArg,
}

impl ConnectionArgs {
    /// Fills the flags not given from the account of the configuration
    /// file picked by --account, by `sender` (matched against each
    /// account's from and from_patterns), or as the default; the account's
    /// `from`, if any, is returned. An account picked without --account is
    /// not used when --host names another server, so its password never
    /// goes to a server it does not name. `implicit` false: only --account
    /// picks one (queue flush, whose entries recorded their server).
    pub fn apply_config(
        &mut self,
        sender: Option<&str>,
        implicit: bool,
    ) -> Result<Option<String>, Failure> {
        if self.socket.is_some() {
            self.check_socket()?;
            if self.account.is_some() {
                return Err(Failure::Usage(
                    "--socket with --account: give the socket in the account (socket = \"PATH\") \
                     or on the command line, not both"
                        .into(),
                ));
            }
            // The socket is the whole route: no account's server or
            // password applies to it.
            return Ok(None);
        }
        if self.account.is_none() && !implicit {
            return Ok(None);
        }
        let config = match crate::config::find(self.config.as_deref())? {
            Some(config) => config,
            None if self.account.is_some() => {
                let place = crate::config::default_path()
                    .map_or_else(|| "no $HOME".to_owned(), |path| path.display().to_string());
                return Err(Failure::Config(format!(
                    "--account needs a configuration file: give --config FILE, or write {place}"
                )));
            }
            None => return Ok(None),
        };
        let Some((name, account, picked)) = config.pick(self.account.as_deref(), sender)? else {
            return Ok(None);
        };
        if picked != crate::config::Picked::Named
            && self.host.as_deref().is_some_and(|host| {
                account
                    .host
                    .as_deref()
                    .is_none_or(|own| !own.eq_ignore_ascii_case(host))
            })
        {
            return Ok(None);
        }
        let origin = format!("account {name} in {}", config.path.display());
        if let Some(problem) = account.invalid().first() {
            return Err(Failure::Config(format!(
                "{origin}: {problem} (`tls-mailer config check` lists every problem)"
            )));
        }
        self.fill_from(name, account, &origin);
        Ok(account.from.clone())
    }

    /// The flags that mean TLS or AUTH, given with --socket: refused, since
    /// a Unix socket has neither.
    fn check_socket(&self) -> Result<(), Failure> {
        let given: Vec<&str> = [
            (self.host.is_some(), "--host"),
            (self.port.is_some(), "--port"),
            (self.security.is_some(), "--security"),
            (self.starttls_port.is_some(), "--starttls-port"),
            (self.user.is_some(), "--user"),
            (!self.auth_mechanism.is_empty(), "--auth-mechanism"),
            (self.password.is_set(), "a password flag"),
            (!self.ca_file.is_empty(), "--ca-file"),
            (!self.pin_sha256.is_empty(), "--pin-sha256"),
            (self.client_cert.is_some(), "--client-cert"),
            (self.tls_min != TlsMinArg::default(), "--tls-min"),
        ]
        .into_iter()
        .filter_map(|(given, flag)| given.then_some(flag))
        .collect();
        if given.is_empty() {
            return Ok(());
        }
        Err(Failure::Usage(format!(
            "--socket connects to a Unix socket, which has no TLS and needs no AUTH (its file \
             permissions protect it): drop {}",
            given.join(", ")
        )))
    }

    /// Every setting of `account` whose flag was not given.
    fn fill_from(&mut self, name: &str, account: &crate::config::Account, origin: &str) {
        use crate::config::{SecurityKey, expand_home};
        fill(&mut self.protocol, &account.protocol);
        self.logfile = account.logfile.as_deref().map(expand_home);
        if self.host.is_none()
            && let Some(socket) = &account.socket
        {
            // The account's socket is its whole route (`config check`
            // refuses TLS or AUTH keys beside it).
            self.socket = Some(expand_home(socket));
            fill(&mut self.ehlo, &account.ehlo_name);
            fill(&mut self.timeout, &account.timeout);
            fill(&mut self.connect_timeout, &account.connect_timeout);
            fill(&mut self.max_time, &account.max_time);
            return;
        }
        fill(&mut self.host, &account.host);
        let security = account.security.map(|security| match security {
            SecurityKey::ImplicitTls => SecurityArg::Implicit,
            SecurityKey::Starttls => SecurityArg::Starttls,
            SecurityKey::ImplicitTlsOrStarttls => SecurityArg::ImplicitOrStarttls,
        });
        // The account's port goes with its security: a --security of
        // another mode without --port takes that mode's port.
        if self.security.is_none() || self.security == security.or(Some(SecurityArg::default())) {
            fill(&mut self.port, &account.port);
        }
        fill(&mut self.security, &security);
        fill(&mut self.starttls_port, &account.starttls_port);
        fill(&mut self.user, &account.user);
        if self.auth_mechanism.is_empty() {
            self.auth_mechanism = account.auth_mechanisms.clone();
        }
        if !self.password.is_set()
            && let Some(oauth) = &account.oauth
        {
            self.oauth = Some(crate::oauth::AccountOAuth {
                account: name.to_owned(),
                origin: origin.to_owned(),
                settings: oauth.clone(),
                proxy: account.proxy.as_ref().map(|url| url.0.to_string()),
                timeout: None,
            });
        } else if !self.password.is_set() {
            self.password.password_env.clone_from(&account.password_env);
            self.password.password_file = account.password_file.as_deref().map(expand_home);
            self.password
                .password_command
                .clone_from(&account.password_command);
            self.password
                .oauth_token_command
                .clone_from(&account.oauth_token_command);
            self.password
                .password_keyring
                .clone_from(&account.password_keyring);
            self.password.literal.clone_from(&account.password);
            self.password.origin = Some(origin.to_owned());
        }
        if self.ca_file.is_empty() {
            self.ca_file
                .extend(account.ca_file.as_deref().map(expand_home));
            self.system_roots |= account.system_roots;
        }
        fill(&mut self.ehlo, &account.ehlo_name);
        if self.proxy.is_none() {
            self.proxy = account.proxy.as_ref().map(|url| url.0.to_string());
        }
        fill(&mut self.timeout, &account.timeout);
        fill(&mut self.connect_timeout, &account.connect_timeout);
        fill(&mut self.max_time, &account.max_time);
        if self.pin_sha256.is_empty() {
            self.pin_sha256.clone_from(&account.pin_sha256);
            self.pin_only |= account.pin_only;
        }
        if self.client_cert.is_none() && self.client_key.is_none() {
            self.client_cert = account.client_cert.as_deref().map(expand_home);
            self.client_key = account.client_key.as_deref().map(expand_home);
        }
    }

    /// The Unix socket to connect to instead of a host, if any.
    pub fn socket(&self) -> Option<&Path> {
        self.socket.as_deref()
    }

    /// LMTP, or SMTP.
    pub fn protocol(&self) -> Protocol {
        self.protocol.unwrap_or_default().protocol()
    }

    /// The route `send` uses: --host is required (unless --socket, whose
    /// clients ignore the route).
    pub fn route(&self) -> Result<Route, Failure> {
        if self.socket.is_some() {
            return Ok(Route::new("localhost", 25, Security::DangerousPlaintext));
        }
        let host = self.host.as_deref().ok_or_else(|| {
            Failure::Usage(
                "send needs --host: the SMTP server to send through (or --socket PATH)".into(),
            )
        })?;
        let security = self.security.unwrap_or_default().security();
        let mut route = Route::new(host, self.port.unwrap_or(security.default_port()), security)
            .with_starttls_port(self.starttls_port.unwrap_or(587));
        route.user.clone_from(&self.user);
        Ok(route)
    }

    /// The route an entry recorded, with every flag given here in its
    /// place. A new --security without --port takes that mode's port.
    pub fn override_route(&self, recorded: &Route) -> Route {
        let mut route = recorded.clone();
        if let Some(host) = &self.host {
            route.host.clone_from(host);
        }
        if let Some(security) = self.security {
            route.security = security.security();
            route.port = security.security().default_port();
        }
        if let Some(port) = self.port {
            route.port = port;
        }
        if let Some(port) = self.starttls_port {
            route.starttls_port = port;
        }
        if self.user.is_some() {
            route.user.clone_from(&self.user);
        }
        route
    }
}

/// Builds clients from the connection flags; the password is read once,
/// when a route first needs it.
#[derive(Debug)]
pub struct Clients<'a> {
    args: &'a ConnectionArgs,
    password: OnceCell<Zeroizing<String>>,
    tokens: OnceCell<Arc<dyn TokenSource>>,
}

impl<'a> Clients<'a> {
    pub fn new(args: &'a ConnectionArgs) -> Self {
        Self {
            args,
            password: OnceCell::new(),
            tokens: OnceCell::new(),
        }
    }

    /// A client builder for `route`, with the password, trust anchors,
    /// mechanisms, EHLO name, deadlines and tracing of the flags.
    pub fn builder(&self, route: &Route) -> Result<ClientBuilder, Failure> {
        let args = self.args;
        if let Some(socket) = &args.socket {
            let builder = tls_mailer::Client::unix_socket(socket).protocol(args.protocol());
            return Ok(self.common(builder));
        }
        let mut builder = tls_mailer::Client::builder(&route.host)
            .protocol(args.protocol())
            .port(route.port)
            .security(route.security)
            .starttls_fallback_port(route.starttls_port);
        if let (Some(user), Some(oauth)) = (&route.user, &args.oauth) {
            let tokens = match self.tokens.get() {
                Some(tokens) => tokens,
                None => {
                    // The token endpoint gets the deadline the flags give.
                    let oauth = crate::oauth::AccountOAuth {
                        timeout: args.timeout.or(args.connect_timeout),
                        ..oauth.clone()
                    };
                    let tokens = oauth.token_source()?;
                    self.tokens.get_or_init(|| tokens)
                }
            };
            builder = builder.oauth(user, tokens.clone());
        } else if let Some(user) = &route.user {
            let password = match self.password.get() {
                Some(password) => password,
                None => {
                    let password = args.password.read(user)?;
                    self.password.get_or_init(|| password)
                }
            };
            let credentials = if args.password.is_bearer_token() {
                Credentials::bearer_token(user, password.as_str())
            } else {
                Credentials::new(user, password.as_str())
            };
            builder = builder.credentials(credentials);
        }
        if !args.auth_mechanism.is_empty() {
            let mechanisms: Vec<Mechanism> = args
                .auth_mechanism
                .iter()
                .flat_map(|mechanism| mechanism.mechanisms().iter().copied())
                .collect();
            builder = builder.auth_mechanisms(&mechanisms);
        }
        for path in &args.ca_file {
            builder = builder.add_root_certificates_file(path)?;
        }
        // A CA file replaces the system store (curl's --cacert), so it is not
        // read at all; --system-roots keeps it.
        if !args.ca_file.is_empty() && !args.system_roots {
            builder = builder.system_roots(false);
        }
        if let Some(url) = &args.proxy {
            builder = builder.proxy(tls_mailer::Proxy::parse(url)?);
        }
        for pin in &args.pin_sha256 {
            builder = builder
                .pin_sha256(pin)
                .map_err(|error| Failure::Usage(format!("--pin-sha256: {error}")))?;
        }
        builder = builder.pin_only(args.pin_only);
        if let (Some(cert), Some(key)) = (&args.client_cert, &args.client_key) {
            let chain = std::fs::read(cert).map_err(|error| {
                Failure::Config(format!("--client-cert {}: {error}", cert.display()))
            })?;
            let key_pem = secret_file::read("--client-key", key).map_err(Failure::Config)?;
            builder = builder
                .client_certificate(&chain, &key_pem)
                .map_err(|error| {
                    Failure::Config(format!(
                        "--client-cert {} with --client-key {}: {error}",
                        cert.display(),
                        key.display()
                    ))
                })?;
        }
        builder = builder.min_tls_version(match args.tls_min {
            TlsMinArg::Tls12 => TlsVersion::Tls12,
            TlsMinArg::Tls13 => TlsVersion::Tls13,
        });
        Ok(self.common(builder))
    }

    /// What a client of a Unix socket shares with one over TCP: the EHLO
    /// name, deadlines and tracing.
    fn common(&self, mut builder: ClientBuilder) -> ClientBuilder {
        let args = self.args;
        if let Some(name) = &args.ehlo {
            builder = builder.ehlo_name(name);
        }
        let mut timeouts = match args.timeout {
            Some(seconds) => Timeouts::uniform(Duration::from_secs(seconds)),
            None => Timeouts::default(),
        };
        if let Some(seconds) = args.connect_timeout {
            timeouts.connect = Duration::from_secs(seconds);
            timeouts.tls_handshake = Duration::from_secs(seconds);
        }
        if let Some(seconds) = args.max_time {
            timeouts.message = Some(Duration::from_secs(seconds));
        }
        if args.timeout.is_some() || args.connect_timeout.is_some() || args.max_time.is_some() {
            builder = builder.timeouts(timeouts);
        }
        if args.verbose {
            verbose::install(verbose::Sink::Stderr);
        }
        builder
    }
}

/// `flag` set from `file` when it was not given.
fn fill<T: Clone>(flag: &mut Option<T>, file: &Option<T>) {
    if flag.is_none() {
        flag.clone_from(file);
    }
}

/// How a security mode is written on the command line.
pub fn security_flag(security: Security) -> &'static str {
    match security {
        Security::StartTls => "starttls",
        Security::ImplicitTlsOrStartTls => "implicit-or-starttls",
        Security::DangerousPlaintext => "plaintext (loopback tests only)",
        _ => "implicit",
    }
}
