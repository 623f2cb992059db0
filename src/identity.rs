//! Miner identities: sr25519 key pairs (substrate keys) and their SS58 addresses (format 42),
//! loaded from a mnemonic, a seed file (a mnemonic, a 0x-hex seed or a secret URI such as
//! `//Alice`), a bittensor wallet hotkey file, or generated and saved with 0600 permissions.
//! A secret never appears in a message, a log line or a `Debug` print.

use sp_core::crypto::Ss58Codec;
use sp_core::{Pair as _, sr25519};
use std::fmt;
use std::path::{Path, PathBuf};

/// Errors of identities. None of them contains secret material.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// The secret (mnemonic, seed or URI) is not valid; it is not repeated here.
    #[error("{source_name}: not a valid mnemonic, 0x-hex seed or secret URI")]
    BadSecret {
        /// Where the secret came from (never the secret).
        source_name: String,
    },
    /// A file could not be read or written.
    #[error("{}: {source}", file.display())]
    Io {
        /// The file.
        file: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A wallet hotkey file is malformed or inconsistent.
    #[error("{}: {msg}", file.display())]
    Wallet {
        /// The file.
        file: PathBuf,
        /// What is wrong.
        msg: String,
    },
    /// Refusing to overwrite an existing key file.
    #[error("{} already exists; refusing to overwrite a key", .0.display())]
    Exists(PathBuf),
}

/// A miner's key pair.
#[derive(Clone)]
pub struct Identity {
    pair: sr25519::Pair,
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Identity({})", self.ss58())
    }
}

impl Identity {
    /// From a secret string: a BIP39 mnemonic, a `0x`-hex seed, or a secret URI
    /// (`//Alice`, `phrase//derivation`). `source_name` says where it came from, for errors.
    pub fn from_secret(secret: &str, source_name: &str) -> Result<Identity, IdentityError> {
        let pair = sr25519::Pair::from_string(secret.trim(), None).map_err(|_| {
            IdentityError::BadSecret {
                source_name: source_name.into(),
            }
        })?;
        Ok(Identity { pair })
    }

    /// From a file holding a mnemonic, a 0x-hex seed or a secret URI.
    pub fn from_seed_file(path: &Path) -> Result<Identity, IdentityError> {
        let text = std::fs::read_to_string(path).map_err(|source| IdentityError::Io {
            file: path.into(),
            source,
        })?;
        Identity::from_secret(&text, &path.display().to_string())
    }

    /// From a bittensor wallet hotkey file (`~/.bittensor/wallets/<wallet>/hotkeys/<hotkey>`,
    /// JSON with `secretSeed` and/or `secretPhrase` and `ss58Address`). The address in the
    /// file must be the one the secret gives.
    pub fn from_wallet_file(path: &Path) -> Result<Identity, IdentityError> {
        let text = std::fs::read_to_string(path).map_err(|source| IdentityError::Io {
            file: path.into(),
            source,
        })?;
        let bad = |msg: &str| IdentityError::Wallet {
            file: path.into(),
            msg: msg.into(),
        };
        let v: serde_json::Value =
            serde_json::from_str(&text).map_err(|_| bad("not a JSON hotkey file"))?;
        let secret = v
            .get("secretSeed")
            .and_then(|s| s.as_str())
            .or_else(|| v.get("secretPhrase").and_then(|s| s.as_str()))
            .ok_or_else(|| bad("neither `secretSeed` nor `secretPhrase` is present"))?;
        let id = Identity::from_secret(secret, &path.display().to_string())?;
        if let Some(addr) = v.get("ss58Address").and_then(|s| s.as_str())
            && addr != id.ss58()
        {
            return Err(bad("its `ss58Address` is not the address its secret gives"));
        }
        Ok(id)
    }

    /// The wallet hotkey path bittensor uses.
    pub fn wallet_path(home: &Path, wallet: &str, hotkey: &str) -> PathBuf {
        home.join(".bittensor")
            .join("wallets")
            .join(wallet)
            .join("hotkeys")
            .join(hotkey)
    }

    /// A new random key; its mnemonic is written to `path` (created with 0600 permissions,
    /// never overwriting) and the identity returned.
    pub fn generate(path: &Path) -> Result<Identity, IdentityError> {
        if path.exists() {
            return Err(IdentityError::Exists(path.into()));
        }
        let (pair, phrase, _) = sr25519::Pair::generate_with_phrase(None);
        let io = |source| IdentityError::Io {
            file: path.into(),
            source,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut f = opts.open(path).map_err(io)?;
        use std::io::Write;
        f.write_all(format!("{phrase}\n").as_bytes()).map_err(io)?;
        Ok(Identity { pair })
    }

    /// The SS58 address (network format 42).
    pub fn ss58(&self) -> String {
        self.pair.public().to_ss58check()
    }

    /// The public key, hex.
    pub fn public_hex(&self) -> String {
        hex(&self.pair.public().0)
    }

    /// Sign `message`; the signature as hex without `0x` (the pool's auth format).
    pub fn sign_hex(&self, message: &[u8]) -> String {
        hex(&self.pair.sign(message).0)
    }

    /// Check a hex signature of `message` by the SS58 address `ss58`.
    pub fn verify(ss58: &str, message: &[u8], signature_hex: &str) -> bool {
        let Ok(public) = sr25519::Public::from_ss58check(ss58) else {
            return false;
        };
        let Some(bytes) = unhex(signature_hex.trim_start_matches("0x")) else {
            return false;
        };
        let Ok(arr) = <[u8; 64]>::try_from(bytes.as_slice()) else {
            return false;
        };
        sr25519::Pair::verify(&sr25519::Signature::from_raw(arr), message, &public)
    }
}

/// The public key and network prefix of an SS58 address of any prefix; `None` when it is
/// not an SS58 address of a 32-byte key.
pub fn decode_ss58(address: &str) -> Option<([u8; 32], u16)> {
    let (public, format) = sr25519::Public::from_ss58check_with_version(address).ok()?;
    Some((public.0, u16::from(format)))
}

/// The SS58 address of the public key `key` under network `prefix`.
pub fn encode_ss58(key: &[u8; 32], prefix: u16) -> String {
    sr25519::Public::from_raw(*key)
        .to_ss58check_with_version(sp_core::crypto::Ss58AddressFormat::custom(prefix))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}
