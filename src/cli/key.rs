//! `ncpc key`: make and inspect miner identities (sr25519, SS58 format 42).

use super::CliError;
use crate::identity::Identity;
use clap::{Args, Subcommand};
use std::path::PathBuf;

/// Where a key comes from (the seed client's flags). At most one may be given.
#[derive(Args, Debug, Default)]
pub struct KeySource {
    /// A BIP39 mnemonic (or secret URI such as //Alice).
    #[arg(long, global = true, conflicts_with_all = ["seed_file", "wallet"])]
    pub mnemonic: Option<String>,
    /// A file holding a mnemonic, a 0x-hex seed or a secret URI.
    #[arg(long, global = true, alias = "seed_file", conflicts_with = "wallet")]
    pub seed_file: Option<PathBuf>,
    /// A bittensor wallet name (with --hotkey): ~/.bittensor/wallets/WALLET/hotkeys/HOTKEY.
    #[arg(long, global = true, requires = "hotkey")]
    pub wallet: Option<String>,
    /// The wallet's hotkey name.
    #[arg(long, global = true, requires = "wallet")]
    pub hotkey: Option<String>,
}

impl KeySource {
    /// The identity these flags name, `None` when no flag is given.
    pub fn load(&self) -> Result<Option<Identity>, CliError> {
        if let Some(m) = &self.mnemonic {
            return Ok(Some(Identity::from_secret(m, "--mnemonic")?));
        }
        if let Some(f) = &self.seed_file {
            return Ok(Some(Identity::from_seed_file(f)?));
        }
        if let (Some(w), Some(h)) = (&self.wallet, &self.hotkey) {
            let home = std::env::var_os("HOME")
                .map(PathBuf::from)
                .unwrap_or_default();
            return Ok(Some(Identity::from_wallet_file(&Identity::wallet_path(
                &home, w, h,
            ))?));
        }
        Ok(None)
    }
}

/// Arguments of `ncpc key`.
#[derive(Args, Debug)]
pub struct KeyArgs {
    #[command(subcommand)]
    command: KeyCommand,
}

#[derive(Subcommand, Debug)]
enum KeyCommand {
    /// Generate a key: its mnemonic goes to FILE (0600, never overwritten), its address to
    /// stdout.
    Generate {
        /// Where to write the mnemonic (default: ~/.ncpc/miner-key).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Print the SS58 address and public key of a key (never the secret).
    Inspect {
        #[command(flatten)]
        source: KeySource,
    },
}

/// The default key file.
pub fn default_key_file() -> PathBuf {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_default()
        .join(".ncpc")
        .join("miner-key")
}

/// Run `ncpc key`.
pub fn run(a: KeyArgs) -> Result<(), CliError> {
    match a.command {
        KeyCommand::Generate { out } => {
            let path = out.unwrap_or_else(default_key_file);
            let id = Identity::generate(&path)?;
            println!("{}", id.ss58());
            eprintln!(
                "ncpc: the mnemonic of {} is in {} (keep it secret)",
                id.ss58(),
                path.display()
            );
        }
        KeyCommand::Inspect { source } => {
            let Some(id) = source.load()? else {
                return Err(anyhow::anyhow!(
                    "give a key: --mnemonic, --seed-file or --wallet with --hotkey"
                )
                .into());
            };
            println!("ss58: {}", id.ss58());
            println!("public: 0x{}", id.public_hex());
        }
    }
    Ok(())
}
