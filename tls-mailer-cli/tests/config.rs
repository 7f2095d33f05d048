#![allow(clippy::unwrap_used)] // tests unwrap: a panic is a test failure
//! The configuration file: accounts picked by --account, by the sender and
//! by default, flags over the file, its errors, `config check [--connect]`
//! and `config import-msmtprc`, against the testkit server over loopback.

mod common;

use std::process::Output;
use std::time::Duration;

use common::{TestDir, code, stderr, stdout};
use tls_mailer_testkit::TestServer;

const MESSAGE: &str = "From: Someone <someone@example.net>\r\nTo: rcpt@example.org\r\nSubject: config\r\n\r\nHello\r\n";
const ALICE_PW: &str = "alice-pässword";
const BOB_PW: &str = "bob-password";

/// Two servers, each with its own user, and a directory whose
/// `config.toml` names them as accounts `a` (the default) and `b`.
struct Setup {
    dir: TestDir,
    a: TestServer,
    b: TestServer,
}

impl Setup {
    fn new() -> Self {
        let dir = TestDir::new("config-test");
        let a = TestServer::builder()
            .auth("alice", ALICE_PW)
            .start()
            .unwrap();
        let b = TestServer::builder().auth("bob", BOB_PW).start().unwrap();
        // One CA file trusts both servers.
        dir.file("ca.pem", format!("{}{}", a.ca_pem(), b.ca_pem()).as_bytes());
        let setup = Self { dir, a, b };
        setup.write_config(&setup.accounts());
        setup
    }

    fn accounts(&self) -> String {
        format!(
            r#"# two accounts
default = "a"

[accounts.a]
host = "localhost"
port = {a}
user = "alice"
password_env = "ALICE_PW"
from = "Alice <alice@a.example>"
ca_file = "{ca}"
timeout = 10

[accounts.b]
host = "localhost"
port = {b}
user = "bob"
password_command = "printf '%s\n' \"$BOB_PW\""
from_patterns = ["*@b.example", "*@*.b.example"]
ca_file = "{ca}"
"#,
            a = self.a.port(),
            b = self.b.port(),
            ca = self.ca(),
        )
    }

    fn ca(&self) -> String {
        self.dir.path.join("ca.pem").to_str().unwrap().to_owned()
    }

    fn config(&self) -> String {
        self.dir
            .path
            .join("tls-mailer")
            .join("config.toml")
            .to_str()
            .unwrap()
            .to_owned()
    }

    /// Writes the config file where XDG_CONFIG_HOME points, mode 0600.
    fn write_config(&self, text: &str) {
        std::fs::create_dir_all(self.dir.path.join("tls-mailer")).unwrap();
        std::fs::write(self.config(), text).unwrap();
        set_mode(&self.config(), 0o600);
    }

    /// `tls-mailer ARGS` with XDG_CONFIG_HOME and HOME in the test's
    /// directory and the passwords in the environment.
    fn run(&self, args: &[&str], stdin: &str) -> Output {
        let home = self.dir.path.to_str().unwrap();
        common::tls_mailer(
            args,
            stdin.as_bytes(),
            &[
                ("XDG_CONFIG_HOME", home),
                ("HOME", home),
                ("ALICE_PW", ALICE_PW),
                ("BOB_PW", BOB_PW),
            ],
        )
    }

    fn send(&self, extra: &[&str]) -> Output {
        let mut args = vec!["send"];
        args.extend_from_slice(extra);
        args.push("rcpt@example.org");
        self.run(&args, MESSAGE)
    }
}

