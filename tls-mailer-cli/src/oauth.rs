//! OAuth 2.0 for an account (`[accounts.NAME.oauth]`): the access token is
//! obtained and renewed by tls-mailer itself with the account's refresh
//! token, and kept between runs in a private token store; `tls-mailer
//! oauth login` gets the first refresh token with the device flow.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tls_mailer::TrustAnchors;
use tls_mailer::oauth::{AccessToken, OAuthClient, Provider, RefreshingToken, TokenSource};
use zeroize::Zeroizing;

use crate::config::expand_home;
use crate::exit::Failure;
use crate::password::{Literal, first_line_of_command, first_line_of_file};

/// The `[accounts.NAME.oauth]` table.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OAuthSettings {
    /// `google` or `microsoft`: the endpoints and scope, unless given.
    pub provider: Option<String>,
    pub client_id: Option<String>,
    /// A client secret written in the file (the file must then be 0600).
    pub client_secret: Option<Literal>,
    pub client_secret_command: Option<String>,
    /// The refresh token: the first line this prints, or of this file;
    /// without either, the one `tls-mailer oauth login` stored.
    pub refresh_token_command: Option<String>,
    pub refresh_token_file: Option<PathBuf>,
    pub token_url: Option<String>,
    pub device_authorization_url: Option<String>,
    pub authorization_url: Option<String>,
    pub scope: Option<String>,
    /// The CAs trusted for the token endpoint (default: the system's).
    pub ca_file: Option<PathBuf>,
}

impl OAuthSettings {
    fn provider(&self) -> Option<Provider> {
        self.provider.as_deref().and_then(Provider::named)
    }

    /// What cannot be used, whatever the flags.
    pub fn invalid(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if let Some(name) = &self.provider
            && Provider::named(name).is_none()
        {
            let known: Vec<&str> = Provider::ALL.iter().map(|p| p.name).collect();
            problems.push(format!(
                "oauth.provider {name:?} is not known: use {}, or give oauth.token_url",
                known.join(" or ")
            ));
        }
        if self.client_id.as_deref().is_none_or(str::is_empty) {
            problems.push(
                "oauth needs client_id (the id of the app registered with the provider)".into(),
            );
        }
        if self.provider.is_none() && self.token_url.is_none() {
            problems.push("oauth needs provider or token_url".into());
        }
        if self.client_secret.is_some() && self.client_secret_command.is_some() {
            problems.push("oauth: client_secret and client_secret_command: keep one".into());
        }
        if self.refresh_token_command.is_some() && self.refresh_token_file.is_some() {
            problems.push("oauth: refresh_token_command and refresh_token_file: keep one".into());
        }
        problems
    }

    fn token_url(&self) -> Option<&str> {
        self.token_url
            .as_deref()
            .or(self.provider().map(|provider| provider.token_url))
    }

    fn device_authorization_url(&self) -> Option<&str> {
        self.device_authorization_url.as_deref().or(self
            .provider()
            .map(|provider| provider.device_authorization_url))
    }

    fn authorization_url(&self) -> Option<&str> {
        self.authorization_url
            .as_deref()
            .or(self.provider().map(|provider| provider.authorization_url))
    }

    /// How `oauth login` signs in when not told: the device flow where it
    /// may ask for mail, else the browser.
    fn default_flow(&self) -> Option<Flow> {
        match self.provider() {
            Some(provider)
                if self.device_authorization_url.is_none() && self.authorization_url.is_none() =>
            {
                Some(if provider.device_flow {
                    Flow::Device
                } else {
                    Flow::Browser
                })
            }
            _ if self.device_authorization_url().is_some() => Some(Flow::Device),
            _ if self.authorization_url().is_some() => Some(Flow::Browser),
            _ => None,
        }
    }

    fn scope(&self) -> Option<&str> {
        self.scope
            .as_deref()
            .or(self.provider().map(|provider| provider.scope))
    }
}

