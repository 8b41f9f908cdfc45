//! The user's key, in an encrypted keystore file (the Web3 Secret Storage format other Ethereum
//! tools read: scrypt and AES-128-CTR). The key is never printed, logged or taken as a command
//! line argument (which `ps` would show): it is created here, or imported from a file or stdin.
//! The password comes from `MORPHEUS_PASSWORD`, a password file, or the terminal.

use std::{
    fs,
    io::{BufRead, IsTerminal, Write},
    path::{Path, PathBuf},
};

use alloy::{primitives::Address, signers::local::PrivateKeySigner};

use crate::{Error, Result};

/// The environment variable holding a raw private key (0x hex), used instead of a keystore when
/// set: for devnets and scripts where an encrypted file has no one to type its password.
pub const KEY_ENV: &str = "MORPHEUS_KEY";
/// The environment variable holding the keystore's password.
pub const PASSWORD_ENV: &str = "MORPHEUS_PASSWORD";

/// Where the keystore's password comes from.
#[derive(Debug, Clone, Default)]
pub struct PasswordSource {
    /// A file whose first line is the password.
    pub file: Option<PathBuf>,
}

impl PasswordSource {
    /// The password: `MORPHEUS_PASSWORD`, else the password file's first line, else asked on
    /// the terminal (twice when `confirm`). Without a terminal and without either, an error.
    pub fn read(&self, keystore: &Path, confirm: bool) -> Result<String> {
        if let Ok(p) = std::env::var(PASSWORD_ENV) {
            return Ok(p);
        }
        if let Some(file) = &self.file {
            let text = fs::read_to_string(file).map_err(|e| Error::io(file, e))?;
            return Ok(text.lines().next().unwrap_or_default().to_string());
        }
        if !std::io::stdin().is_terminal() {
            return Err(Error::Keystore {
                path: keystore.to_path_buf(),
                reason: format!(
                    "locked: set {PASSWORD_ENV} or --password-file (no terminal to ask on)"
                ),
            });
        }
        let first = prompt(&format!("password for {}: ", keystore.display()))?;
        if confirm {
            let again = prompt("the same password again: ")?;
            if again != first {
                return Err(Error::Keystore {
                    path: keystore.to_path_buf(),
                    reason: "the two passwords differ".into(),
                });
            }
        }
        Ok(first)
    }
}

/// Reads a line from the terminal with echo off (`stty -echo`), so the password is not shown.
fn prompt(question: &str) -> Result<String> {
    let tty = Path::new("/dev/tty");
    eprint!("{question}");
    let _ = std::io::stderr().flush();
    let stty = |arg: &str| {
        std::process::Command::new("stty")
            .arg(arg)
            .stdin(fs::File::open(tty).map_err(|e| Error::io(tty, e))?)
            .status()
            .map_err(|e| Error::io("stty", e))
    };
    stty("-echo")?;
    let mut line = String::new();
    let read = std::io::stdin().lock().read_line(&mut line);
    stty("echo")?;
    eprintln!();
    read.map_err(|e| Error::io("stdin", e))?;
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}

/// The keystore file at `path`.
#[derive(Debug, Clone)]
pub struct Keystore {
    path: PathBuf,
}

impl Keystore {
    /// The keystore at `path` (which need not exist yet).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn refuse(&self, reason: impl Into<String>) -> Error {
        Error::Keystore {
            path: self.path.clone(),
            reason: reason.into(),
        }
    }

    /// Encrypts `signer`'s key with `password` into the file, which must not exist unless
    /// `overwrite`. The file is written whole or not at all (a temporary file renamed over
    /// it), readable by its owner only.
    pub fn save(&self, signer: &PrivateKeySigner, password: &str, overwrite: bool) -> Result<()> {
        if self.path.exists() && !overwrite {
            return Err(self.refuse(
                "already exists; pass --force to replace it (its key is lost unless backed up)",
            ));
        }
        if password.is_empty() {
            return Err(self.refuse("the password is empty"));
        }
        let dir = self
            .path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let name = self
            .path
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| self.refuse("not a file name"))?;
        let tmp_name = format!(".{name}.tmp");
        // The keystore crate takes its generator from the curve's `rand_core`: the OS's.
        let mut rng = alloy::signers::k256::elliptic_curve::rand_core::OsRng;
        PrivateKeySigner::encrypt_keystore(
            dir,
            &mut rng,
            signer.credential().to_bytes(),
            password,
            Some(&tmp_name),
        )
        .map_err(|e| self.refuse(format!("cannot encrypt: {e}")))?;
        let tmp = dir.join(&tmp_name);
        restrict(&tmp)?;
        fs::rename(&tmp, &self.path).map_err(|e| Error::io(&self.path, e))?;
        Ok(())
    }

    /// Decrypts the key with `password`.
    pub fn unlock(&self, password: &str) -> Result<PrivateKeySigner> {
        if !self.path.exists() {
            return Err(self.refuse(
                "no such file: create a key with `morpheus key new` or `morpheus key import`",
            ));
        }
        PrivateKeySigner::decrypt_keystore(&self.path, password).map_err(|e| {
            let text = e.to_string();
            if text.to_lowercase().contains("mac") {
                self.refuse("wrong password")
            } else {
                self.refuse(format!("cannot decrypt: {text}"))
            }
        })
    }

    /// The address the keystore records, when it records one in the clear (geth and this tool
    /// do); `None` means only unlocking tells it.
    pub fn address(&self) -> Result<Option<Address>> {
        let text = fs::read_to_string(&self.path).map_err(|e| Error::io(&self.path, e))?;
        let doc: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| self.refuse(format!("not JSON: {e}")))?;
        Ok(doc
            .get("address")
            .and_then(|a| a.as_str())
            .and_then(|a| format!("0x{}", a.trim_start_matches("0x")).parse().ok()))
    }
}

