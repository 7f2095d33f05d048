//! `tls-mailer config import-msmtprc`: msmtp's accounts in this file's
//! format. Each account is written whole (TOML has no inheritance); what
//! has no equivalent is kept as a `# not converted:` comment.

use std::io::Write;
use std::path::{Path, PathBuf};

use super::toml_string as quote;
use crate::exit::Failure;

/// Arguments of `config import-msmtprc`.
#[derive(Debug, clap::Args)]
pub struct ImportArgs {
    /// The msmtp configuration (default: ~/.msmtprc, else
    /// $XDG_CONFIG_HOME/msmtp/config).
    #[arg(value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// Write the converted file here (mode 0600) instead of stdout.
    #[arg(short, long, value_name = "OUT")]
    pub output: Option<PathBuf>,
    /// With -o, replace OUT if it exists.
    #[arg(long, requires = "output")]
    pub force: bool,
}

/// A line that was not converted, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Skipped {
    pub line_number: usize,
    pub line: String,
    pub why: String,
}

/// One `command argument` line.
#[derive(Clone, Debug)]
struct Setting {
    key: String,
    value: String,
    line_number: usize,
    line: String,
}

#[derive(Debug)]
struct Account {
    name: String,
    settings: Vec<Setting>,
}

/// The converted text, the lines left as comments, and the accounts whose
/// literal password was kept.
#[derive(Debug)]
pub struct Converted {
    pub text: String,
    pub skipped: Vec<Skipped>,
    pub literal_passwords: Vec<String>,
}

/// Runs `config import-msmtprc`.
pub fn run(args: &ImportArgs) -> Result<u8, Failure> {
    let input = match &args.file {
        Some(path) => path.clone(),
        None => default_input().ok_or_else(|| {
            Failure::NoInput(
                "no msmtp configuration found at ~/.msmtprc or $XDG_CONFIG_HOME/msmtp/config: \
                 give FILE"
                    .into(),
            )
        })?,
    };
    let text = std::fs::read_to_string(&input)
        .map_err(|error| Failure::NoInput(format!("{}: {error}", input.display())))?;
    let converted = convert(&text);
    for skipped in &converted.skipped {
        eprintln!(
            "tls-mailer: {}:{}: not converted: {} ({})",
            input.display(),
            skipped.line_number,
            skipped.line,
            skipped.why
        );
    }
    for name in &converted.literal_passwords {
        eprintln!(
            "tls-mailer: warning: account {name}: its password is kept as written; \
             password_command (e.g. `pass show mail/{name}`) keeps it out of the file"
        );
    }
    match &args.output {
        None => print!("{}", converted.text),
        Some(path) => write_private(path, &converted.text, args.force)?,
    }
    Ok(0)
}

fn default_input() -> Option<PathBuf> {
    let home = std::env::var_os("HOME").map(PathBuf::from);
    let msmtprc = home.as_ref().map(|home| home.join(".msmtprc"));
    let xdg = match std::env::var_os("XDG_CONFIG_HOME").map(PathBuf::from) {
        Some(dir) if dir.is_absolute() => Some(dir),
        _ => home.map(|home| home.join(".config")),
    }
    .map(|dir| dir.join("msmtp").join("config"));
    [msmtprc, xdg]
        .into_iter()
        .flatten()
        .find(|path| path.exists())
}

/// Writes `text` to a new file at `path` readable by its owner only (an
/// existing one only with `force`).
fn write_private(path: &Path, text: &str, force: bool) -> Result<(), Failure> {
    let failed = |error: std::io::Error| Failure::Output {
        target: path.display().to_string(),
        error,
    };
    let mut options = std::fs::OpenOptions::new();
    options.write(true);
    if force {
        options.create(true).truncate(true);
    } else {
        options.create_new(true);
    }
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path).map_err(|error| {
        if error.kind() == std::io::ErrorKind::AlreadyExists {
            Failure::Usage(format!(
                "{} exists: give --force to replace it",
                path.display()
            ))
        } else {
            failed(error)
        }
    })?;
    // A replaced file keeps its mode: make it private too.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))
            .map_err(failed)?;
    }
    file.write_all(text.as_bytes()).map_err(failed)?;
    file.sync_all().map_err(failed)
}

