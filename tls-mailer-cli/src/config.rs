//! The configuration file: named accounts whose settings fill in the
//! connection flags that were not given, and how one is picked.

pub mod check;
pub mod msmtprc;

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use zeroize::Zeroizing;

use crate::exit::Failure;
use crate::password::Literal;

/// The arguments of `tls-mailer config`.
#[derive(Debug, clap::Args)]
pub struct ConfigArgs {
    #[command(subcommand)]
    pub command: ConfigCommand,
}

/// The `config` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum ConfigCommand {
    /// Check the configuration file: print each account (secrets redacted)
    /// and what is wrong with it; exit 78 when anything is.
    Check(check::CheckArgs),
    /// Convert an msmtp configuration (default ~/.msmtprc, then
    /// $XDG_CONFIG_HOME/msmtp/config) to this file's format, on stdout
    /// unless -o. What cannot be converted is kept as a comment and listed
    /// on stderr.
    ImportMsmtprc(msmtprc::ImportArgs),
}

/// Runs `config`.
pub fn run(args: ConfigArgs) -> Result<u8, Failure> {
    match args.command {
        ConfigCommand::Check(args) => check::run(&args),
        ConfigCommand::ImportMsmtprc(args) => msmtprc::run(&args),
    }
}

/// How the connection is protected, as the file writes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SecurityKey {
    /// TLS from the first byte.
    ImplicitTls,
    /// Required STARTTLS.
    Starttls,
    /// Implicit TLS, else required STARTTLS.
    ImplicitTlsOrStarttls,
}

impl SecurityKey {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ImplicitTls => "implicit-tls",
            Self::Starttls => "starttls",
            Self::ImplicitTlsOrStarttls => "implicit-tls-or-starttls",
        }
    }
}

/// The whole file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    default: Option<String>,
    /// Keys every account has unless it sets them itself (msmtp's
    /// `defaults`); checked as an account is.
    #[serde(default)]
    defaults: Option<Account>,
    #[serde(default)]
    accounts: BTreeMap<String, Account>,
    #[serde(default)]
    queue: QueueSection,
}

/// The `[queue]` table: the outbox's only setting.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct QueueSection {
    spool: Option<PathBuf>,
}

/// One `[accounts.NAME]` table. Every key is optional; a flag given on the
/// command line wins over its key.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Account {
    pub host: Option<String>,
    /// A Unix socket instead of a host (no TLS or AUTH there).
    pub socket: Option<PathBuf>,
    /// `smtp` (default) or `lmtp`.
    pub protocol: Option<crate::connection::ProtocolArg>,
    pub port: Option<u16>,
    pub security: Option<SecurityKey>,
    pub starttls_port: Option<u16>,
    pub user: Option<String>,
    pub password_command: Option<String>,
    pub oauth_token_command: Option<String>,
    pub password_file: Option<PathBuf>,
    pub password_env: Option<String>,
    /// The system keyring's entry for this service and `user`.
    pub password_keyring: Option<String>,
    pub password: Option<Literal>,
    #[serde(default)]
    pub auth_mechanisms: Vec<crate::connection::MechanismArg>,
    pub from: Option<String>,
    #[serde(default)]
    pub from_patterns: Vec<String>,
    pub ehlo_name: Option<String>,
    /// `socks5h://[user:password@]host:port` or `http://...`; a secret when
    /// it holds a password.
    pub proxy: Option<Literal>,
    pub ca_file: Option<PathBuf>,
    #[serde(default)]
    pub system_roots: bool,
    #[serde(default)]
    pub pin_sha256: Vec<String>,
    #[serde(default)]
    pub pin_only: bool,
    pub client_cert: Option<PathBuf>,
    pub client_key: Option<PathBuf>,
    pub timeout: Option<u64>,
    pub connect_timeout: Option<u64>,
    pub max_time: Option<u64>,
    /// A line per message sent through this account goes here (`send --log`).
    pub logfile: Option<PathBuf>,
    /// OAuth 2.0 with tokens tls-mailer renews itself (`[accounts.NAME.oauth]`).
    pub oauth: Option<crate::oauth::OAuthSettings>,
}

