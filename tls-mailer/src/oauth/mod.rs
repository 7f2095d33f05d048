//! OAuth 2.0 access tokens for AUTH OAUTHBEARER and XOAUTH2, obtained and
//! renewed by the library: the refresh-token grant (RFC 6749 section 6),
//! the device authorization grant (RFC 8628) for the first login, and a
//! [`TokenSource`] that a [`ClientBuilder`](crate::ClientBuilder) asks for
//! a token at each connection, renewing it when it expires or when the
//! mail server refuses it.
//!
//! The token endpoint is reached the way a mail server is: over verified
//! TLS (the same [`TrustAnchors`], through the same [`Proxy`]), and only
//! over `https://`. Every secret (client secret, refresh token, access
//! token, the bytes of the request and the answer) is wiped from memory
//! when dropped and never shown by `Debug`.
//!
//! ```no_run
//! use std::sync::Arc;
//! use tls_mailer::oauth::{OAuthClient, RefreshingToken, MICROSOFT};
//! use tls_mailer::{Client, Security};
//!
//! let oauth = OAuthClient::builder(MICROSOFT.token_url, "my-client-id").build()?;
//! let token = RefreshingToken::new(oauth, "the refresh token from a first login");
//! let client = Client::builder("smtp.office365.com")
//!     .security(Security::StartTls)
//!     .port(587)
//!     .oauth("alice@example.org", Arc::new(token))
//!     .build()?;
//! # Ok::<(), tls_mailer::Error>(())
//! ```

mod http;
mod redirect;

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use serde_json::Value;
use zeroize::Zeroizing;

use crate::client::{Settings, https_settings};
use crate::error::Error;
use crate::proxy::Proxy;
use crate::tls::TrustAnchors;
use http::HttpsUrl;

/// The endpoints and scope of a provider's OAuth 2.0 service for mail.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Provider {
    /// The name it is chosen by (`google`, `microsoft`).
    pub name: &'static str,
    /// The token endpoint (RFC 6749 3.2).
    pub token_url: &'static str,
    /// The device authorization endpoint (RFC 8628 3.1).
    pub device_authorization_url: &'static str,
    /// Whether the device flow may ask for the mail scope.
    pub device_flow: bool,
    /// The authorization endpoint of a browser sign-in (RFC 6749 3.1).
    pub authorization_url: &'static str,
    /// What else the authorization request must say to get a refresh
    /// token.
    pub authorization_parameters: &'static [(&'static str, &'static str)],
    /// The scope that allows sending mail over SMTP (with a refresh token).
    pub scope: &'static str,
    /// The provider's submission server.
    pub smtp_host: &'static str,
}

/// Google (Gmail, Workspace). Google lets the device flow ask for only a
/// few scopes, and the mail scope is not one of them: the first sign-in
/// goes through the browser ([`OAuthClient::browser_sign_in`]).
pub const GOOGLE: Provider = Provider {
    name: "google",
    token_url: "https://oauth2.googleapis.com/token",
    device_authorization_url: "https://oauth2.googleapis.com/device/code",
    device_flow: false,
    authorization_url: "https://accounts.google.com/o/oauth2/v2/auth",
    // Without these Google gives no refresh token (or only the first time).
    authorization_parameters: &[("access_type", "offline"), ("prompt", "consent")],
    scope: "https://mail.google.com/",
    smtp_host: "smtp.gmail.com",
};

/// Microsoft (Outlook.com, Microsoft 365), through the `common` tenant;
/// an organisation may need its own tenant in place of `common`.
pub const MICROSOFT: Provider = Provider {
    name: "microsoft",
    token_url: "https://login.microsoftonline.com/common/oauth2/v2.0/token",
    device_authorization_url: "https://login.microsoftonline.com/common/oauth2/v2.0/devicecode",
    device_flow: true,
    authorization_url: "https://login.microsoftonline.com/common/oauth2/v2.0/authorize",
    authorization_parameters: &[],
    scope: "https://outlook.office.com/SMTP.Send offline_access",
    smtp_host: "smtp.office365.com",
};

impl Provider {
    /// Every preset.
    pub const ALL: [Provider; 2] = [GOOGLE, MICROSOFT];

