//! `tls-mailer config check [--connect]`: the file's accounts, what is
//! wrong with each, and with --connect whether each server lets us in.

use std::path::PathBuf;

use tls_mailer::outbox::Route;

use super::{Account, Config};
use crate::connection::{Clients, ConnectionArgs};
use crate::exit::{self, Failure};

/// Arguments of `config check`.
#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// The file to check (default: $XDG_CONFIG_HOME/tls-mailer/config.toml,
    /// else ~/.config/tls-mailer/config.toml).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Also log in to each account's server and QUIT, sending nothing; one
    /// line per account. Runs each password_command.
    #[arg(long)]
    pub connect: bool,
}

/// Runs `config check`: 0 when all is well, 78 when the file or an account
/// is wrong, or with --connect the code of the first account that failed.
pub fn run(args: &CheckArgs) -> Result<u8, Failure> {
    let path = match &args.config {
        Some(path) => path.clone(),
        None => super::default_path().ok_or_else(|| {
            Failure::Config("no configuration file: $HOME is not set; give --config FILE".into())
        })?,
    };
    let config = super::load(&path)?;
    println!("{}: {}", config.path.display(), summary(&config));
    if let Some(spool) = &config.spool {
        println!(
            "[queue]\n  spool = {}",
            super::toml_string(&spool.to_string_lossy())
        );
    }
    let mut code = 0;
    for (name, account) in &config.accounts {
        let default = if config.default_name() == Some(name) {
            " (default)"
        } else {
            ""
        };
        println!("[accounts.{name}]{default}");
        for line in describe(account) {
            println!("  {line}");
        }
        let problems = problems(&config, name, account);
        for problem in &problems {
            println!("  problem: {problem}");
        }
        if !problems.is_empty() {
            code = exit::CONFIG;
        }
    }
    if code != 0 || !args.connect {
        return Ok(code);
    }
    for name in config.accounts.keys() {
        match connect(&config, name) {
            Ok(line) => println!("{name}: ok: {line}"),
            Err(failure) => {
                println!("{name}: failed: {failure}");
                if code == 0 {
                    code = exit::code(&failure);
                }
            }
        }
    }
    Ok(code)
}

fn summary(config: &Config) -> String {
    let count = config.accounts.len();
    let default = config
        .default_name()
        .map_or_else(|| "no default".to_owned(), |name| format!("default {name}"));
    format!(
        "{count} account{}, {default}",
        if count == 1 { "" } else { "s" }
    )
}

/// The connection flags as the account sets them.
fn args_of(config: &Config, name: &str) -> Result<ConnectionArgs, Failure> {
    use clap::{Args, FromArgMatches};
    let command = ConnectionArgs::augment_args(clap::Command::new("check"));
    let matches = command
        .try_get_matches_from(["check"])
        .map_err(|error| Failure::Config(error.to_string()))?;
    let mut args = ConnectionArgs::from_arg_matches(&matches)
        .map_err(|error| Failure::Config(error.to_string()))?;
    args.config = Some(config.path.clone());
    args.account = Some(name.to_owned());
    args.apply_config(None, false)?;
    Ok(args)
}

/// What is wrong with an account, checked without connecting or reading
/// its password: no host, two password sources, CA file, pins and client
/// certificate that cannot be used.
fn problems(config: &Config, name: &str, account: &Account) -> Vec<String> {
    let mut problems = Vec::new();
    if account.host.is_none() {
        problems.push("no host: `host = \"smtp.example.org\"`".to_owned());
    }
    if account.password_sources() > 0 && account.user.is_none() && account.oauth.is_none() {
        problems.push("a password source but no user: the password would never be used".into());
    }
    problems.extend(account.invalid());
    if account.password_keyring.is_some() && !cfg!(feature = "keyring") {
        problems.push(format!("password_keyring: {}", crate::keyring::NOT_BUILT));
    }
    if let Some(path) = &account.password_file
        && let Err(error) = std::fs::metadata(super::expand_home(path))
    {
        problems.push(format!("password_file {}: {error}", path.display()));
    }
    if problems.is_empty() {
        // The settings a client is built from, without the user (so that
        // no password is read): CA file, pins, client certificate.
        let built = args_of(config, name).and_then(|args| {
            let mut route = Route::new(
                account.host.as_deref().unwrap_or("localhost"),
                1,
                tls_mailer::Security::ImplicitTls,
            );
            route.user = None;
            Clients::new(&args).builder(&route)?.build()?;
            Ok(())
        });
        if let Err(failure) = built {
            problems.push(failure.to_string());
        }
    }
    problems
}

