//! Miner identities: key sources, SS58 addresses, signatures, and that secrets never leak.

use ncpc::identity::{Identity, IdentityError};

const ALICE: &str = "5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY";

#[test]
fn alice_has_the_well_known_address_and_signs_verifiably() {
    let id = Identity::from_secret("//Alice", "test").unwrap();
    assert_eq!(id.ss58(), ALICE);
    let msg = b"auth:1700000000";
    let sig = id.sign_hex(msg);
    assert_eq!(sig.len(), 128, "64 bytes, hex, no 0x");
    assert!(Identity::verify(ALICE, msg, &sig));
    assert!(!Identity::verify(ALICE, b"auth:1700000001", &sig));
    let bob = Identity::from_secret("//Bob", "test").unwrap();
    assert!(!Identity::verify(&bob.ss58(), msg, &sig));
    assert!(!Identity::verify(ALICE, msg, "zz"));
    assert!(!Identity::verify("not-an-address", msg, &sig));
    assert_eq!(format!("{id:?}"), format!("Identity({ALICE})"));
}

#[test]
fn generated_keys_are_private_files_that_load_back() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sub").join("key");
    let id = Identity::generate(&path).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    assert_eq!(Identity::from_seed_file(&path).unwrap().ss58(), id.ss58());
    assert!(matches!(
        Identity::generate(&path),
        Err(IdentityError::Exists(_))
    ));
    let words = std::fs::read_to_string(&path)
        .unwrap()
        .split_whitespace()
        .count();
    assert_eq!(words, 12, "a BIP39 mnemonic");
}

#[test]
fn hex_seeds_and_wallet_files_load() {
    let dir = tempfile::tempdir().unwrap();
    let seed = format!("0x{}", "42".repeat(32));
    let seed_file = dir.path().join("seed.txt");
    std::fs::write(&seed_file, format!("{seed}\n")).unwrap();
    let id = Identity::from_seed_file(&seed_file).unwrap();
    assert_eq!(id.ss58(), Identity::from_secret(&seed, "x").unwrap().ss58());

    let home = dir.path();
    let wallet = Identity::wallet_path(home, "miner", "default");
    std::fs::create_dir_all(wallet.parent().unwrap()).unwrap();
    std::fs::write(
        &wallet,
        serde_json::json!({"ss58Address": id.ss58(), "secretSeed": seed}).to_string(),
    )
    .unwrap();
    assert_eq!(
        Identity::from_wallet_file(&wallet).unwrap().ss58(),
        id.ss58()
    );
    let phrase = "bottom drive obey lake curtain smoke basket hold race lonely fit walk";
    let root = Identity::from_secret(phrase, "x").unwrap();
    std::fs::write(
        &wallet,
        serde_json::json!({"ss58Address": root.ss58(), "secretPhrase": phrase}).to_string(),
    )
    .unwrap();
    assert_eq!(
        Identity::from_wallet_file(&wallet).unwrap().ss58(),
        root.ss58()
    );

    std::fs::write(
        &wallet,
        serde_json::json!({"ss58Address": ALICE, "secretSeed": seed}).to_string(),
    )
    .unwrap();
    let e = Identity::from_wallet_file(&wallet).unwrap_err().to_string();
    assert!(e.contains("ss58Address") && !e.contains(&seed), "{e}");
    std::fs::write(&wallet, "{\"ss58Address\": 1}").unwrap();
    assert!(
        Identity::from_wallet_file(&wallet)
            .unwrap_err()
            .to_string()
            .contains("secretSeed")
    );
    std::fs::write(&wallet, "not json").unwrap();
    assert!(
        Identity::from_wallet_file(&wallet)
            .unwrap_err()
            .to_string()
            .contains("not a JSON hotkey file")
    );
}

#[test]
fn errors_never_repeat_the_secret() {
    let secret = "correct horse battery staple wrong words here nothing valid at all";
    let e = Identity::from_secret(secret, "--mnemonic")
        .unwrap_err()
        .to_string();
    assert!(e.contains("--mnemonic") && !e.contains("horse"), "{e}");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ncpc"))
        .args(["key", "inspect", "--mnemonic", secret])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        !err.contains("horse") && !String::from_utf8_lossy(&out.stdout).contains("horse"),
        "{err}"
    );
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ncpc"))
        .args(["key", "inspect"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ncpc"))
        .args(["key", "inspect", "--seed-file", "/no/such/file"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("/no/such/file"));
}