/// An account's OAuth settings, with what is needed to use them.
#[derive(Clone, Debug)]
pub struct AccountOAuth {
    /// The account's name (the token store is named after it).
    pub account: String,
    /// "account NAME in FILE", for messages.
    pub origin: String,
    pub settings: OAuthSettings,
    /// The account's proxy, for the token endpoint too.
    pub proxy: Option<String>,
    /// The account's `timeout`, for each request to the token endpoint too.
    pub timeout: Option<u64>,
}

/// What the token store keeps for an account, in a private file.
#[derive(Default, Deserialize, Serialize)]
struct Stored {
    access_token: Option<String>,
    /// Seconds since 1970.
    expires_at: Option<u64>,
    /// A refresh token from a login or a rotation (never a copy of the
    /// configured one).
    refresh_token: Option<String>,
    /// The SHA-256 of the configured refresh token this one replaced: a
    /// rotation is used only while the configuration still names the
    /// token it came from.
    replaces: Option<String>,
}

impl Drop for Stored {
    fn drop(&mut self) {
        use zeroize::Zeroize as _;
        self.access_token.zeroize();
        self.refresh_token.zeroize();
    }
}

impl AccountOAuth {
    fn key(&self, key: &str) -> String {
        format!("oauth.{key} ({})", self.origin)
    }

    fn client(&self) -> Result<OAuthClient, Failure> {
        let settings = &self.settings;
        let token_url = settings.token_url().ok_or_else(|| {
            Failure::Config(format!(
                "{}: oauth needs provider or token_url",
                self.origin
            ))
        })?;
        let mut builder =
            OAuthClient::builder(token_url, settings.client_id.clone().unwrap_or_default());
        if let Some(url) = settings.device_authorization_url() {
            builder = builder.device_authorization_url(url);
        }
        if let Some(url) = settings.authorization_url() {
            builder = builder.authorization_url(url);
        }
        if let Some(secret) = &settings.client_secret {
            builder = builder.client_secret(secret.0.as_str());
        } else if let Some(command) = &settings.client_secret_command {
            let secret = first_line_of_command(&self.key("client_secret_command"), command)?;
            builder = builder.client_secret(secret.as_str());
        }
        if let Some(path) = &settings.ca_file {
            let path = expand_home(path);
            let anchors = TrustAnchors::default()
                .system(false)
                .add_pem_file(&path)
                .map_err(|error| {
                    Failure::Config(format!(
                        "{} {}: {error}",
                        self.key("ca_file"),
                        path.display()
                    ))
                })?;
            builder = builder.trust_anchors(anchors);
        }
        if let Some(url) = &self.proxy {
            builder = builder.proxy(tls_mailer::Proxy::parse(url)?);
        }
        if let Some(seconds) = self.timeout {
            builder = builder.timeout(Duration::from_secs(seconds));
        }
        Ok(builder.build()?)
    }

    /// The refresh token configured by command or file, if any.
    fn configured_refresh_token(&self) -> Result<Option<Zeroizing<String>>, Failure> {
        let settings = &self.settings;
        let token = if let Some(command) = &settings.refresh_token_command {
            first_line_of_command(&self.key("refresh_token_command"), command)?
        } else if let Some(path) = &settings.refresh_token_file {
            first_line_of_file(&self.key("refresh_token_file"), &expand_home(path))?
        } else {
            return Ok(None);
        };
        if token.is_empty() {
            return Err(Failure::Config(format!(
                "{}: the refresh token is empty",
                self.origin
            )));
        }
        Ok(Some(token))
    }

    fn store_path(&self) -> Result<PathBuf, Failure> {
        let dir = store_dir().ok_or_else(|| {
            Failure::Config(
                "there is no place for the OAuth token store: neither XDG_STATE_HOME nor HOME \
                 is set"
                    .into(),
            )
        })?;
        Ok(dir.join(format!("{}.json", file_name(&self.account))))
    }