/// Logs in to the account's server and says QUIT: what the connection was.
fn connect(config: &Config, name: &str) -> Result<String, Failure> {
    let args = args_of(config, name)?;
    let route = args.route()?;
    let client = Clients::new(&args).builder(&route)?.build()?;
    let connection = client.connect()?;
    let protection = match (connection.security(), connection.tls()) {
        (tls_mailer::Security::StartTls, Some(tls)) => format!("STARTTLS {}", tls.version),
        (_, Some(tls)) => format!("implicit TLS {}", tls.version),
        (_, None) => "no TLS".to_owned(),
    };
    let auth = match &route.user {
        Some(user) => format!("authenticated as {user}"),
        None => "no user: not authenticated".to_owned(),
    };
    let target = format!("{}:{}", route.host, route.port);
    connection.quit()?;
    Ok(format!("{target}, {protection}, {auth}"))
}

/// The account's settings, one `key = value` a line, secrets redacted.
pub fn describe(account: &Account) -> Vec<String> {
    let string = super::toml_string;
    let mut lines = Vec::new();
    let mut put = |key: &str, value: Option<String>| {
        if let Some(value) = value {
            lines.push(format!("{key} = {value}"));
        }
    };
    let list = |items: &[String]| {
        (!items.is_empty()).then(|| {
            let items: Vec<String> = items.iter().map(|item| string(item)).collect();
            format!("[{}]", items.join(", "))
        })
    };
    let path = |path: &Option<PathBuf>| path.as_ref().map(|path| string(&path.to_string_lossy()));
    put("host", account.host.as_deref().map(string));
    put("port", account.port.map(|port| port.to_string()));
    put(
        "security",
        account.security.map(|security| string(security.as_str())),
    );
    put(
        "starttls_port",
        account.starttls_port.map(|p| p.to_string()),
    );
    put("user", account.user.as_deref().map(string));
    put(
        "password_command",
        account.password_command.as_deref().map(string),
    );
    put(
        "oauth_token_command",
        account.oauth_token_command.as_deref().map(string),
    );
    put("password_file", path(&account.password_file));
    put("password_env", account.password_env.as_deref().map(string));
    put(
        "password_keyring",
        account.password_keyring.as_deref().map(string),
    );
    put(
        "password",
        account.password.as_ref().map(|_| "<redacted>".into()),
    );
    let mechanisms: Vec<String> = account
        .auth_mechanisms
        .iter()
        .map(|mechanism| mechanism.name().to_owned())
        .collect();
    put("auth_mechanisms", list(&mechanisms));
    put("from", account.from.as_deref().map(string));
    put("from_patterns", list(&account.from_patterns));
    put("ehlo_name", account.ehlo_name.as_deref().map(string));
    put("ca_file", path(&account.ca_file));
    put("system_roots", account.system_roots.then(|| "true".into()));
    put("pin_sha256", list(&account.pin_sha256));
    put("pin_only", account.pin_only.then(|| "true".into()));
    put("client_cert", path(&account.client_cert));
    put("client_key", path(&account.client_key));
    put("timeout", account.timeout.map(|t| t.to_string()));
    put(
        "connect_timeout",
        account.connect_timeout.map(|t| t.to_string()),
    );
    put("max_time", account.max_time.map(|t| t.to_string()));
    put("logfile", path(&account.logfile));
    if let Some(oauth) = &account.oauth {
        put("oauth.provider", oauth.provider.as_deref().map(string));
        put("oauth.client_id", oauth.client_id.as_deref().map(string));
        put(
            "oauth.client_secret",
            oauth.client_secret.as_ref().map(|_| "<redacted>".into()),
        );
        put(
            "oauth.client_secret_command",
            oauth.client_secret_command.as_deref().map(string),
        );
        put(
            "oauth.refresh_token_command",
            oauth.refresh_token_command.as_deref().map(string),
        );
        put("oauth.refresh_token_file", path(&oauth.refresh_token_file));
        put("oauth.token_url", oauth.token_url.as_deref().map(string));
        put(
            "oauth.device_authorization_url",
            oauth.device_authorization_url.as_deref().map(string),
        );
        put("oauth.scope", oauth.scope.as_deref().map(string));
        put("oauth.ca_file", path(&oauth.ca_file));
    }
    lines
}