    /// The preset called `name`.
    ///
    /// ```
    /// let microsoft = tls_mailer::oauth::Provider::named("microsoft").unwrap();
    /// assert!(microsoft.scope.contains("SMTP.Send"));
    /// assert!(tls_mailer::oauth::Provider::named("yahoo").is_none());
    /// ```
    pub fn named(name: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|provider| provider.name.eq_ignore_ascii_case(name))
    }
}

/// Why the token endpoint gave no token.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum OAuthError {
    /// The authorization server refused the request with an OAuth error
    /// (RFC 6749 5.2, RFC 8628 3.5): `invalid_grant` when the refresh
    /// token expired or was revoked, `invalid_client` for a wrong client
    /// id or secret, `access_denied` when the user said no...
    Refused {
        /// The endpoint.
        endpoint: String,
        /// The HTTP status.
        status: u16,
        /// The OAuth error code.
        code: String,
        /// The server's explanation, when it gave one.
        description: Option<String>,
    },
    /// The answer is not what OAuth 2.0 specifies (not JSON, no token, an
    /// HTTP error page, a broken connection).
    BadResponse {
        /// The endpoint.
        endpoint: String,
        /// What was wrong with it.
        reason: String,
    },
    /// The endpoint did not answer in time.
    Timeout {
        /// The endpoint.
        endpoint: String,
    },
    /// An endpoint URL that cannot be used.
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// Why not.
        reason: &'static str,
    },
    /// The device code expired before the user approved the login.
    DeviceCodeExpired,
    /// The device flow was asked for, but no device authorization
    /// endpoint was given.
    NoDeviceEndpoint,
    /// A browser sign-in was asked for, but no authorization endpoint was
    /// given.
    NoAuthorizationEndpoint,
    /// The browser did not come back with the sign-in in time.
    SignInTimedOut,
}

impl OAuthError {
    /// The refresh token (or device code) is no longer good: expired,
    /// revoked, or issued to another client. Only a new login helps.
    pub fn is_invalid_grant(&self) -> bool {
        matches!(self, Self::Refused { code, .. } if code == "invalid_grant")
            || *self == Self::DeviceCodeExpired
    }

    /// Trying again later may help: the endpoint was unreachable, slow, or
    /// said it is overloaded.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Refused { code, status, .. } => {
                code == "temporarily_unavailable" || *status >= 500
            }
            Self::BadResponse { .. } | Self::Timeout { .. } => true,
            Self::InvalidUrl { .. }
            | Self::DeviceCodeExpired
            | Self::NoDeviceEndpoint
            | Self::NoAuthorizationEndpoint
            | Self::SignInTimedOut => false,
        }
    }
}

impl fmt::Display for OAuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Refused {
                endpoint,
                status,
                code,
                description,
            } => {
                write!(f, "the token endpoint {endpoint} refused ({status} {code}")?;
                if let Some(description) = description {
                    write!(f, ": {description}")?;
                }
                f.write_str(")")?;
                match code.as_str() {
                    "invalid_grant" => f.write_str(
                        "; the refresh token has expired or was revoked: log in again to get a new one",
                    ),
                    "invalid_client" | "unauthorized_client" => {
                        f.write_str("; check the client id and client secret")
                    }
                    "invalid_scope" => f.write_str("; this client may not ask for that scope"),
                    "access_denied" => f.write_str("; the login was not approved"),
                    _ => Ok(()),
                }
            }
            Self::BadResponse { endpoint, reason } => {
                write!(
                    f,
                    "the token endpoint {endpoint} gave no usable answer: {reason}"
                )
            }
            Self::Timeout { endpoint } => {
                write!(f, "the token endpoint {endpoint} did not answer in time")
            }
            Self::InvalidUrl { url, reason } => write!(f, "the endpoint {url:?}: {reason}"),
            Self::DeviceCodeExpired => {
                f.write_str("the login code expired before it was approved: start the login again")
            }
            Self::NoDeviceEndpoint => {
                f.write_str("no device authorization endpoint was given for this login")
            }
            Self::NoAuthorizationEndpoint => {
                f.write_str("no authorization endpoint was given for a browser sign-in")
            }
            Self::SignInTimedOut => f.write_str(
                "the browser did not come back from the sign-in in time: start it again",
            ),
        }
    }
}