    /// The source of access tokens for this account: the stored one while
    /// valid, else one from the refresh grant, kept in the store.
    pub fn token_source(&self) -> Result<Arc<dyn TokenSource>, Failure> {
        let path = self.store_path()?;
        let stored = read_store(&path)?;
        let configured = self.configured_refresh_token()?;
        let configured_hash = configured.as_deref().map(|token| sha256_hex(token));
        let refresh_token = match (&configured, &stored.refresh_token) {
            (Some(_), Some(rotated)) if stored.replaces == configured_hash => {
                Zeroizing::new(rotated.clone())
            }
            (Some(configured), _) => configured.clone(),
            (None, Some(stored)) => Zeroizing::new(stored.clone()),
            (None, None) => {
                return Err(Failure::Config(format!(
                    "{}: no OAuth refresh token yet; run `tls-mailer oauth login --account {}`, \
                     or set oauth.refresh_token_command or oauth.refresh_token_file",
                    self.origin,
                    crate::secret_file::shell_word(&self.account)
                )));
            }
        };
        let mut source = RefreshingToken::new(self.client()?, refresh_token.as_str());
        // A token stored for another refresh token (the configuration now
        // names a new one) is not used.
        let store_matches = configured.is_none()
            || stored.replaces == configured_hash
            || stored.refresh_token.is_none();
        if store_matches && let Some(token) = stored.access_token() {
            source = source.with_access_token(token);
        }
        let keeper = self.clone();
        let source = source.on_refresh(move |token| {
            if let Err(failure) = keeper.keep(token, configured.as_deref().map(String::as_str)) {
                eprintln!("tls-mailer: warning: the new OAuth token is not kept: {failure}");
            }
        });
        Ok(Arc::new(StoredTokens {
            tokens: source,
            store: path,
            matches: configured_hash,
        }))
    }

    /// Writes `token` to the store; the refresh token only when it is not
    /// the configured one (a login's, or a rotation's).
    fn keep(&self, token: &AccessToken, configured: Option<&str>) -> Result<(), Failure> {
        let refresh_token = token
            .refresh_token()
            .filter(|refresh| Some(*refresh) != configured);
        let stored = Stored {
            access_token: Some(token.secret().to_owned()),
            expires_at: token
                .expires_at()
                .and_then(|at| at.duration_since(UNIX_EPOCH).ok())
                .map(|since| since.as_secs()),
            refresh_token: refresh_token.map(str::to_owned),
            replaces: refresh_token.and(configured.map(sha256_hex)),
        };
        write_store(&self.store_path()?, &stored)
    }
}

impl Stored {
    /// The kept access token, with its expiry.
    fn access_token(&self) -> Option<AccessToken> {
        let expires_at = self
            .expires_at
            .map(|seconds| UNIX_EPOCH + Duration::from_secs(seconds));
        let token = self.access_token.as_deref()?;
        Some(AccessToken::new(token, expires_at))
    }
}

/// The account's tokens: the library's [`RefreshingToken`] renews them, and
/// this holds other processes off around each renewal (two cron jobs, a
/// send beside a queue flush). The second to come waits, then finds the
/// first's token in the store instead of spending the refresh token again
/// (a provider that rotates refresh tokens may take a reuse as theft).
#[derive(Debug)]
struct StoredTokens {
    tokens: RefreshingToken,
    store: PathBuf,
    /// The hash of the configured refresh token, which a rotation in the
    /// store must name to be taken.
    matches: Option<String>,
}

impl StoredTokens {
    /// Under the lock: what another process renewed meanwhile, if it is
    /// not `refused` and may be used.
    fn renewed_elsewhere(&self, refused: Option<&str>) -> Option<AccessToken> {
        let stored = read_store(&self.store).ok()?;
        if self.matches.is_some()
            && stored.refresh_token.is_some()
            && stored.replaces != self.matches
        {
            return None;
        }
        let mut token = stored.access_token()?;
        if Some(token.secret()) == refused || !token.is_valid_for(Duration::from_secs(60)) {
            return None;
        }
        if let Some(rotated) = &stored.refresh_token {
            token = token.with_refresh_token(rotated.as_str());
        }
        Some(token)
    }

    fn failed(failure: Failure) -> tls_mailer::Error {
        tls_mailer::Error::Config(failure.to_string())
    }
}