impl Account {
    /// How many password sources are set (more than one is an error).
    pub fn password_sources(&self) -> usize {
        [
            self.password_command.is_some(),
            self.oauth_token_command.is_some(),
            self.password_file.is_some(),
            self.password_env.is_some(),
            self.password_keyring.is_some(),
            self.password.is_some(),
            self.oauth.is_some(),
        ]
        .into_iter()
        .filter(|set| *set)
        .count()
    }

    /// The values that cannot be used, whatever the flags: what the flags'
    /// own parsers would refuse.
    pub fn invalid(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.password_sources() > 1 {
            problems.push(
                "more than one of password_command, oauth_token_command, password_file, \
                 password_env, password_keyring, password and an [oauth] table: keep one"
                    .to_owned(),
            );
        }
        if let Some(oauth) = &self.oauth {
            problems.extend(oauth.invalid());
            if self.user.is_none() {
                problems.push("oauth needs user (the mailbox the token is for)".into());
            }
        }
        if self.port == Some(0) || self.starttls_port == Some(0) {
            problems.push("port 0: give a port from 1 to 65535".into());
        }
        for (key, value) in [
            ("timeout", self.timeout),
            ("connect_timeout", self.connect_timeout),
            ("max_time", self.max_time),
        ] {
            if value.is_some_and(|seconds| !(1..=86_400).contains(&seconds)) {
                problems.push(format!("{key}: give 1 to 86400 seconds"));
            }
        }
        if self.pin_only && self.pin_sha256.is_empty() {
            problems.push("pin_only without pin_sha256".into());
        }
        if self.pin_only && self.ca_file.is_some() {
            problems.push("pin_only with ca_file: keep one".into());
        }
        if self.client_cert.is_some() != self.client_key.is_some() {
            problems.push("client_cert and client_key go together".into());
        }
        if self.socket.is_some() {
            let beside: Vec<&str> = [
                (self.host.is_some(), "host"),
                (self.port.is_some(), "port"),
                (self.security.is_some(), "security"),
                (self.starttls_port.is_some(), "starttls_port"),
                (self.user.is_some(), "user"),
                (self.password_sources() > 0, "a password"),
                (!self.auth_mechanisms.is_empty(), "auth_mechanisms"),
                (self.ca_file.is_some(), "ca_file"),
                (!self.pin_sha256.is_empty(), "pin_sha256"),
                (self.client_cert.is_some(), "client_cert"),
            ]
            .into_iter()
            .filter_map(|(set, key)| set.then_some(key))
            .collect();
            if !beside.is_empty() {
                problems.push(format!(
                    "socket with {}: a Unix socket has no TLS and needs no AUTH (its file \
                     permissions protect it)",
                    beside.join(", ")
                ));
            }
        }
        problems
    }
}

/// A loaded configuration file.
#[derive(Debug)]
pub struct Config {
    pub path: PathBuf,
    pub default: Option<String>,
    pub accounts: BTreeMap<String, Account>,
    /// `[queue] spool`: the outbox when --spool is not given.
    pub spool: Option<PathBuf>,
}

/// Why an account was picked, for messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Picked {
    /// --account NAME.
    Named,
    /// Its `from` or one of its `from_patterns` matches the sender.
    Sender,
    /// The `default` key, or the only account.
    Default,
}

/// Where the file is looked for when --config is not given:
/// $XDG_CONFIG_HOME/tls-mailer/config.toml, else ~/.config/tls-mailer/config.toml.
pub fn default_path() -> Option<PathBuf> {
    let base = match std::env::var_os("XDG_CONFIG_HOME").map(PathBuf::from) {
        Some(dir) if dir.is_absolute() => dir,
        _ => home()?.join(".config"),
    };
    Some(base.join("tls-mailer").join("config.toml"))
}

fn home() -> Option<PathBuf> {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .filter(|home| home.is_absolute())
}

/// `path` with a leading `~/` replaced by $HOME.
pub fn expand_home(path: &Path) -> PathBuf {
    match (path.strip_prefix("~"), home()) {
        (Ok(rest), Some(home)) => home.join(rest),
        _ => path.to_owned(),
    }
}