/// An access token, with when it expires and the refresh token that came
/// with it, if any (a provider may rotate the refresh token at each use).
#[derive(Clone)]
pub struct AccessToken {
    secret: Zeroizing<String>,
    expires_at: Option<SystemTime>,
    refresh_token: Option<Zeroizing<String>>,
    scope: Option<String>,
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessToken")
            .field("secret", &"<redacted>")
            .field("expires_at", &self.expires_at)
            .field(
                "refresh_token",
                &self.refresh_token.as_ref().map(|_| "<redacted>"),
            )
            .field("scope", &self.scope)
            .finish()
    }
}

impl AccessToken {
    /// A token known from elsewhere (a cache), valid until `expires_at`
    /// when that is known.
    ///
    /// ```
    /// use std::time::{Duration, SystemTime};
    /// let token = tls_mailer::oauth::AccessToken::new("ya29.a0", Some(SystemTime::now() + Duration::from_secs(600)));
    /// assert!(token.is_valid_for(Duration::from_secs(60)));
    /// assert!(!token.is_valid_for(Duration::from_secs(3600)));
    /// ```
    pub fn new(secret: impl Into<String>, expires_at: Option<SystemTime>) -> Self {
        Self {
            secret: Zeroizing::new(secret.into()),
            expires_at,
            refresh_token: None,
            scope: None,
        }
    }

    /// The same token, with the refresh token that goes with it (as kept
    /// beside it).
    pub fn with_refresh_token(mut self, refresh_token: impl Into<String>) -> Self {
        self.refresh_token = Some(Zeroizing::new(refresh_token.into()));
        self
    }

    /// The token itself.
    pub fn secret(&self) -> &str {
        &self.secret
    }

    /// When it expires, if the server said.
    pub fn expires_at(&self) -> Option<SystemTime> {
        self.expires_at
    }

    /// A new refresh token, when the server sent one with this token: keep
    /// it in place of the old one.
    pub fn refresh_token(&self) -> Option<&str> {
        self.refresh_token.as_deref().map(String::as_str)
    }

    /// The scope granted, if the server said.
    pub fn scope(&self) -> Option<&str> {
        self.scope.as_deref()
    }

    /// Still valid `margin` from now (a token without an expiry is taken
    /// as valid; the server says otherwise by refusing it).
    pub fn is_valid_for(&self, margin: Duration) -> bool {
        self.expires_at
            .is_none_or(|expires_at| SystemTime::now() + margin < expires_at)
    }
}

/// What the user is asked to do to approve a device login (RFC 8628 3.2).
pub struct DeviceAuthorization {
    device_code: Zeroizing<String>,
    /// The code the user types in.
    pub user_code: String,
    /// Where the user goes to type it.
    pub verification_uri: String,
    /// A link with the code already in it, when the server gave one.
    pub verification_uri_complete: Option<String>,
    /// When the codes stop working.
    pub expires_at: Instant,
    /// How long to wait between polls; a `slow_down` answer lengthens it.
    pub interval: Duration,
}

impl fmt::Debug for DeviceAuthorization {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeviceAuthorization")
            .field("user_code", &self.user_code)
            .field("verification_uri", &self.verification_uri)
            .field("expires_at", &self.expires_at)
            .field("interval", &self.interval)
            .finish_non_exhaustive()
    }
}

/// The answer to one poll of a device login.
#[derive(Debug)]
#[non_exhaustive]
pub enum DevicePoll {
    /// The user has not approved it yet.
    Pending,
    /// Polling too fast: the interval grew by 5 seconds (RFC 8628 3.5).
    SlowDown,
    /// Approved: the tokens.
    Granted(AccessToken),
}

/// A client of an OAuth 2.0 authorization server: its client id (and
/// secret, for a confidential client), its token endpoint and, for the
/// first login, its device authorization endpoint.
pub struct OAuthClient {
    client_id: String,
    client_secret: Option<Zeroizing<String>>,
    token: Endpoint,
    device: Option<Endpoint>,
    authorization: Option<HttpsUrl>,
    timeout: Duration,
}

struct Endpoint {
    url: HttpsUrl,
    settings: Arc<Settings>,
}

impl fmt::Debug for OAuthClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OAuthClient")
            .field("client_id", &self.client_id)
            .field(
                "client_secret",
                &self.client_secret.as_ref().map(|_| "<redacted>"),
            )
            .field("token_url", &self.token.url.to_string())
            .field(
                "device_authorization_url",
                &self.device.as_ref().map(|device| device.url.to_string()),
            )
            .finish()
    }
}