fn set_mode(path: &str, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// Asserts that `text` contains `part`, showing `text` when not.
#[track_caller]
fn contains(text: &str, part: impl AsRef<str>) {
    assert!(
        text.contains(part.as_ref()),
        "{:?} not in:\n{text}",
        part.as_ref()
    );
}

/// The one message `server` received, waited for (it stores a message just
/// after its reply).
fn received(server: &TestServer) -> tls_mailer_testkit::ReceivedMessage {
    let messages = server.wait_for_messages(1, Duration::from_secs(5));
    assert_eq!(messages.len(), 1, "one message");
    messages.into_iter().next().unwrap()
}

#[test]
fn the_default_account_sends_with_its_from() {
    let setup = Setup::new();
    let output = setup.send(&[]);
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    let message = received(&setup.a);
    assert_eq!(message.mail_from, "alice@a.example", "the account's from");
    assert!(setup.b.messages().is_empty());
}

#[test]
fn account_flag_picks_the_account() {
    let setup = Setup::new();
    let output = setup.send(&["--account", "b"]);
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    assert_eq!(received(&setup.b).mail_from, "someone@example.net");
    assert!(setup.a.messages().is_empty());
}

#[test]
fn from_picks_the_account_whose_pattern_matches() {
    let setup = Setup::new();
    let output = setup.send(&["--from", "carol@mail.B.example"]);
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    assert_eq!(received(&setup.b).mail_from, "carol@mail.B.example");
    assert!(setup.a.messages().is_empty());
    // An exact from beats every pattern; nothing matching: the default.
    let setup = Setup::new();
    let output = setup.send(&["--from", "alice@a.example"]);
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    received(&setup.a);
    let setup = Setup::new();
    let output = setup.send(&["--from", "dave@elsewhere.example"]);
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    assert_eq!(received(&setup.a).mail_from, "dave@elsewhere.example");
}

#[test]
fn a_composed_message_takes_the_accounts_from_as_its_from_header() {
    let setup = Setup::new();
    let output = setup.run(
        &[
            "send",
            "--to",
            "rcpt@example.org",
            "--subject",
            "s",
            "--text",
            "t",
        ],
        "",
    );
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    let message = received(&setup.a);
    assert_eq!(message.mail_from, "alice@a.example");
    let data = String::from_utf8_lossy(&message.data);
    contains(&data, "From: \"Alice\" <alice@a.example>\r\n");
}

#[test]
fn flags_override_the_file() {
    let setup = Setup::new();
    // Account a, but to b's port as b's user.
    let port = setup.b.port().to_string();
    let output = setup.send(&[
        "--account",
        "a",
        "--port",
        &port,
        "--user",
        "bob",
        "--password-env",
        "BOB_PW",
    ]);
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    assert_eq!(received(&setup.b).mail_from, "alice@a.example");
    // A --security of another mode without --port: that mode's port, not
    // the account's (nothing is expected to listen on 587 here).
    let output = setup.send(&["--account", "a", "--security", "starttls"]);
    assert_ne!(code(&output), 0);
    contains(&stderr(&output), "localhost:587");
    // The flag's password over the file's: a wrong one is refused.
    let output = setup.send(&["--password-env", "BOB_PW"]);
    assert_eq!(code(&output), 77, "{}", stderr(&output));
    assert!(setup.a.messages().is_empty());
}

#[test]
fn an_unknown_account_lists_the_accounts() {
    let setup = Setup::new();
    let output = setup.send(&["--account", "c"]);
    assert_eq!(code(&output), 78);
    contains(
        &stderr(&output),
        format!(
            "--account c: no such account; the accounts in {} are: a, b",
            setup.config()
        ),
    );
    // --config names another file; one that does not exist is an error.
    let missing = setup.dir.path.join("missing.toml");
    let output = setup.send(&["--config", missing.to_str().unwrap()]);
    assert_eq!(code(&output), 78);
    contains(&stderr(&output), "missing.toml");
}

#[test]
fn a_literal_password_in_a_file_others_can_read_is_refused() {
    let setup = Setup::new();
    let text = setup.accounts().replace(
        "password_env = \"ALICE_PW\"",
        &format!("password = \"{ALICE_PW}\""),
    );
    setup.write_config(&text);
    set_mode(&setup.config(), 0o644);
    for output in [setup.send(&[]), setup.run(&["config", "check"], "")] {
        assert_eq!(code(&output), 78);
        let error = stderr(&output);
        contains(&error, "(mode 0644)");
        contains(&error, format!("chmod 600 {}", setup.config()));
        assert!(!error.contains(ALICE_PW) && !stdout(&output).contains(ALICE_PW));
        assert!(setup.a.messages().is_empty());
    }
    set_mode(&setup.config(), 0o600);
    let output = setup.send(&[]);
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    received(&setup.a);
    // Without a literal password, a readable file is fine.
    setup.write_config(&setup.accounts());
    set_mode(&setup.config(), 0o644);
    let output = setup.run(&["config", "check"], "");
    assert_eq!(code(&output), 0, "{}", stderr(&output));
}

#[test]
fn an_accounts_proxy_is_used_and_its_password_keeps_the_file_private() {
    use tls_mailer_testkit::proxy::{ProxyProtocol, TestProxy};
    let setup = Setup::new();
    let proxy = TestProxy::start(ProxyProtocol::HttpConnect, Some(("pu", "proxy-secret"))).unwrap();
    let text = setup.accounts().replace(
        "timeout = 10",
        &format!(
            "timeout = 10\nproxy = \"http://pu:proxy-secret@127.0.0.1:{}\"",
            proxy.port()
        ),
    );
    setup.write_config(&text);
    let output = setup.send(&[]);
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    received(&setup.a);
    assert_eq!(proxy.requests(), [format!("localhost:{}", setup.a.port())]);
    // The proxy's password is a secret: not in a file others can read.
    set_mode(&setup.config(), 0o644);
    let output = setup.send(&[]);
    assert_eq!(code(&output), 78, "{}", stderr(&output));
    contains(&stderr(&output), "or of its proxy");
    assert!(!stderr(&output).contains("proxy-secret"));
}

#[test]
fn an_unknown_key_is_named_with_file_and_line() {
    let setup = Setup::new();
    let text = setup.accounts().replace("timeout = 10", "timeuot = 10");
    setup.write_config(&text);
    let line = text.lines().position(|l| l.starts_with("timeuot")).unwrap() + 1;
    for output in [setup.send(&[]), setup.run(&["config", "check"], "")] {
        assert_eq!(code(&output), 78);
        let error = stderr(&output);
        contains(
            &error,
            format!("{}:{line}:1: unknown key `timeuot`", setup.config()),
        );
        contains(&error, "did you mean `timeout`?");
    }
    setup.write_config("default = \"a\"\n[accounts.a]\nport = \"465\"\n");
    let output = setup.run(&["config", "check"], "");
    assert_eq!(code(&output), 78);
    contains(&stderr(&output), format!("{}:3:8: ", setup.config()));
    setup.write_config("default = \"x\"\n[accounts.a]\n");
    let output = setup.run(&["config", "check"], "");
    assert_eq!(code(&output), 78);
    contains(&stderr(&output), "default = \"x\" names no account");
}

#[test]
fn a_failing_password_command_says_its_status_and_stderr() {
    let setup = Setup::new();
    let text = setup.accounts().replace(
        "password_command = \"printf '%s\\n' \\\"$BOB_PW\\\"\"",
        "password_command = \"echo 'no key' >&2; exit 3\"",
    );
    assert_ne!(text, setup.accounts());
    setup.write_config(&text);
    let output = setup.send(&["--account", "b"]);
    assert_eq!(code(&output), 78, "{}", stderr(&output));
    let error = stderr(&output);
    contains(
        &error,
        format!(
            "password_command (account b in {}) failed (exit status: 3); its stderr: no key",
            setup.config()
        ),
    );
    assert!(setup.b.messages().is_empty());
}

#[test]
fn config_check_prints_the_accounts_and_their_problems() {
    let setup = Setup::new();
    let output = setup.run(&["config", "check"], "");
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    let out = stdout(&output);
    assert!(
        out.starts_with(&format!("{}: 2 accounts, default a\n", setup.config())),
        "{out}"
    );
    contains(&out, "[accounts.a] (default)\n  host = \"localhost\"\n");
    contains(&out, "[accounts.b]\n");
    contains(
        &out,
        "  from_patterns = [\"*@b.example\", \"*@*.b.example\"]\n",
    );
    assert!(!out.contains("problem"), "{out}");

    let text = format!(
        "{}\n[accounts.broken]\nuser = \"x\"\npassword = \"{ALICE_PW}\"\npassword_env = \"X\"\n\
         [accounts.badca]\nhost = \"localhost\"\nca_file = \"/nonexistent/ca.pem\"\n",
        setup.accounts()
    );
    setup.write_config(&text);
    let output = setup.run(&["config", "check", "--connect"], "");
    assert_eq!(code(&output), 78, "{}", stderr(&output));
    let out = stdout(&output);
    contains(&out, "[accounts.broken]\n  user = \"x\"\n");
    contains(&out, "  password = <redacted>\n");
    assert!(!out.contains(ALICE_PW), "{out}");
    contains(&out, "  problem: no host");
    contains(&out, "  problem: more than one of password_command");
    contains(&out, "/nonexistent/ca.pem");
    // Nothing is connected to while the file is wrong.
    assert!(!out.contains(": ok:"), "{out}");
    // Sending through the broken account says what is wrong before anything else.
    let output = setup.send(&["--account", "broken", "--host", "localhost"]);
    assert_eq!(code(&output), 78);
    contains(
        &stderr(&output),
        format!(
            "account broken in {}: more than one of password_command",
            setup.config()
        ),
    );
}

#[test]
fn config_check_connect_logs_in_to_each_account() {
    let setup = Setup::new();
    let output = setup.run(&["config", "check", "--connect"], "");
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    let out = stdout(&output);
    for (name, server, user) in [("a", &setup.a, "alice"), ("b", &setup.b, "bob")] {
        let line = format!(
            "{name}: ok: localhost:{}, implicit TLS TLSv1_3, authenticated as {user}\n",
            server.port()
        );
        contains(&out, line);
        assert!(server.messages().is_empty(), "nothing sent");
    }
    // A wrong password: that account fails, with the code it would exit with.
    let output = common::tls_mailer(
        &["config", "check", "--connect", "--config", &setup.config()],
        b"",
        &[("ALICE_PW", "wrong"), ("BOB_PW", BOB_PW)],
    );
    assert_eq!(code(&output), 77, "{}", stderr(&output));
    let out = stdout(&output);
    contains(&out, "a: failed: ");
    contains(&out, "b: ok: ");
    assert!(!out.contains("wrong"), "{out}");
}

const MSMTPRC: &str = r#"# A sample covering every directive converted
defaults
auth on
tls on
tls_trust_file ~/ca.pem
logfile ~/.msmtp.log

account work
host localhost
port 465
tls_starttls off
user alice
passwordeval "echo \"$ALICE_PW\""
from alice@a.example
domain laptop.example.org
timeout 30
tls_fingerprint 43:AD:B6:62:5F:52:A0:0E:E9:21:9D:5C:C2:63:1D:C6:AE:6A:C9:0B:5F:9C:1C:93:7F:12:A0:CE:04:1E:A6:31

account sub : work
from *@b.example
auth plain
tls_starttls on
port 587

account literal : work
user bob
password "bob-password"
from bob@c.example

account legacy
host old.example.net
tls off
tls_starttls off
auth cram-md5
user carol

account token : work
auth xoauth2
passwordeval "oauth2token alice"

account default : work
"#;

/// What [`MSMTPRC`] converts to.
const CONVERTED: &str = r##"# Converted from an msmtp configuration by `tls-mailer config import-msmtprc`.
default = "work"

[accounts.work]
security = "implicit-tls"
ca_file = "~/ca.pem"
logfile = "~/.msmtp.log"
host = "localhost"
port = 465
user = "alice"
password_command = "echo \"$ALICE_PW\""
from = "alice@a.example"
ehlo_name = "laptop.example.org"
timeout = 30
# not converted: tls_fingerprint 43:AD:B6:62:5F:52:A0:0E:E9:21:9D:5C:C2:63:1D:C6:AE:6A:C9:0B:5F:9C:1C:93:7F:12:A0:CE:04:1E:A6:31 (a fingerprint of the whole certificate, which changes at every renewal, cannot be turned into pin_sha256, the SHA-256 of its public key: get that from the server's certificate (README, Pinned public keys))

[accounts.sub]
auth_mechanisms = ["plain"]
security = "starttls"
ca_file = "~/ca.pem"
logfile = "~/.msmtp.log"
host = "localhost"
port = 587
user = "alice"
password_command = "echo \"$ALICE_PW\""
from_patterns = ["*@b.example"]
ehlo_name = "laptop.example.org"
timeout = 30
# not converted: tls_fingerprint 43:AD:B6:62:5F:52:A0:0E:E9:21:9D:5C:C2:63:1D:C6:AE:6A:C9:0B:5F:9C:1C:93:7F:12:A0:CE:04:1E:A6:31 (a fingerprint of the whole certificate, which changes at every renewal, cannot be turned into pin_sha256, the SHA-256 of its public key: get that from the server's certificate (README, Pinned public keys))

[accounts.literal]
security = "implicit-tls"
ca_file = "~/ca.pem"
logfile = "~/.msmtp.log"
host = "localhost"
port = 465
user = "bob"
password = "bob-password"
from = "bob@c.example"
ehlo_name = "laptop.example.org"
timeout = 30
# not converted: tls_fingerprint 43:AD:B6:62:5F:52:A0:0E:E9:21:9D:5C:C2:63:1D:C6:AE:6A:C9:0B:5F:9C:1C:93:7F:12:A0:CE:04:1E:A6:31 (a fingerprint of the whole certificate, which changes at every renewal, cannot be turned into pin_sha256, the SHA-256 of its public key: get that from the server's certificate (README, Pinned public keys))

[accounts.legacy]
auth_mechanisms = ["cram-md5"]
# not converted: tls off (tls-mailer never sends in plaintext: it uses implicit TLS unless you set security)
ca_file = "~/ca.pem"
logfile = "~/.msmtp.log"
host = "old.example.net"
# not converted: tls_starttls off (tls is not on)
user = "carol"

[accounts.token]
security = "implicit-tls"
ca_file = "~/ca.pem"
logfile = "~/.msmtp.log"
host = "localhost"
port = 465
user = "alice"
oauth_token_command = "oauth2token alice"
from = "alice@a.example"
ehlo_name = "laptop.example.org"
timeout = 30
# not converted: tls_fingerprint 43:AD:B6:62:5F:52:A0:0E:E9:21:9D:5C:C2:63:1D:C6:AE:6A:C9:0B:5F:9C:1C:93:7F:12:A0:CE:04:1E:A6:31 (a fingerprint of the whole certificate, which changes at every renewal, cannot be turned into pin_sha256, the SHA-256 of its public key: get that from the server's certificate (README, Pinned public keys))
"##;

#[test]
fn import_msmtprc_converts_every_directive() {
    let setup = Setup::new();
    let rc = setup.dir.file("msmtprc", MSMTPRC.as_bytes());
    let output = setup.run(&["config", "import-msmtprc", &rc], "");
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    assert_eq!(stdout(&output), CONVERTED);
    // Every line left as a comment is listed on stderr with its line.
    let error = stderr(&output);
    for (line, text) in [
        (17, "tls_fingerprint 43:AD"),
        (32, "tls off (tls-mailer never sends in plaintext"),
        (33, "tls_starttls off (tls is not on)"),
    ] {
        assert!(
            error.contains(&format!("{rc}:{line}: not converted: {text}")),
            "{line}: {error}"
        );
    }
    assert_eq!(
        error.matches("not converted").count(),
        3,
        "each once: {error}"
    );
    contains(&error, "warning: account literal: its password is kept");
    assert!(!error.contains("bob-password"), "{error}");
}

#[test]
fn import_msmtprc_reads_msmtprc_by_default_and_the_result_loads_and_sends() {
    let setup = Setup::new();
    // HOME is the test's directory: ~/.msmtprc, and ~/ca.pem in the file.
    setup.dir.file(".msmtprc", MSMTPRC.as_bytes());
    let out = setup.dir.path.join("converted.toml");
    let out = out.to_str().unwrap();
    let output = setup.run(&["config", "import-msmtprc", "-o", out], "");
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    assert_eq!(stdout(&output), "");
    assert_eq!(std::fs::read_to_string(out).unwrap(), CONVERTED);
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(out).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    // It is not replaced unless --force.
    let output = setup.run(&["config", "import-msmtprc", "-o", out], "");
    assert_eq!(code(&output), 64);
    contains(&stderr(&output), "give --force");
    set_mode(out, 0o644);
    std::fs::write(out, "old").unwrap();
    let output = setup.run(&["config", "import-msmtprc", "-o", out, "--force"], "");
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    assert_eq!(std::fs::read_to_string(out).unwrap(), CONVERTED);
    let mode = std::fs::metadata(out).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "a replaced file is made private");

    let output = setup.run(&["config", "check", "--config", out], "");
    assert_eq!(code(&output), 0, "{}{}", stdout(&output), stderr(&output));
    contains(&stdout(&output), "5 accounts, default work");
    // The default account (work: alice's password_command), on a's port.
    let port = setup.a.port().to_string();
    let output = setup.send(&["--config", out, "--port", &port]);
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    assert_eq!(received(&setup.a).mail_from, "alice@a.example");
    // The inheriting account with its own password, on b's port.
    let port = setup.b.port().to_string();
    let output = setup.send(&["--config", out, "--account", "literal", "--port", &port]);
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    assert_eq!(received(&setup.b).mail_from, "bob@c.example");
}