/// The file --config names, else the default one if it exists; `None`
/// when there is no file to read.
pub fn find(explicit: Option<&Path>) -> Result<Option<Config>, Failure> {
    match explicit {
        Some(path) => load(path).map(Some),
        None => match default_path() {
            Some(path) if path.exists() => load(&path).map(Some),
            _ => Ok(None),
        },
    }
}

/// The outbox directory of `[queue] spool` in the file --config names (or
/// the default one), when `given` (--spool) is not there.
pub fn spool(given: Option<PathBuf>, config: Option<&Path>) -> Result<Option<PathBuf>, Failure> {
    match given {
        Some(dir) => Ok(Some(dir)),
        None => Ok(find(config)?.and_then(|config| config.spool)),
    }
}

/// Reads and checks the file at `path`. Every error names the file, and a
/// syntax error or an unknown key its line and column.
pub fn load(path: &Path) -> Result<Config, Failure> {
    let shown = path.display();
    let failed = |error: std::io::Error| Failure::Config(format!("config file {shown}: {error}"));
    let mut file = std::fs::File::open(path).map_err(failed)?;
    let metadata = file.metadata().map_err(failed)?;
    // The file may hold a password: read into memory that is wiped.
    let reserve = usize::try_from(metadata.len().min(1 << 20)).unwrap_or(0);
    let mut text = Zeroizing::new(String::with_capacity(reserve + 1));
    file.read_to_string(&mut text).map_err(failed)?;
    let raw: RawFile =
        toml::from_str(&text).map_err(|error| Failure::Config(parse_error(path, &text, &error)))?;
    let raw = if raw.defaults.is_some() {
        with_defaults(&text)
            .map_err(|error| Failure::Config(format!("config file {shown}: {error}")))?
    } else {
        raw
    };
    let config = Config {
        path: path.to_owned(),
        default: raw.default,
        accounts: raw.accounts,
        spool: raw.queue.spool.as_deref().map(expand_home),
    };
    if let Some(name) = config.accounts.iter().find_map(|(name, account)| {
        let proxy_password = account.proxy.as_ref().is_some_and(|url| {
            url.0
                .split_once("://")
                .is_some_and(|(_, rest)| rest.contains('@'))
        });
        let client_secret = account
            .oauth
            .as_ref()
            .is_some_and(|oauth| oauth.client_secret.is_some());
        (account.password.is_some() || proxy_password || client_secret).then_some(name)
    }) && let Some(mode) = exposed_mode(&metadata)
    {
        return Err(Failure::Config(format!(
            "config file {shown}: other users can read it (mode {mode:04o}) and it holds the \
             password of account {name} (or of its proxy, or its OAuth client secret); refused. Fix: chmod 600 {} (or \
             use password_command or password_file instead of password)",
            crate::secret_file::shell_word(&shown.to_string())
        )));
    }
    if let Some(default) = &config.default
        && !config.accounts.contains_key(default)
    {
        return Err(Failure::Config(format!(
            "config file {shown}: default = {default:?} names no account; {}",
            config.list()
        )));
    }
    Ok(config)
}

/// The file again, each account given the `[defaults]` keys it does not
/// set itself (a table such as `[defaults.oauth]` goes whole: an account
/// with its own keeps its own). The text was parsed once already, so
/// errors name their line there; this parse can only fail on a default
/// that no account may take.
fn with_defaults(text: &str) -> Result<RawFile, toml::de::Error> {
    let mut file: toml::Table = toml::from_str(text)?;
    let defaults = match file.remove("defaults") {
        Some(toml::Value::Table(defaults)) => defaults,
        _ => toml::Table::new(),
    };
    if let Some(toml::Value::Table(accounts)) = file.get_mut("accounts") {
        for (_, account) in accounts.iter_mut() {
            if let toml::Value::Table(account) = account {
                for (key, value) in &defaults {
                    account.entry(key.clone()).or_insert_with(|| value.clone());
                }
            }
        }
    }
    toml::Table::try_into(file)
}