/// Configures an [`OAuthClient`].
#[must_use]
pub struct OAuthClientBuilder {
    token_url: String,
    client_id: String,
    client_secret: Option<Zeroizing<String>>,
    device_url: Option<String>,
    authorization_url: Option<String>,
    anchors: TrustAnchors,
    proxy: Option<Proxy>,
    timeout: Duration,
}

impl fmt::Debug for OAuthClientBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OAuthClientBuilder")
            .field("token_url", &self.token_url)
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

impl OAuthClientBuilder {
    /// The client secret (a confidential client); without it the client
    /// is public and sends only its id.
    pub fn client_secret(mut self, secret: impl Into<String>) -> Self {
        self.client_secret = Some(Zeroizing::new(secret.into()));
        self
    }

    /// The device authorization endpoint, for
    /// [`OAuthClient::start_device_authorization`].
    pub fn device_authorization_url(mut self, url: impl Into<String>) -> Self {
        self.device_url = Some(url.into());
        self
    }

    /// The authorization endpoint, for [`OAuthClient::browser_sign_in`].
    pub fn authorization_url(mut self, url: impl Into<String>) -> Self {
        self.authorization_url = Some(url.into());
        self
    }

    /// The certificate authorities trusted for the endpoints (the system's
    /// by default).
    pub fn trust_anchors(mut self, anchors: TrustAnchors) -> Self {
        self.anchors = anchors;
        self
    }

    /// Reaches the endpoints through this proxy.
    pub fn proxy(mut self, proxy: Proxy) -> Self {
        self.proxy = Some(proxy);
        self
    }

    /// How long one request may take, connect to answer (30 s by default).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Checks the URLs and loads the trust anchors.
    pub fn build(self) -> Result<OAuthClient, Error> {
        let timeouts = tls_mailer_proto::Timeouts::uniform(self.timeout);
        let endpoint = |url: &str| -> Result<Endpoint, Error> {
            let url = HttpsUrl::parse(url).map_err(Error::OAuth)?;
            let settings = https_settings(
                &url.host,
                url.port,
                self.anchors.clone(),
                self.proxy.clone(),
                timeouts,
            )?;
            Ok(Endpoint { url, settings })
        };
        // The browser goes there, not this client: only its form is checked.
        let authorization = self
            .authorization_url
            .as_deref()
            .map(HttpsUrl::parse)
            .transpose()
            .map_err(Error::OAuth)?;
        Ok(OAuthClient {
            token: endpoint(&self.token_url)?,
            device: self.device_url.as_deref().map(endpoint).transpose()?,
            authorization,
            client_id: self.client_id,
            client_secret: self.client_secret,
            timeout: self.timeout,
        })
    }
}

/// The grant type of a device login's token request (RFC 8628 3.4).
const DEVICE_CODE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

impl OAuthClient {
    /// A client `client_id` of the authorization server whose token
    /// endpoint is `token_url` (`https://` only).
    ///
    /// ```
    /// use tls_mailer::oauth::OAuthClient;
    /// let error = OAuthClient::builder("http://example.org/token", "id").build().unwrap_err();
    /// assert!(error.to_string().contains("https://"));
    /// ```
    pub fn builder(
        token_url: impl Into<String>,
        client_id: impl Into<String>,
    ) -> OAuthClientBuilder {
        OAuthClientBuilder {
            token_url: token_url.into(),
            client_id: client_id.into(),
            client_secret: None,
            device_url: None,
            authorization_url: None,
            anchors: TrustAnchors::default(),
            proxy: None,
            timeout: Duration::from_secs(30),
        }
    }