#[test]
fn import_msmtprc_without_a_file_says_where_it_looked() {
    let setup = Setup::new();
    let output = setup.run(&["config", "import-msmtprc"], "");
    assert_eq!(code(&output), 66);
    contains(&stderr(&output), "~/.msmtprc");
}

#[test]
fn batch_uses_the_default_account() {
    let setup = Setup::new();
    let message = setup.dir.file("one.eml", MESSAGE.as_bytes());
    let output = setup.run(&["batch", &message], "");
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    assert_eq!(received(&setup.a).rcpt_to, ["rcpt@example.org"]);
}

#[test]
fn queue_flush_uses_an_account_only_when_named_and_the_files_outbox() {
    let setup = Setup::new();
    let spool = setup.dir.path.join("outbox");
    let spool = spool.to_str().unwrap();
    setup.write_config(&setup.accounts().replace(
        "default = \"a\"\n",
        "default = \"a\"\n[queue]\nspool = \"~/outbox\"\n",
    ));
    // Nothing listens on this port now: the message is queued.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_port = dead.local_addr().unwrap().port().to_string();
    drop(dead);
    let output = setup.send(&["--queue-on-failure", "--port", &dead_port]);
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    contains(&stderr(&output), "queued as");
    // In the file's outbox, ~ expanded: queue list finds it there too.
    assert!(setup.dir.path.join("outbox").is_dir());
    let output = setup.run(&["queue", "list", "--json"], "");
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    let listed: Vec<serde_json::Value> = serde_json::from_str(&stdout(&output)).unwrap();
    assert_eq!(listed.len(), 1, "{}", stdout(&output));
    let output = setup.run(&["config", "check"], "");
    contains(
        &stdout(&output),
        format!("[queue]\n  spool = \"{spool}\"\n"),
    );
    // Without --account the recorded route stands (and has no password).
    let output = setup.run(&["queue", "flush"], "");
    assert_ne!(code(&output), 0, "{}", stderr(&output));
    assert!(setup.a.messages().is_empty());
    // With it, the account's server and password replace what was recorded.
    let output = setup.run(&["queue", "flush", "--account", "a"], "");
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    assert_eq!(received(&setup.a).mail_from, "alice@a.example");
}