/// The permission bits of a regular file that its group or others can read.
#[cfg(unix)]
fn exposed_mode(metadata: &std::fs::Metadata) -> Option<u32> {
    use std::os::unix::fs::PermissionsExt;
    let mode = metadata.permissions().mode() & 0o777;
    (metadata.is_file() && mode & 0o044 != 0).then_some(mode)
}

#[cfg(not(unix))]
fn exposed_mode(_metadata: &std::fs::Metadata) -> Option<u32> {
    None
}

/// A parse error as `FILE:LINE:COLUMN: what`, an unknown key with the
/// nearest known one.
fn parse_error(path: &Path, text: &str, error: &toml::de::Error) -> String {
    let message = error.message().trim_end();
    let message = match unknown_key(message) {
        Some((key, known)) => {
            let hint = nearest(key, &known)
                .map(|near| format!(" (did you mean `{near}`?)"))
                .unwrap_or_default();
            format!(
                "unknown key `{key}`{hint}; known keys: {}",
                known.join(", ")
            )
        }
        None => message.to_owned(),
    };
    match error.span() {
        Some(span) => {
            let before = text.get(..span.start).unwrap_or(text);
            let line = before.matches('\n').count() + 1;
            let column = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
            format!("{}:{line}:{column}: {message}", path.display())
        }
        None => format!("{}: {message}", path.display()),
    }
}

/// serde's "unknown field `x`, expected one of `a`, `b`" as ("x", [a, b]).
fn unknown_key(message: &str) -> Option<(&str, Vec<&str>)> {
    let rest = message.strip_prefix("unknown field `")?;
    let (key, rest) = rest.split_once('`')?;
    let known = rest.split('`').skip(1).step_by(2).collect();
    Some((key, known))
}

/// The known key closest to `key`, if it is a likely typo.
fn nearest<'a>(key: &str, known: &[&'a str]) -> Option<&'a str> {
    known
        .iter()
        .map(|candidate| (distance(key, candidate), *candidate))
        .filter(|(distance, candidate)| *distance <= (candidate.len() / 3).max(2))
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, candidate)| candidate)
}

/// Levenshtein distance, by characters.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut previous = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous + usize::from(ca != *cb);
            previous = row[j + 1];
            row[j + 1] = substitution.min(row[j] + 1).min(previous + 1);
        }
    }
    row[b.len()]
}

impl Config {
    /// "accounts in FILE: a, b", for errors.
    pub fn list(&self) -> String {
        if self.accounts.is_empty() {
            return format!("{} has no [accounts.NAME] table", self.path.display());
        }
        let names: Vec<&str> = self.accounts.keys().map(String::as_str).collect();
        format!(
            "the accounts in {} are: {}",
            self.path.display(),
            names.join(", ")
        )
    }

    /// The default account's name: the `default` key, else the only account.
    pub fn default_name(&self) -> Option<&str> {
        match &self.default {
            Some(name) => Some(name),
            None if self.accounts.len() == 1 => self.accounts.keys().next().map(String::as_str),
            None => None,
        }
    }

    /// The account to use: `name` (--account), else the one whose `from`
    /// is the sender, else the one with the longest `from_patterns` match,
    /// else the default.
    pub fn pick(
        &self,
        name: Option<&str>,
        sender: Option<&str>,
    ) -> Result<Option<(&str, &Account, Picked)>, Failure> {
        if let Some(name) = name {
            return match self.accounts.get_key_value(name) {
                Some((name, account)) => Ok(Some((name, account, Picked::Named))),
                None => Err(Failure::Config(format!(
                    "--account {name}: no such account; {}",
                    self.list()
                ))),
            };
        }
        if let Some(address) = sender.map(bare_address) {
            let exact = self.accounts.iter().find(|(_, account)| {
                account
                    .from
                    .as_deref()
                    .is_some_and(|from| bare_address(from).eq_ignore_ascii_case(address))
            });
            let by_pattern = || {
                self.accounts
                    .iter()
                    .filter_map(|(name, account)| {
                        account
                            .from_patterns
                            .iter()
                            .filter(|pattern| matches(pattern, address))
                            .map(|pattern| pattern.chars().filter(|c| *c != '*').count())
                            .max()
                            .map(|specificity| (specificity, name, account))
                    })
                    // The most specific pattern; among equals, the first name.
                    .max_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(a.1)))
                    .map(|(_, name, account)| (name, account))
            };
            if let Some((name, account)) = exact.or_else(by_pattern) {
                return Ok(Some((name, account, Picked::Sender)));
            }
        }
        Ok(self.default_name().and_then(|name| {
            self.accounts
                .get_key_value(name)
                .map(|(name, account)| (name.as_str(), account, Picked::Default))
        }))
    }
}