    /// A new access token for `refresh_token` (RFC 6749 section 6). When
    /// the refresh token is expired or revoked the error says so
    /// ([`OAuthError::is_invalid_grant`]).
    pub fn refresh(&self, refresh_token: &str) -> Result<AccessToken, Error> {
        let answer = self.post(
            &self.token,
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh_token),
            ],
        )?;
        token_of(&self.token, answer)
    }

    /// Starts a device login (RFC 8628): show the user
    /// [`DeviceAuthorization::verification_uri`] and
    /// [`DeviceAuthorization::user_code`], then
    /// [`OAuthClient::wait_for_device_authorization`].
    ///
    /// ```no_run
    /// use tls_mailer::oauth::{OAuthClient, MICROSOFT};
    ///
    /// let client = OAuthClient::builder(MICROSOFT.token_url, "my-client-id")
    ///     .device_authorization_url(MICROSOFT.device_authorization_url)
    ///     .build()?;
    /// let mut device = client.start_device_authorization(MICROSOFT.scope)?;
    /// println!("open {} and enter {}", device.verification_uri, device.user_code);
    /// let token = client.wait_for_device_authorization(&mut device)?;
    /// let refresh_token = token.refresh_token(); // keep it for the next run
    /// # Ok::<(), tls_mailer::Error>(())
    /// ```
    pub fn start_device_authorization(&self, scope: &str) -> Result<DeviceAuthorization, Error> {
        let device = self
            .device
            .as_ref()
            .ok_or(Error::OAuth(OAuthError::NoDeviceEndpoint))?;
        let answer = self.post(device, &[("scope", scope)])?;
        let json = success_json(device, answer)?;
        // Shown to the user as they are: never a control character (a
        // hostile endpoint could drive the terminal with escapes).
        let text = |name: &str| {
            json.get(name)
                .and_then(Value::as_str)
                .map(|text| printable(text, 2048))
        };
        let missing = |name: &str| bad(device, format!("the answer has no {name}"));
        let seconds = |name: &str| json.get(name).and_then(number_or_text);
        Ok(DeviceAuthorization {
            device_code: Zeroizing::new(text("device_code").ok_or_else(|| missing("device_code"))?),
            user_code: text("user_code").ok_or_else(|| missing("user_code"))?,
            // Google's endpoint says verification_url.
            verification_uri: text("verification_uri")
                .or_else(|| text("verification_url"))
                .ok_or_else(|| missing("verification_uri"))?,
            verification_uri_complete: text("verification_uri_complete"),
            expires_at: Instant::now()
                + Duration::from_secs(seconds("expires_in").ok_or_else(|| missing("expires_in"))?),
            interval: Duration::from_secs(seconds("interval").unwrap_or(5)),
        })
    }

    /// Asks once whether the user approved the device login.
    pub fn poll_device_authorization(
        &self,
        device: &mut DeviceAuthorization,
    ) -> Result<DevicePoll, Error> {
        if Instant::now() >= device.expires_at {
            return Err(Error::OAuth(OAuthError::DeviceCodeExpired));
        }
        let answer = self.post(
            &self.token,
            &[
                ("grant_type", DEVICE_CODE_GRANT),
                ("device_code", &device.device_code),
            ],
        )?;
        match token_of(&self.token, answer) {
            Ok(token) => Ok(DevicePoll::Granted(token)),
            Err(Error::OAuth(OAuthError::Refused { code, .. }))
                if code == "authorization_pending" =>
            {
                Ok(DevicePoll::Pending)
            }
            Err(Error::OAuth(OAuthError::Refused { code, .. })) if code == "slow_down" => {
                device.interval += Duration::from_secs(5);
                Ok(DevicePoll::SlowDown)
            }
            Err(Error::OAuth(OAuthError::Refused { code, .. })) if code == "expired_token" => {
                Err(Error::OAuth(OAuthError::DeviceCodeExpired))
            }
            Err(error) => Err(error),
        }
    }

    /// Polls at the server's interval until the user approves the login,
    /// refuses it, or the code expires.
    pub fn wait_for_device_authorization(
        &self,
        device: &mut DeviceAuthorization,
    ) -> Result<AccessToken, Error> {
        loop {
            let wake = Instant::now() + device.interval;
            if wake >= device.expires_at {
                return Err(Error::OAuth(OAuthError::DeviceCodeExpired));
            }
            std::thread::sleep(device.interval);
            if let DevicePoll::Granted(token) = self.poll_device_authorization(device)? {
                return Ok(token);
            }
        }
    }

    /// Signs in through the browser (RFC 6749 4.1 with PKCE, RFC 7636, and
    /// a loopback redirect, RFC 8252): `open` is given the authorization
    /// URL to show the user (and open a browser at); the browser comes back
    /// to a listener on 127.0.0.1 with the code, which is exchanged for the
    /// tokens. `parameters` are added to the authorization request
    /// ([`Provider::authorization_parameters`]). Gives up after `timeout`.
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use tls_mailer::oauth::{OAuthClient, GOOGLE};
    ///
    /// let client = OAuthClient::builder(GOOGLE.token_url, "my-desktop-client-id")
    ///     .client_secret("its secret")
    ///     .authorization_url(GOOGLE.authorization_url)
    ///     .build()?;
    /// let token = client.browser_sign_in(
    ///     GOOGLE.scope,
    ///     GOOGLE.authorization_parameters,
    ///     &mut |url| eprintln!("open {url}"),
    ///     Duration::from_secs(600),
    /// )?;
    /// # Ok::<(), tls_mailer::Error>(())
    /// ```
    pub fn browser_sign_in(
        &self,
        scope: &str,
        parameters: &[(&str, &str)],
        open: &mut dyn FnMut(&str),
        timeout: Duration,
    ) -> Result<AccessToken, Error> {
        let authorization = self
            .authorization
            .as_ref()
            .ok_or(Error::OAuth(OAuthError::NoAuthorizationEndpoint))?;
        let listener = redirect::RedirectListener::bind()?;
        let redirect_uri = listener.redirect_uri();
        let verifier = random_text(48)?;
        let state = random_text(16)?;
        let challenge = {
            use base64::Engine as _;
            let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, verifier.as_bytes());
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest.as_ref())
        };
        let mut fields = vec![
            ("response_type", "code"),
            ("client_id", self.client_id.as_str()),
            ("redirect_uri", redirect_uri.as_str()),
            ("scope", scope),
            ("state", state.as_str()),
            ("code_challenge", challenge.as_str()),
            ("code_challenge_method", "S256"),
        ];
        fields.extend_from_slice(parameters);
        let separator = if authorization.target.contains('?') {
            '&'
        } else {
            '?'
        };
        let url = format!(
            "{authorization}{separator}{}",
            http::form_encode(&fields).as_str()
        );
        open(&url);
        let code = match listener.wait(&state, Instant::now() + timeout)? {
            redirect::Redirect::Code(code) => code,
            redirect::Redirect::Refused(code, description) => {
                return Err(Error::OAuth(OAuthError::Refused {
                    endpoint: authorization.to_string(),
                    status: 302,
                    code,
                    description,
                }));
            }
        };
        let answer = self.post(
            &self.token,
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", &redirect_uri),
                ("code_verifier", &verifier),
            ],
        )?;
        token_of(&self.token, answer)
    }

    /// POSTs `fields` with the client's id (and secret) to `endpoint`.
    fn post(&self, endpoint: &Endpoint, fields: &[(&str, &str)]) -> Result<http::Response, Error> {
        let mut form: Vec<(&str, &str)> = fields.to_vec();
        form.push(("client_id", &self.client_id));
        if let Some(secret) = &self.client_secret {
            form.push(("client_secret", secret));
        }
        let deadline = Instant::now() + self.timeout;
        http::post_form(&endpoint.settings, &endpoint.url, &form, deadline)
    }
}