#[test]
fn an_implicit_account_is_not_used_for_another_host() {
    let setup = Setup::new();
    // The default account names another server; its password command
    // would fail and its from would be the sender, were it used.
    setup.write_config(
        "default = \"other\"\n[accounts.other]\nhost = \"smtp.other.example\"\nuser = \"x\"\n\
         password_command = \"exit 1\"\nfrom = \"x@other.example\"\n",
    );
    let flags = common::connection_args("send", setup.a.port(), &setup.ca(), "alice", "ALICE_PW");
    let mut args: Vec<&str> = flags.iter().map(String::as_str).collect();
    args.push("rcpt@example.org");
    let output = setup.run(&args, MESSAGE);
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    assert_eq!(received(&setup.a).mail_from, "someone@example.net");
    // Named, it is used, --host or not: its from is the sender.
    args.extend(["--account", "other"]);
    let output = setup.run(&args, MESSAGE);
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    let messages = setup.a.wait_for_messages(2, Duration::from_secs(5));
    assert_eq!(messages[1].mail_from, "x@other.example");
}

#[test]
fn account_without_a_file_says_where_to_write_one() {
    let setup = Setup::new();
    std::fs::remove_file(setup.config()).unwrap();
    let output = setup.send(&["--account", "a"]);
    assert_eq!(code(&output), 78);
    contains(
        &stderr(&output),
        format!(
            "--account needs a configuration file: give --config FILE, or write {}",
            setup.config()
        ),
    );
    // No file and no --account: the flags alone, as before.
    let output = setup.send(&[]);
    assert_eq!(code(&output), 64, "{}", stderr(&output));
    contains(&stderr(&output), "send needs --host");
}

