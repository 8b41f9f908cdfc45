//! The provider's key: from `MORPHEUS_PROVIDER_KEY`, or from an encrypted JSON keystore (the
//! format geth and `cast wallet` write) with its password in `MORPHEUS_KEYSTORE_PASSWORD` or a
//! file. Never both, never logged: errors name where the key came from, never the key.

use std::path::Path;

use alloy::signers::local::PrivateKeySigner;

use crate::{Error, Result};

/// The environment variable holding the keystore's password.
pub const KEYSTORE_PASSWORD_ENV: &str = "MORPHEUS_KEYSTORE_PASSWORD";

/// The provider's key: `env_key` (the hex key from `MORPHEUS_PROVIDER_KEY`), or the keystore at
/// `keystore` unlocked with `password` (the environment's) or the first line of
/// `password_file`.
pub fn provider_key(
    env_key: Option<&str>,
    keystore: Option<&Path>,
    password: Option<&str>,
    password_file: Option<&Path>,
) -> Result<PrivateKeySigner> {
    match (env_key.map(str::trim).filter(|k| !k.is_empty()), keystore) {
        (Some(_), Some(path)) => Err(Error::Config(format!(
            "keystore: both MORPHEUS_PROVIDER_KEY and the keystore {} are set; use one",
            path.display()
        ))),
        (Some(hex), None) => hex.parse().map_err(|_| {
            Error::Config("MORPHEUS_PROVIDER_KEY is not a private key (64 hex digits)".into())
        }),
        (None, Some(path)) => {
            let password = match (password, password_file) {
                (Some(p), _) => p.to_string(),
                (None, Some(file)) => std::fs::read_to_string(file)
                    .map_err(|e| Error::io(file, e))?
                    .lines()
                    .next()
                    .unwrap_or_default()
                    .to_string(),
                (None, None) => {
                    return Err(Error::Config(format!(
                        "keystore: {} needs its password in {KEYSTORE_PASSWORD_ENV} or \
                         keystore_password_file",
                        path.display()
                    )));
                }
            };
            PrivateKeySigner::decrypt_keystore(path, password).map_err(|e| {
                Error::Config(format!(
                    "keystore: cannot unlock {} (wrong password, or not a keystore): {e}",
                    path.display()
                ))
            })
        }
        (None, None) => Err(Error::Config(
            "no provider key: set MORPHEUS_PROVIDER_KEY, or keystore in the configuration".into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_keystore_unlocks_with_its_password_and_only_with_it() {
        let dir = tempfile::tempdir().expect("temp dir");
        let key = PrivateKeySigner::random();
        let (_, _) = PrivateKeySigner::encrypt_keystore(
            dir.path(),
            &mut rand08::thread_rng(),
            key.to_bytes(),
            "correct horse",
            Some("provider.json"),
        )
        .expect("keystore");
        let path = dir.path().join("provider.json");
        let unlocked =
            provider_key(None, Some(&path), Some("correct horse"), None).expect("unlocks");
        assert_eq!(unlocked.address(), key.address());

        let file = dir.path().join("password");
        std::fs::write(&file, "correct horse\n").expect("password file");
        let unlocked = provider_key(None, Some(&path), None, Some(&file)).expect("from file");
        assert_eq!(unlocked.address(), key.address());

        let err = provider_key(None, Some(&path), Some("wrong"), None).expect_err("wrong");
        assert!(err.to_string().contains("cannot unlock"), "{err}");
        let err = provider_key(None, Some(&path), None, None).expect_err("no password");
        assert!(err.to_string().contains(KEYSTORE_PASSWORD_ENV), "{err}");
        let hex = format!("{:?}", key.to_bytes());
        let err = provider_key(Some(&hex), Some(&path), None, None).expect_err("both");
        assert!(err.to_string().contains("use one"), "{err}");
        assert!(
            !err.to_string().contains(&hex[2..]),
            "the key is never shown"
        );
    }

    #[test]
    fn a_hex_key_is_read_and_a_bad_one_refused_without_showing_it() {
        let key = PrivateKeySigner::random();
        let hex = format!("{:?}", key.to_bytes());
        assert_eq!(
            provider_key(Some(&hex), None, None, None)
                .expect("key")
                .address(),
            key.address()
        );
        let err = provider_key(Some("0xnotakey"), None, None, None).expect_err("bad");
        assert!(!err.to_string().contains("notakey"), "{err}");
        let err = provider_key(None, None, None, None).expect_err("none");
        assert!(err.to_string().contains("MORPHEUS_PROVIDER_KEY"), "{err}");
    }
}