/// The argument of a line: a double-quoted string (with `\"` and `\\`), or
/// the rest of the line.
fn argument(rest: &str) -> Option<String> {
    let rest = rest.trim();
    let Some(quoted) = rest.strip_prefix('"') else {
        return Some(rest.to_owned());
    };
    let mut value = String::new();
    let mut chars = quoted.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => value.push(chars.next()?),
            '"' => return chars.as_str().trim().is_empty().then_some(value),
            c => value.push(c),
        }
    }
    None
}

/// Sets `setting`, in the place of an earlier one of the same key (or the
/// other password key: an account that inherits passwordeval and sets a
/// password has one source, its own).
fn set(settings: &mut Vec<Setting>, setting: Setting) {
    let slot = |key: &str| match key {
        "passwordeval" => "password".to_owned(),
        key => key.to_owned(),
    };
    match settings
        .iter_mut()
        .find(|old| slot(&old.key) == slot(&setting.key))
    {
        Some(old) => *old = setting,
        None => settings.push(setting),
    }
}

/// Converts an msmtp configuration.
pub fn convert(text: &str) -> Converted {
    let mut skipped = Vec::new();
    let mut defaults: Vec<Setting> = Vec::new();
    let mut accounts: Vec<Account> = Vec::new();
    // None: in `defaults` (or before any section).
    let mut current: Option<usize> = None;
    for (index, raw) in text.lines().enumerate() {
        let line_number = index + 1;
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let skip = |why: &str| Skipped {
            line_number,
            line: line.to_owned(),
            why: why.to_owned(),
        };
        let (key, rest) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
        match key {
            "defaults" => current = None,
            "account" => {
                let (name, parents) = match rest.split_once(':') {
                    Some((name, parents)) => (name.trim(), parents),
                    None => (rest.trim(), ""),
                };
                if name.is_empty() {
                    skipped.push(skip("an account needs a name"));
                    continue;
                }
                let mut settings = defaults.clone();
                for parent in parents.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                    match accounts.iter().find(|account| account.name == parent) {
                        Some(parent) => {
                            for setting in &parent.settings {
                                set(&mut settings, setting.clone());
                            }
                        }
                        None => skipped.push(skip(&format!(
                            "no account {parent} is defined before it to inherit from"
                        ))),
                    }
                }
                accounts.retain(|account| account.name != name);
                accounts.push(Account {
                    name: name.to_owned(),
                    settings,
                });
                current = Some(accounts.len() - 1);
            }
            _ => {
                let Some(value) = argument(rest) else {
                    skipped.push(skip("an unterminated quoted argument"));
                    continue;
                };
                let setting = Setting {
                    key: key.to_owned(),
                    value,
                    line_number,
                    line: line.to_owned(),
                };
                match current.and_then(|index| accounts.get_mut(index)) {
                    Some(account) => set(&mut account.settings, setting),
                    None => set(&mut defaults, setting),
                }
            }
        }
    }
    // `account default : NAME` alone names the default account.
    let mut default = None;
    if let Some(index) = accounts
        .iter()
        .position(|account| account.name == "default")
    {
        let alias = text.lines().find_map(|line| {
            let rest = line.trim().strip_prefix("account")?;
            let (name, parent) = rest.split_once(':')?;
            (name.trim() == "default" && !parent.contains(',')).then(|| parent.trim().to_owned())
        });
        match alias {
            Some(parent)
                if accounts.iter().any(|account| account.name == parent)
                    && same_settings(
                        &accounts[index],
                        accounts.iter().find(|a| a.name == parent),
                    ) =>
            {
                accounts.remove(index);
                default = Some(parent);
            }
            _ => default = Some("default".to_owned()),
        }
    }
    let mut out = String::from(
        "# Converted from an msmtp configuration by `tls-mailer config import-msmtprc`.\n",
    );
    if let Some(default) = &default {
        out.push_str(&format!("default = {}\n", quote(default)));
    }
    let mut literal_passwords = Vec::new();
    for account in &accounts {
        out.push('\n');
        let key = if account
            .name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            account.name.clone()
        } else {
            quote(&account.name)
        };
        out.push_str(&format!("[accounts.{key}]\n"));
        let (lines, account_skipped, literal) = convert_account(&account.settings);
        for line in lines {
            out.push_str(&line);
            out.push('\n');
        }
        if literal {
            literal_passwords.push(account.name.clone());
        }
        for skip in account_skipped {
            if !skipped.contains(&skip) {
                skipped.push(skip);
            }
        }
    }
    skipped.sort_by_key(|skip| skip.line_number);
    Converted {
        text: out,
        skipped,
        literal_passwords,
    }
}