/// `text` as a TOML basic string, on one line.
pub fn toml_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The address of "Name <addr>", or the text itself.
pub fn bare_address(text: &str) -> &str {
    let text = text.trim();
    match (text.rfind('<'), text.rfind('>')) {
        (Some(open), Some(close)) if open < close => &text[open + 1..close],
        _ => text,
    }
}

/// Whether `address` matches `pattern`, where `*` stands for any run of
/// characters and `?` for one; case is ignored.
pub fn matches(pattern: &str, address: &str) -> bool {
    let pattern: Vec<char> = pattern.to_lowercase().chars().collect();
    let text: Vec<char> = address.to_lowercase().chars().collect();
    // Iterative glob with backtracking to the last star.
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some('*') => {
                star = Some((p, t));
                p += 1;
            }
            Some(c) if *c == '?' || *c == text[t] => {
                p += 1;
                t += 1;
            }
            _ => match star {
                Some((star_p, star_t)) => {
                    p = star_p + 1;
                    t = star_t + 1;
                    star = Some((star_p, star_t + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|c| *c == '*')
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // tests unwrap: a panic is a test failure

    use super::*;

    #[test]
    fn patterns_match_like_shell_globs_without_case() {
        assert!(matches("*@example.org", "Alice@Example.org"));
        assert!(matches("a?ice@*.org", "alice@mail.example.org"));
        assert!(matches("*", ""));
        assert!(!matches("*@example.org", "alice@example.org.evil"));
        assert!(!matches("*@example.org", "alice@example.com"));
        assert!(!matches("a*b*c", "aXbY"));
        assert!(matches("a*b*c", "aXbYc"));
    }

    #[test]
    fn typos_find_the_nearest_key() {
        let known = ["host", "port", "password_file", "password_env"];
        assert_eq!(nearest("hots", &known), Some("host"));
        assert_eq!(nearest("pasword_file", &known), Some("password_file"));
        assert_eq!(nearest("colour", &known), None);
        let (key, list) =
            unknown_key("unknown field `hots`, expected one of `host`, `port`").unwrap();
        assert_eq!((key, list), ("hots", vec!["host", "port"]));
    }

    #[test]
    fn strings_are_written_as_toml_reads_them() {
        for text in [
            "plain",
            r#"printf '%s\n' "$PW""#,
            "tab\there",
            "bell\u{7}",
            "é",
        ] {
            let written = format!("k = {}", toml_string(text));
            let table: toml::Table = toml::from_str(&written).unwrap();
            assert_eq!(table["k"].as_str(), Some(text), "{written}");
            assert!(!written.contains('\n'));
        }
    }

    #[test]
    fn password_keyring_is_a_key_and_counts_as_a_password_source() {
        // Parsed whatever the build: a file never fails for lack of a feature.
        let account: Account =
            toml::from_str("user = \"alice\"\npassword_keyring = \"smtp.example.org\"\n").unwrap();
        assert_eq!(
            account.password_keyring.as_deref(),
            Some("smtp.example.org")
        );
        assert_eq!(account.password_sources(), 1);
        assert!(account.invalid().is_empty(), "{:?}", account.invalid());
        let two: Account =
            toml::from_str("password_keyring = \"s\"\npassword_env = \"V\"\n").unwrap();
        assert_eq!(two.password_sources(), 2);
        assert!(
            two.invalid()[0].contains("password_keyring"),
            "{:?}",
            two.invalid()
        );
    }

    #[test]
    fn senders_are_compared_by_address() {
        assert_eq!(bare_address("Alice <a@b.org>"), "a@b.org");
        assert_eq!(bare_address(" a@b.org "), "a@b.org");
    }
}