fn bad(endpoint: &Endpoint, reason: String) -> Error {
    Error::OAuth(OAuthError::BadResponse {
        endpoint: endpoint.url.to_string(),
        reason,
    })
}

/// A number of seconds, as a JSON number or (some servers) a string.
fn number_or_text(value: &Value) -> Option<u64> {
    value
        .as_u64()
        .or_else(|| value.as_str().and_then(|text| text.trim().parse().ok()))
}

/// The JSON object of a 2xx answer; an OAuth error, or a description of
/// what came instead, otherwise.
fn success_json(endpoint: &Endpoint, answer: http::Response) -> Result<Value, Error> {
    let json: Option<Value> = serde_json::from_slice(&answer.body)
        .ok()
        .filter(Value::is_object);
    if (200..300).contains(&answer.status) {
        return json.ok_or_else(|| {
            bad(
                endpoint,
                format!("a {} answer whose body is not a JSON object", answer.status),
            )
        });
    }
    let code = json
        .as_ref()
        .and_then(|json| json.get("error"))
        .and_then(Value::as_str);
    match code {
        Some(code) => Err(Error::OAuth(OAuthError::Refused {
            endpoint: endpoint.url.to_string(),
            status: answer.status,
            code: printable(code, 64),
            description: json
                .as_ref()
                .and_then(|json| json.get("error_description"))
                .and_then(Value::as_str)
                .map(|text| printable(text, 300)),
        })),
        None => Err(bad(
            endpoint,
            format!(
                "HTTP {} ({}) without an OAuth error: {:?}",
                answer.status,
                answer.content_type.as_deref().unwrap_or("no content type"),
                printable(&String::from_utf8_lossy(&answer.body), 120)
            ),
        )),
    }
}