impl TokenSource for StoredTokens {
    fn token(&self) -> Result<Zeroizing<String>, tls_mailer::Error> {
        if let Some(token) = self.tokens.usable_token() {
            return Ok(token);
        }
        let _lock = lock_store(&self.store).map_err(Self::failed)?;
        if let Some(token) = self.renewed_elsewhere(None) {
            let secret = Zeroizing::new(token.secret().to_owned());
            self.tokens.adopt(token);
            return Ok(secret);
        }
        self.tokens.token()
    }

    fn refused(&self, token: &str) -> Result<(), tls_mailer::Error> {
        let _lock = lock_store(&self.store).map_err(Self::failed)?;
        if let Some(newer) = self.renewed_elsewhere(Some(token)) {
            self.tokens.adopt(newer);
            return Ok(());
        }
        self.tokens.refused(token)
    }
}

/// An exclusive lock on the store at `path` (a `.lock` file beside it),
/// held until dropped.
fn lock_store(path: &Path) -> Result<std::fs::File, Failure> {
    let lock_path = path.with_extension("lock");
    let failed = |error: std::io::Error| {
        Failure::Config(format!(
            "the OAuth token store's lock {}: {error}",
            lock_path.display()
        ))
    };
    create_private_dir(path.parent().unwrap_or(Path::new("."))).map_err(failed)?;
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(failed)?;
    file.lock().map_err(failed)?;
    Ok(file)
}

/// `$XDG_STATE_HOME/tls-mailer/oauth`, else `~/.local/state/tls-mailer/oauth`.
fn store_dir() -> Option<PathBuf> {
    let absolute = |name: &str| {
        std::env::var_os(name)
            .map(PathBuf::from)
            .filter(|path| path.is_absolute())
    };
    let base = absolute("XDG_STATE_HOME")
        .or_else(|| absolute("HOME").map(|home| home.join(".local").join("state")))?;
    Some(base.join("tls-mailer").join("oauth"))
}

/// An account name as a file name: kept when it is plain, else in hex.
fn file_name(account: &str) -> String {
    let plain = !account.is_empty()
        && !account.starts_with('.')
        && account
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || b"._-".contains(&byte));
    if plain {
        account.to_owned()
    } else {
        let hex: String = account.bytes().map(|byte| format!("{byte:02x}")).collect();
        format!("x-{hex}")
    }
}

fn sha256_hex(text: &str) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

fn read_store(path: &Path) -> Result<Stored, Failure> {
    let bytes = match crate::secret_file::read("the OAuth token store", path) {
        Ok(bytes) => bytes,
        Err(_) if !path.exists() => return Ok(Stored::default()),
        Err(error) => return Err(Failure::Config(error)),
    };
    // A damaged store costs one refresh, never the send.
    Ok(serde_json::from_slice(&bytes).unwrap_or_else(|_| {
        eprintln!(
            "tls-mailer: warning: the OAuth token store {} is damaged; a new token is fetched",
            path.display()
        );
        Stored::default()
    }))
}

/// Writes the store privately: a 0600 temporary file beside it, synced,
/// renamed over it, in a 0700 directory.
fn write_store(path: &Path, stored: &Stored) -> Result<(), Failure> {
    use std::io::Write as _;
    let failed = |error: std::io::Error| {
        Failure::Config(format!("the OAuth token store {}: {error}", path.display()))
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    create_private_dir(dir).map_err(failed)?;
    let json = Zeroizing::new(serde_json::to_vec(stored).map_err(|error| failed(error.into()))?);
    let mut file = tempfile::NamedTempFile::new_in(dir).map_err(failed)?;
    file.write_all(&json).map_err(failed)?;
    file.as_file().sync_all().map_err(failed)?;
    file.persist(path).map_err(|error| failed(error.error))?;
    Ok(())
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt as _;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

/// The arguments of `tls-mailer oauth`.
#[derive(Debug, clap::Args)]
pub struct OAuthArgs {
    #[command(subcommand)]
    pub command: OAuthCommand,
    /// The account (default: the file's default account).
    #[arg(long, short = 'a', global = true)]
    pub account: Option<String>,
    /// The configuration file (default: $XDG_CONFIG_HOME/tls-mailer/config.toml).
    #[arg(long, value_name = "FILE", global = true)]
    pub config: Option<PathBuf>,
}

/// The `oauth` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum OAuthCommand {
    /// Sign in and store the refresh token for the account: with the device
    /// flow (open the link shown, enter the code; Microsoft's default) or
    /// through the browser (Google's default; the browser comes back to a
    /// listener on 127.0.0.1).
    Login(LoginArgs),
    /// Print a valid access token (renewed when needed), for other tools.
    Token,
    /// Forget the tokens stored for the account.
    Logout,
}

/// How `oauth login` signs in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Flow {
    /// The device authorization grant (RFC 8628): a code to type on any device.
    Device,
    /// The authorization code grant with PKCE, through a browser on this
    /// machine ($BROWSER, else xdg-open or open; the link is printed too).
    Browser,
}