/// Whether `account` has exactly the settings of `parent` (it set none of
/// its own).
fn same_settings(account: &Account, parent: Option<&Account>) -> bool {
    parent.is_some_and(|parent| {
        account.settings.len() == parent.settings.len()
            && account.settings.iter().all(|setting| {
                parent
                    .settings
                    .iter()
                    .any(|p| p.line_number == setting.line_number)
            })
    })
}

fn on(value: &str) -> Option<bool> {
    match value {
        "on" | "" => Some(true),
        "off" => Some(false),
        _ => None,
    }
}

/// One account's TOML lines, the lines not converted, and whether a
/// literal password was kept.
fn convert_account(settings: &[Setting]) -> (Vec<String>, Vec<Skipped>, bool) {
    let mut lines = Vec::new();
    let mut skipped = Vec::new();
    let mut literal = false;
    let get = |key: &str| settings.iter().find(|setting| setting.key == key);
    let auth_off = get("auth").is_some_and(|setting| setting.value == "off");
    let bearer = get("auth")
        .is_some_and(|setting| setting.value == "oauthbearer" || setting.value == "xoauth2");
    let tls = get("tls");
    let tls_on = tls.and_then(|setting| on(&setting.value));
    let starttls = get("tls_starttls").map(|setting| on(&setting.value));
    let mut not_converted = |setting: &Setting, why: &str, lines: &mut Vec<String>| {
        lines.push(format!("# not converted: {} ({why})", setting.line));
        skipped.push(Skipped {
            line_number: setting.line_number,
            line: setting.line.clone(),
            why: why.to_owned(),
        });
    };
    for setting in settings {
        let value = &setting.value;
        match setting.key.as_str() {
            "host" => lines.push(format!("host = {}", quote(value))),
            "port" => match value.parse::<u16>() {
                Ok(port) if port > 0 => lines.push(format!("port = {port}")),
                _ => not_converted(setting, "not a port number", &mut lines),
            },
            "tls" => match tls_on {
                Some(true) => match starttls {
                    Some(Some(false)) => lines.push("security = \"implicit-tls\"".into()),
                    None | Some(Some(true)) => lines.push("security = \"starttls\"".into()),
                    Some(None) => {} // reported at tls_starttls
                },
                Some(false) => not_converted(
                    setting,
                    "tls-mailer never sends in plaintext: it uses implicit TLS unless you set \
                     security",
                    &mut lines,
                ),
                None => not_converted(setting, "neither on nor off", &mut lines),
            },
            "tls_starttls" => match (tls_on, starttls) {
                (_, Some(None)) => not_converted(setting, "neither on nor off", &mut lines),
                (Some(true), _) => {} // written with tls
                _ => not_converted(setting, "tls is not on", &mut lines),
            },
            "tls_trust_file" if value == "system" => {} // the default
            "tls_trust_file" => lines.push(format!("ca_file = {}", quote(value))),
            "tls_cert_file" => lines.push(format!("client_cert = {}", quote(value))),
            "tls_key_file" => lines.push(format!("client_key = {}", quote(value))),
            "tls_fingerprint" => not_converted(
                setting,
                "a fingerprint of the whole certificate, which changes at every renewal, \
                 cannot be turned into pin_sha256, the SHA-256 of its public key: get that \
                 from the server's certificate (README, Pinned public keys)",
                &mut lines,
            ),
            "auth" => match value.as_str() {
                "on" | "" | "off" => {} // off: no user is written, so no AUTH
                "plain" => lines.push("auth_mechanisms = [\"plain\"]".into()),
                "login" => lines.push("auth_mechanisms = [\"login\"]".into()),
                "scram-sha-256" => lines.push("auth_mechanisms = [\"scram-sha-256\"]".into()),
                "cram-md5" => lines.push("auth_mechanisms = [\"cram-md5\"]".into()),
                // A token (passwordeval's) picks OAUTHBEARER or XOAUTH2 by itself.
                "oauthbearer" | "xoauth2" => {}
                _ => not_converted(
                    setting,
                    "tls-mailer authenticates with PLAIN, LOGIN, SCRAM-SHA-256 or CRAM-MD5 \
                     (and OAUTHBEARER or XOAUTH2 with a token)",
                    &mut lines,
                ),
            },
            "user" | "passwordeval" | "password" if auth_off => {
                not_converted(setting, "auth is off", &mut lines);
            }
            "user" => lines.push(format!("user = {}", quote(value))),
            "passwordeval" if bearer => {
                lines.push(format!("oauth_token_command = {}", quote(value)));
            }
            "passwordeval" => lines.push(format!("password_command = {}", quote(value))),
            "logfile" if value == "-" => {
                not_converted(setting, "a log on stdout: use send --log FILE", &mut lines);
            }
            "logfile" => lines.push(format!("logfile = {}", quote(value))),
            "password" => {
                literal = true;
                lines.push(format!("password = {}", quote(value)));
            }
            "from" if value.contains(['*', '?']) => {
                lines.push(format!("from_patterns = [{}]", quote(value)));
            }
            "from" => lines.push(format!("from = {}", quote(value))),
            "domain" => lines.push(format!("ehlo_name = {}", quote(value))),
            "timeout" if value == "off" => {}
            "timeout" => match value.parse::<u64>() {
                Ok(seconds) if (1..=86_400).contains(&seconds) => {
                    lines.push(format!("timeout = {seconds}"));
                }
                _ => not_converted(setting, "not 1 to 86400 seconds", &mut lines),
            },
            "tls_certcheck" if value == "on" => {}
            "tls_certcheck" => not_converted(
                setting,
                "tls-mailer always checks certificates (pin_only with pin_sha256 is its way \
                 to trust a self-signed server)",
                &mut lines,
            ),
            _ => not_converted(setting, "tls-mailer has no such setting", &mut lines),
        }
    }
    if tls.is_none() {
        lines.push(
            "# msmtp's default is tls off, which tls-mailer never does: it uses implicit TLS \
             unless you set security"
                .into(),
        );
    }
    (lines, skipped, literal)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_may_be_quoted() {
        assert_eq!(argument(" plain "), Some("plain".into()));
        assert_eq!(argument(r#" "a \"b\" c" "#), Some(r#"a "b" c"#.into()));
        assert_eq!(argument(r#""open"#), None);
        assert_eq!(argument(r#""a" trailing"#), None);
    }

    #[test]
    fn tls_modes_become_security() {
        let security = |text: &str| {
            let converted = convert(&format!("account a\nhost h\n{text}\n"));
            converted
                .text
                .lines()
                .find(|line| line.starts_with("security"))
                .map(str::to_owned)
        };
        assert_eq!(
            security("tls on\ntls_starttls off").as_deref(),
            Some("security = \"implicit-tls\"")
        );
        assert_eq!(
            security("tls on").as_deref(),
            Some("security = \"starttls\"")
        );
        assert_eq!(security("tls off"), None);
    }
}