/// A successful token answer (RFC 6749 5.1).
fn token_of(endpoint: &Endpoint, answer: http::Response) -> Result<AccessToken, Error> {
    let json = success_json(endpoint, answer)?;
    let secret = json
        .get("access_token")
        .and_then(Value::as_str)
        .filter(|token| !token.is_empty())
        .ok_or_else(|| bad(endpoint, "the answer has no access_token".into()))?;
    let token_type = json.get("token_type").and_then(Value::as_str).unwrap_or("");
    if !token_type.eq_ignore_ascii_case("bearer") {
        return Err(bad(
            endpoint,
            format!(
                "the token type is {:?}, not Bearer: SMTP takes bearer tokens only",
                printable(token_type, 40)
            ),
        ));
    }
    Ok(AccessToken {
        secret: Zeroizing::new(secret.to_owned()),
        expires_at: json
            .get("expires_in")
            .and_then(number_or_text)
            .map(|seconds| SystemTime::now() + Duration::from_secs(seconds)),
        refresh_token: json
            .get("refresh_token")
            .and_then(Value::as_str)
            .filter(|token| !token.is_empty())
            .map(|token| Zeroizing::new(token.to_owned())),
        scope: json.get("scope").and_then(Value::as_str).map(str::to_owned),
    })
}

/// `bytes` random bytes in base64url: a PKCE verifier (RFC 7636 4.1 wants
/// 43 to 128 of its characters) or a state.
fn random_text(bytes: usize) -> Result<Zeroizing<String>, Error> {
    use aws_lc_rs::rand::SecureRandom as _;
    use base64::Engine as _;
    let mut random = Zeroizing::new(vec![0u8; bytes]);
    aws_lc_rs::rand::SystemRandom::new()
        .fill(&mut random)
        .map_err(|_| Error::Config("no random source for the sign-in".into()))?;
    Ok(Zeroizing::new(
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&random[..]),
    ))
}

/// A server's text, safe to print: no control characters, at most `max`.
fn printable(text: &str, max: usize) -> String {
    text.chars().filter(|c| !c.is_control()).take(max).collect()
}

/// Where a client gets the access token for each connection
/// ([`ClientBuilder::oauth`](crate::ClientBuilder::oauth)).
pub trait TokenSource: Send + Sync + fmt::Debug {
    /// The token to log in with now: a cached one while it is valid.
    fn token(&self) -> Result<Zeroizing<String>, Error>;

    /// The mail server refused `token`: make sure the next
    /// [`TokenSource::token`] gives another (a refresh), or say why not.
    fn refused(&self, token: &str) -> Result<(), Error>;
}

/// A [`TokenSource`] that renews the access token with a refresh token:
/// before it expires (a minute ahead), and when the mail server refuses
/// it. A rotated refresh token replaces the old one. Safe to share among
/// threads: one refresh at a time.
///
/// ```no_run
/// use std::sync::Arc;
/// use std::time::SystemTime;
/// use tls_mailer::oauth::{AccessToken, OAuthClient, RefreshingToken, TokenSource, GOOGLE};
///
/// let oauth = OAuthClient::builder(GOOGLE.token_url, "client-id")
///     .client_secret("client-secret")
///     .build()?;
/// let tokens = RefreshingToken::new(oauth, "refresh token")
///     // A token kept from the last run, used while it is valid.
///     .with_access_token(AccessToken::new("ya29.a0", Some(SystemTime::now())))
///     .on_refresh(|token| println!("keep it: expires {:?}", token.expires_at()));
/// let token = tokens.token()?; // the kept one, or a new one
/// # Ok::<(), tls_mailer::Error>(())
/// ```
pub struct RefreshingToken {
    client: OAuthClient,
    state: Mutex<RefreshState>,
    on_refresh: Option<RefreshHook>,
}