/// The arguments of `oauth login`.
#[derive(Debug, clap::Args)]
pub struct LoginArgs {
    /// How to sign in (default: the provider's way, or the one the
    /// account's endpoints allow).
    #[arg(long, value_enum)]
    pub flow: Option<Flow>,
    /// Give up after this many seconds without an approval (default 600).
    #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub wait: Option<u64>,
}

/// Runs `oauth`.
pub fn run(args: &OAuthArgs) -> Result<u8, Failure> {
    let oauth = account_oauth(args)?;
    match &args.command {
        OAuthCommand::Login(login_args) => login(&oauth, login_args),
        OAuthCommand::Token => {
            let token = oauth.token_source()?.token()?;
            println!("{}", token.as_str());
            Ok(0)
        }
        OAuthCommand::Logout => {
            let path = oauth.store_path()?;
            match std::fs::remove_file(&path) {
                Ok(()) => eprintln!("tls-mailer: removed {}", path.display()),
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                    eprintln!(
                        "tls-mailer: no tokens were stored for account {}",
                        oauth.account
                    );
                }
                Err(error) => {
                    return Err(Failure::Config(format!("{}: {error}", path.display())));
                }
            }
            Ok(0)
        }
    }
}

/// Starts `$BROWSER URL`, else the desktop's opener, without waiting; the
/// link is printed anyway, so a browser that does not start costs nothing.
fn open_browser(url: &str) {
    let command = match std::env::var("BROWSER") {
        Ok(browser) if !browser.trim().is_empty() => {
            let mut command = std::process::Command::new("sh");
            command.args(["-c", &format!("{browser} \"$1\""), "browser", url]);
            command
        }
        _ => {
            let opener = if cfg!(target_os = "macos") {
                "open"
            } else {
                "xdg-open"
            };
            let mut command = std::process::Command::new(opener);
            command.arg(url);
            command
        }
    };
    let mut command = command;
    let _ = command
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .spawn();
}

/// The OAuth settings of the account `args` names.
fn account_oauth(args: &OAuthArgs) -> Result<AccountOAuth, Failure> {
    let Some(config) = crate::config::find(args.config.as_deref())? else {
        return Err(Failure::Config(
            "tls-mailer oauth works on an account of the configuration file, and there is \
             none: give --config FILE"
                .into(),
        ));
    };
    let Some((name, account, _)) = config.pick(args.account.as_deref(), None)? else {
        return Err(Failure::Usage(format!(
            "which account? give --account NAME; {}",
            config.list()
        )));
    };
    let origin = format!("account {name} in {}", config.path.display());
    let Some(settings) = &account.oauth else {
        return Err(Failure::Config(format!(
            "{origin} has no [oauth] table: add one with provider (or token_url) and client_id"
        )));
    };
    if let Some(problem) = settings.invalid().first() {
        return Err(Failure::Config(format!("{origin}: {problem}")));
    }
    Ok(AccountOAuth {
        account: name.to_owned(),
        origin,
        settings: settings.clone(),
        proxy: account.proxy.as_ref().map(|url| url.0.to_string()),
        timeout: account.timeout,
    })
}