#[test]
fn an_accounts_logfile_gets_a_line_per_message_unless_log_names_another() {
    let setup = Setup::new();
    let accounts = setup
        .accounts()
        .replace("timeout = 10\n", "timeout = 10\nlogfile = \"~/mail.log\"\n");
    setup.write_config(&accounts);
    let output = setup.send(&[]);
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    // Through the sendmail interface too (cron's path).
    let output = setup.run(&["sendmail", "-oi", "rcpt@example.org"], MESSAGE);
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    let log = setup.dir.path.join("mail.log");
    let text = std::fs::read_to_string(&log).unwrap();
    assert_eq!(text.lines().count(), 2, "{text}");
    assert!(
        text.lines()
            .all(|line| line.contains("from=alice@a.example") && line.contains("result=sent")),
        "{text}"
    );
    // --log wins over the account's file.
    let other = setup.dir.path.join("other.log");
    let output = setup.send(&["--log", other.to_str().unwrap()]);
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    assert_eq!(std::fs::read_to_string(&log).unwrap().lines().count(), 2);
    assert_eq!(std::fs::read_to_string(&other).unwrap().lines().count(), 1);
}

#[test]
fn defaults_fill_what_an_account_does_not_set() {
    let setup = Setup::new();
    setup.write_config(&format!(
        r#"default = "a"

[defaults]
host = "localhost"
ca_file = "{ca}"
timeout = 10
from = "Everyone <all@d.example>"

[accounts.a]
port = {a}
user = "alice"
password_env = "ALICE_PW"
from = "Alice <alice@a.example>"

[accounts.b]
port = {b}
user = "bob"
password_command = "printf '%s\n' \"$BOB_PW\""
"#,
        ca = setup.ca(),
        a = setup.a.port(),
        b = setup.b.port(),
    ));
    let output = setup.send(&[]);
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    assert_eq!(
        received(&setup.a).mail_from,
        "alice@a.example",
        "its own from wins"
    );
    let output = setup.send(&["--account", "b"]);
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    assert_eq!(
        received(&setup.b).mail_from,
        "all@d.example",
        "the default's from"
    );
    let output = setup.run(&["config", "check"], "");
    assert_eq!(code(&output), 0, "{}{}", stdout(&output), stderr(&output));
    contains(&stdout(&output), "host = \"localhost\"");

    // A default is checked as an account's key is: named with its line.
    setup.write_config("[defaults]\nhots = \"x\"\n\n[accounts.a]\nhost = \"h\"\n");
    let output = setup.run(&["config", "check"], "");
    assert_eq!(code(&output), 78);
    contains(&stderr(&output), "config.toml:2:");
    contains(&stderr(&output), "hots");
}