type RefreshHook = Box<dyn Fn(&AccessToken) + Send + Sync>;

struct RefreshState {
    refresh_token: Zeroizing<String>,
    current: Option<AccessToken>,
    /// When `current` came from a renewal here.
    renewed_at: Option<Instant>,
}

impl RefreshState {
    /// The current token, if it may be used now: valid a minute ahead, or
    /// just renewed (a token that lives less than a minute is still used
    /// for the connection it was fetched for).
    fn usable(&self) -> Option<Zeroizing<String>> {
        let token = self.current.as_ref()?;
        let fresh = self
            .renewed_at
            .is_some_and(|at| at.elapsed() < JUST_RENEWED);
        (fresh || token.is_valid_for(EXPIRY_MARGIN)).then(|| token.secret.clone())
    }
}

impl fmt::Debug for RefreshingToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RefreshingToken")
            .field("client", &self.client)
            .finish_non_exhaustive()
    }
}

/// A token this close to its expiry is renewed before use.
const EXPIRY_MARGIN: Duration = Duration::from_secs(60);
/// A token renewed this recently is used whatever its lifetime.
const JUST_RENEWED: Duration = Duration::from_secs(10);

impl RefreshingToken {
    /// Tokens from `client` for `refresh_token`.
    pub fn new(client: OAuthClient, refresh_token: impl Into<String>) -> Self {
        Self {
            client,
            state: Mutex::new(RefreshState {
                refresh_token: Zeroizing::new(refresh_token.into()),
                current: None,
                renewed_at: None,
            }),
            on_refresh: None,
        }
    }

    /// Starts from a token obtained earlier (a cache), used while valid.
    pub fn with_access_token(self, token: AccessToken) -> Self {
        if let Ok(mut state) = self.state.lock() {
            state.current = Some(token);
        }
        self
    }

    /// The current token when it may be used without a renewal (valid a
    /// minute ahead, or just renewed); never fetches one.
    pub fn usable_token(&self) -> Option<Zeroizing<String>> {
        self.state.lock().ok()?.usable()
    }

    /// Takes a token renewed elsewhere (another process sharing the same
    /// store), and the refresh token that came with it, if any, in place of
    /// the current ones.
    pub fn adopt(&self, token: AccessToken) {
        if let Ok(mut state) = self.state.lock() {
            if let Some(refresh_token) = &token.refresh_token {
                state.refresh_token = refresh_token.clone();
            }
            state.current = Some(token);
            state.renewed_at = None;
        }
    }

    /// Called with every new token, to keep it (and a rotated refresh
    /// token) for the next run.
    pub fn on_refresh(mut self, hook: impl Fn(&AccessToken) + Send + Sync + 'static) -> Self {
        self.on_refresh = Some(Box::new(hook));
        self
    }

    fn renew(&self, state: &mut RefreshState) -> Result<Zeroizing<String>, Error> {
        tracing::debug!(
            target: "tls_mailer",
            "renewing the OAuth access token at {}",
            self.client.token.url
        );
        let mut token = self.client.refresh(&state.refresh_token)?;
        match &token.refresh_token {
            Some(rotated) => state.refresh_token = rotated.clone(),
            // Hand the hook the refresh token in force, rotated or not.
            None => token.refresh_token = Some(state.refresh_token.clone()),
        }
        if let Some(hook) = &self.on_refresh {
            hook(&token);
        }
        let secret = token.secret.clone();
        state.current = Some(token);
        state.renewed_at = Some(Instant::now());
        Ok(secret)
    }
}

impl TokenSource for RefreshingToken {
    fn token(&self) -> Result<Zeroizing<String>, Error> {
        let mut state = self
            .state
            .lock()
            .map_err(|_| Error::Config("a token refresh panicked in another thread".into()))?;
        match state.usable() {
            Some(token) => Ok(token),
            None => self.renew(&mut state),
        }
    }

    fn refused(&self, token: &str) -> Result<(), Error> {
        let mut state = self
            .state
            .lock()
            .map_err(|_| Error::Config("a token refresh panicked in another thread".into()))?;
        // Another connection may have renewed it already.
        if state
            .current
            .as_ref()
            .is_some_and(|current| current.secret() != token)
        {
            return Ok(());
        }
        self.renew(&mut state).map(drop)
    }
}