fn login(oauth: &AccountOAuth, args: &LoginArgs) -> Result<u8, Failure> {
    let client = oauth.client()?;
    let scope = oauth.settings.scope().unwrap_or_default();
    let flow = args.flow.or(oauth.settings.default_flow()).ok_or_else(|| {
        Failure::Config(format!(
            "{}: oauth login needs provider, device_authorization_url or authorization_url",
            oauth.origin
        ))
    })?;
    let wait = Duration::from_secs(args.wait.unwrap_or(600));
    let token = match flow {
        Flow::Device => {
            let mut device = client.start_device_authorization(scope)?;
            eprintln!(
                "To sign in account {}, open {} and enter the code {}",
                oauth.account, device.verification_uri, device.user_code
            );
            if let Some(link) = &device.verification_uri_complete {
                eprintln!("(or open {link})");
            }
            eprintln!("Waiting for the sign-in to be approved...");
            device.expires_at = device.expires_at.min(std::time::Instant::now() + wait);
            client.wait_for_device_authorization(&mut device)?
        }
        Flow::Browser => {
            let parameters = oauth
                .settings
                .provider()
                .filter(|_| oauth.settings.authorization_url.is_none())
                .map_or(&[][..], |provider| provider.authorization_parameters);
            client.browser_sign_in(
                scope,
                parameters,
                &mut |url| {
                    eprintln!(
                        "To sign in account {}, open this link in a browser on this machine:\n{url}",
                        oauth.account
                    );
                    open_browser(url);
                    eprintln!("Waiting for the browser to come back...");
                },
                wait,
            )?
        }
    };
    if token.refresh_token().is_none() {
        return Err(Failure::Config(format!(
            "the sign-in worked, but the provider gave no refresh token, so tls-mailer cannot \
             renew the access token; ask for offline access in the scope (oauth.scope, now {scope:?})"
        )));
    }
    let _lock = lock_store(&oauth.store_path()?)?;
    oauth.keep(&token, None)?;
    eprintln!(
        "Signed in: the tokens of account {} are in {}",
        oauth.account,
        oauth.store_path()?.display()
    );
    if oauth.settings.refresh_token_command.is_some() || oauth.settings.refresh_token_file.is_some()
    {
        eprintln!(
            "Note: the account also names a refresh token (refresh_token_command or \
             refresh_token_file), which is used in place of this one; remove that key to use \
             the login's."
        );
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // tests unwrap: a panic is a test failure

    use super::*;

    fn settings(toml_text: &str) -> OAuthSettings {
        toml::from_str(toml_text).unwrap()
    }

    #[test]
    fn login_takes_the_providers_way_unless_the_endpoints_say_otherwise() {
        let flow = |text: &str| settings(text).default_flow();
        assert_eq!(flow("provider = \"google\""), Some(Flow::Browser));
        assert_eq!(flow("provider = \"microsoft\""), Some(Flow::Device));
        assert_eq!(
            flow("device_authorization_url = \"https://x/d\""),
            Some(Flow::Device)
        );
        assert_eq!(
            flow("authorization_url = \"https://x/a\""),
            Some(Flow::Browser)
        );
        assert_eq!(flow("token_url = \"https://x/t\""), None);
        assert_eq!(
            settings("provider = \"google\"").authorization_url(),
            Some(tls_mailer::oauth::GOOGLE.authorization_url)
        );
    }

    #[test]
    fn store_files_are_named_after_plain_accounts_and_hex_otherwise() {
        assert_eq!(file_name("work"), "work");
        assert_eq!(file_name("a.b-c_d"), "a.b-c_d");
        assert_eq!(file_name("../x"), "x-2e2e2f78");
        assert_eq!(file_name(".hidden"), "x-2e68696464656e");
        assert_eq!(file_name("a b"), "x-612062");
    }

    #[test]
    fn an_oauth_table_lists_each_problem() {
        let problems = settings(
            "provider = \"nope\"\nclient_secret = \"s\"\nclient_secret_command = \"c\"\n\
             refresh_token_command = \"c\"\nrefresh_token_file = \"f\"",
        )
        .invalid();
        assert_eq!(problems.len(), 4, "{problems:?}");
        assert!(
            settings("provider = \"google\"\nclient_id = \"id\"")
                .invalid()
                .is_empty()
        );
    }
}