/// Makes `path` readable and writable by its owner only.
fn restrict(path: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(path, fs::Permissions::from_mode(0o600))
            .map_err(|e| Error::io(path, e))?;
    }
    Ok(())
}

/// Parses a private key given as hex (with or without `0x`, surrounding whitespace ignored),
/// naming `source` when it is not one, and never quoting what was given.
pub fn parse_key(text: &str, source: &str) -> Result<PrivateKeySigner> {
    text.trim().parse::<PrivateKeySigner>().map_err(|_| {
        Error::Config(format!(
            "{source} does not hold a private key (64 hex digits)"
        ))
    })
}

/// The user's signer: `MORPHEUS_KEY` when set, else the keystore unlocked with the password.
pub fn load_signer(keystore: &Keystore, password: &PasswordSource) -> Result<PrivateKeySigner> {
    if let Ok(key) = std::env::var(KEY_ENV) {
        return parse_key(&key, KEY_ENV);
    }
    if !keystore.path().exists() {
        return Err(Error::NoKey);
    }
    keystore.unlock(&password.read(keystore.path(), false)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_saved_key_unlocks_with_its_password_only() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Keystore::new(dir.path().join("keys/key.json"));
        let signer = PrivateKeySigner::random();
        store.save(&signer, "correct horse", false).expect("save");
        assert_eq!(
            store.unlock("correct horse").expect("unlock").address(),
            signer.address()
        );
        let wrong = store.unlock("battery staple").expect_err("wrong password");
        assert!(wrong.to_string().contains("wrong password"), "{wrong}");
        let text = fs::read_to_string(store.path()).expect("read");
        let hex = alloy::hex::encode(signer.credential().to_bytes());
        assert!(
            !text.contains(&hex),
            "the key is not in the file in the clear"
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(store.path())
                .expect("meta")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn an_existing_keystore_is_not_overwritten_without_force() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Keystore::new(dir.path().join("key.json"));
        let first = PrivateKeySigner::random();
        store.save(&first, "pw", false).expect("save");
        let err = store
            .save(&PrivateKeySigner::random(), "pw", false)
            .expect_err("exists");
        assert!(err.to_string().contains("--force"), "{err}");
        assert_eq!(
            store.unlock("pw").expect("unlock").address(),
            first.address()
        );
        let second = PrivateKeySigner::random();
        store.save(&second, "pw", true).expect("forced");
        assert_eq!(
            store.unlock("pw").expect("unlock").address(),
            second.address()
        );
    }

    #[test]
    fn bad_keys_and_missing_files_are_named_without_echoing_input() {
        let err = parse_key("0xnot-a-key-but-a-secret", "the file k.txt").expect_err("bad");
        let text = err.to_string();
        assert!(text.contains("k.txt") && !text.contains("secret"), "{text}");
        let dir = tempfile::tempdir().expect("tempdir");
        let missing = Keystore::new(dir.path().join("none.json"));
        let err = missing.unlock("pw").expect_err("missing");
        assert!(err.to_string().contains("morpheus key new"), "{err}");
        assert!(
            Keystore::new(dir.path().join("k.json"))
                .save(&PrivateKeySigner::random(), "", false)
                .is_err()
        );
    }
}
