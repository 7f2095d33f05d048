//! Files that hold secrets (`--password-file`, `--dkim-key`): read into
//! memory that is wiped when dropped, with a warning when other users can
//! get at them.

use std::fs::{File, Metadata};
use std::io::Read;
use std::path::Path;

use zeroize::Zeroizing;

/// The most read ahead of time for a secret file, whatever size it claims
/// (a key or a password is a few kilobytes at most).
const RESERVE_LIMIT: u64 = 64 * 1024;

/// Reads the whole secret file `path`, given with `flag`; warns on stderr when
/// its permissions let other users read it. The error is worded for the user.
pub fn read(flag: &str, path: &Path) -> Result<Zeroizing<Vec<u8>>, String> {
    let failed = |error: std::io::Error| format!("{flag} {}: {error}", path.display());
    let mut file = File::open(path).map_err(failed)?;
    let metadata = file.metadata().map_err(failed)?;
    if let Some(warning) = exposure_warning(flag, path, &metadata) {
        eprintln!("tls-mailer: warning: {warning}");
    }
    // Reserved up front so that reading does not reallocate and leave
    // unwiped copies of the secret behind.
    let reserve = usize::try_from(metadata.len().min(RESERVE_LIMIT)).unwrap_or(0);
    let mut bytes = Zeroizing::new(Vec::with_capacity(reserve + 1));
    file.read_to_end(&mut bytes).map_err(failed)?;
    Ok(bytes)
}

/// What to say when a regular file holding a secret can be read (or
/// written) by its group or by others, with the command that fixes it.
/// Devices and pipes are left alone: their modes are not the user's to set.
#[cfg(unix)]
fn exposure_warning(flag: &str, path: &Path, metadata: &Metadata) -> Option<String> {
    use std::os::unix::fs::PermissionsExt;
    let mode = metadata.permissions().mode() & 0o777;
    (metadata.is_file() && mode & 0o077 != 0).then(|| {
        format!(
            "{flag} {}: other users have access to this file (mode {mode:04o}), \
             which holds a secret; fix: chmod 600 {}",
            path.display(),
            shell_word(&path.display().to_string()),
        )
    })
}

/// Permissions are not checked outside Unix.
#[cfg(not(unix))]
fn exposure_warning(_flag: &str, _path: &Path, _metadata: &Metadata) -> Option<String> {
    None
}

/// `word` quoted for a POSIX shell when it needs to be, so that the printed
/// command can be pasted.
pub fn shell_word(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/._-+,:@%=".contains(&b));
    if plain {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

#[cfg(all(test, unix))]
mod tests {
    #![allow(clippy::unwrap_used)] // tests unwrap: a panic is a test failure

    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn warning_at(mode: u32) -> Option<String> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key's file");
        std::fs::write(&path, b"secret\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        exposure_warning("--dkim-key", &path, &std::fs::metadata(&path).unwrap())
    }

    #[test]
    fn group_or_other_access_is_named_with_the_fix() {
        for mode in [0o644, 0o640, 0o604, 0o620, 0o602, 0o610] {
            let warning = warning_at(mode).unwrap_or_else(|| panic!("{mode:o}: no warning"));
            assert!(warning.contains(&format!("(mode {mode:04o})")), "{warning}");
            assert!(warning.starts_with("--dkim-key "), "{warning}");
            assert!(warning.contains(r"chmod 600 '"), "{warning}");
            assert!(warning.ends_with(r"key'\''s file'"), "{warning}");
        }
        for mode in [0o600, 0o400, 0o700] {
            assert_eq!(warning_at(mode), None, "{mode:o}");
        }
    }

    #[test]
    fn devices_are_not_checked() {
        let null = std::fs::metadata("/dev/null").unwrap();
        assert_ne!(null.permissions().mode() & 0o077, 0, "/dev/null is 0666");
        assert_eq!(
            exposure_warning("--password-file", Path::new("/dev/null"), &null),
            None
        );
    }

    #[test]
    fn shell_words_are_quoted_only_when_needed() {
        assert_eq!(
            shell_word("/home/a/.secrets/smtp.pw"),
            "/home/a/.secrets/smtp.pw"
        );
        assert_eq!(shell_word("/tmp/a b"), "'/tmp/a b'");
        assert_eq!(shell_word("it's"), r"'it'\''s'");
        assert_eq!(shell_word(""), "''");
    }

    #[test]
    fn read_returns_the_whole_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pw");
        std::fs::write(&path, b"first\nsecond\n").unwrap();
        assert_eq!(
            read("--password-file", &path).unwrap().as_slice(),
            b"first\nsecond\n"
        );
        let missing = dir.path().join("missing");
        let error = read("--password-file", &missing).unwrap_err();
        assert!(
            error.starts_with(&format!("--password-file {}: ", missing.display())),
            "{error}"
        );
    }
}
