//! Config parsing and compilation.

use super::*;

fn write(text: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("assertd.toml");
    std::fs::write(&p, text).unwrap();
    (dir, p)
}

#[test]
fn full_config_parses() {
    let (_d, p) = write(
        r#"
listen = "127.0.0.1:7000"
data_dir = "/tmp/x"
[[relying_parties]]
id = "login.example.com"
origins = ["https://login.example.com", "android:apk-key-hash:abc"]
allow_cross_origin = true
allowed_top_origins = ["https://portal.example.com"]
user_verification = "required"
sign_count_regression = "step_up"
[cache]
ttl_seconds = 10
[limits]
max_batch_size = 8
"#,
    );
    let (c, policy) = Config::load_compiled(&p).unwrap();
    assert_eq!(c.listen.port(), 7000);
    assert_eq!(c.limits.max_batch_size, 8);
    assert_eq!(c.limits.max_signature_bytes, Limits::default().max_signature_bytes);
    assert_eq!(c.cache.ttl_seconds, 10);
    let rps = policy.rps;
    let rp = &rps["login.example.com"];
    assert_eq!(rp.default_profile.user_verification, UserVerification::Required);
    assert_eq!(rp.default_profile.sign_count_regression, RegressionAction::StepUp);
    assert!(rp.rp.origin_allowed("android:apk-key-hash:abc"));
}

#[test]
fn store_shorthand_and_table() {
    let c: Config = toml::from_str("store = \"postgres\"\n").unwrap();
    assert_eq!((c.store.backend, c.store.pool_size), (Backend::Postgres, StoreSection::default().pool_size));
    let c: Config = toml::from_str("[store]\nbackend = \"postgres\"\nurl = \"postgres://a@b/c\"\npool_size = 3\n").unwrap();
    assert_eq!((c.store.backend, c.store.pool_size, c.store.url.as_deref()), (Backend::Postgres, 3, Some("postgres://a@b/c")));
    let e = toml::from_str::<Config>("store = \"mysql\"\n").unwrap_err().to_string();
    assert!(e.contains("store must be"), "{e}");
    let e = toml::from_str::<Config>("[store]\nbackend = \"postgres\"\nurll = 1\n").unwrap_err().to_string();
    assert!(e.contains("store must be"), "{e}");
}

#[test]
fn shipped_example_is_valid() {
    let (c, policy) = Config::load_compiled(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/assertd.toml")).unwrap();
    assert_eq!(c.relying_parties.len(), 3);
    let rps = policy.rps;
    assert!(rps["example.org"].rp.appid_hash().is_some());
    assert_eq!(rps["admin.example.com"].default_profile.user_verification, UserVerification::Required);
}

#[test]
fn errors_name_file_and_key() {
    let (_d, p) = write("listen = \"127.0.0.1:7000\"\nlisten_typo = 1\n");
    let e = Config::load_compiled(&p).unwrap_err().to_string();
    assert!(e.contains("assertd.toml") && e.contains("listen_typo") && e.contains("line 2"), "{e}");

    let (_d, p) = write("[[relying_parties]]\nid = \"a.example\"\norigins = [\"https://a.example/\"]\n");
    let e = Config::load_compiled(&p).unwrap_err().to_string();
    assert!(e.contains("relying_parties[0].origins (line 3)"), "{e}");

    let (_d, p) = write("[[relying_parties]]\nid = \"a.example\"\norigins = [\"https://a.example\"]\nuser_verification = \"sometimes\"\n");
    let e = Config::load_compiled(&p).unwrap_err().to_string();
    assert!(e.contains("sometimes") && e.contains("line 4"), "{e}");

    let (_d, p) = write("[limits]\nmax_batch_size = 0\n");
    assert!(Config::load_compiled(&p).unwrap_err().to_string().contains("limits.max_batch_size (line 2)"));

    let (_d, p) =
        write("[[relying_parties]]\nid = \"a\"\norigins = [\"https://a\"]\n[[relying_parties]]\nid = \"a\"\norigins = [\"https://a\"]\n");
    assert!(Config::load_compiled(&p).unwrap_err().to_string().contains("configured twice"));

    assert!(Config::load_compiled(Path::new("/nonexistent/assertd.toml")).unwrap_err().to_string().contains("cannot read"));
}

/// The signal table of docs/configuration.md lists exactly the signals, each with its
/// default weight and reason code.
#[test]
fn documented_signal_table_matches_the_signals() {
    use assertd_policy::Signal;
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/configuration.md")).unwrap();
    let start = readme.find("| signal (`risk.weights.` key)").expect("the signal table of docs/configuration.md");
    let rows: Vec<Vec<String>> = readme[start..]
        .lines()
        .skip(2)
        .take_while(|l| l.starts_with('|'))
        .map(|l| l.trim_matches('|').split('|').map(|c| c.trim().to_owned()).collect())
        .collect();
    let listed: Vec<(String, String, String)> = rows
        .iter()
        .map(|r| {
            let key = r[0].split('`').nth(1).unwrap_or_default().to_owned();
            (key, r[1].clone(), r[2].trim_matches('`').to_owned())
        })
        .collect();
    let want: Vec<(String, String, String)> =
        Signal::ALL.iter().map(|s| (s.key().to_owned(), s.default_weight().to_string(), s.reason().as_str().to_owned())).collect();
    assert_eq!(listed, want);
}

/// Issue 13 item 7: origins are checked as browsers serialize them, and
/// plaintext `http://` only on localhost unless explicitly insecure.
#[test]
fn origins_must_be_serialized_web_origins() {
    let rp = |origins: &str, extra: &str| format!("[[relying_parties]]\nid = \"a.example\"\norigins = [{origins}]\n{extra}");
    for bad in [
        "\"https://a.example/\"",
        "\"https://A.example\"",
        "\"https://a.example:443\"",
        "\"https://u@a.example\"",
        "\"ftp://a.example\"",
        "\"http://a.example\"",
    ] {
        let (_d, p) = write(&rp(bad, ""));
        let e = Config::load_compiled(&p).unwrap_err().to_string();
        assert!(e.contains("relying_parties[0].origins"), "{bad}: {e}");
    }
    for good in ["\"https://a.example\"", "\"https://a.example:8443\"", "\"http://localhost:3000\"", "\"android:apk-key-hash:abc\""] {
        let (_d, p) = write(&rp(good, ""));
        assert!(Config::load_compiled(&p).is_ok(), "{good}");
    }
    let (_d, p) = write(&rp("\"http://a.example\"", "insecure_allow_http_origins = true\n"));
    assert!(Config::load_compiled(&p).is_ok());
}

#[test]
fn postgres_beyond_loopback_must_be_checked() {
    let store = |extra: &str| format!("[store]\nbackend = \"postgres\"\nurl = \"postgres://u@db.internal:5432/assertd\"\n{extra}");
    // The default (verify-full, system roots) is accepted.
    let (_d, p) = write(&store(""));
    Config::load_compiled(&p).unwrap();
    for unchecked in ["sslmode = \"disable\"", "sslmode = \"prefer\"", "sslmode = \"require\""] {
        let (_d, p) = write(&store(unchecked));
        let e = Config::load_compiled(&p).unwrap_err().to_string();
        assert!(e.contains("insecure_allow_unverified_postgres") && e.contains("not on loopback"), "{unchecked}: {e}");
        let (_d, p) = write(&store(&format!("{unchecked}\ninsecure_allow_unverified_postgres = true")));
        Config::load_compiled(&p).unwrap();
    }
    let (_d, p) = write(&store("sslmode = \"verify-everything\""));
    let e = Config::load_compiled(&p).unwrap_err().to_string();
    assert!(e.contains("store.sslmode") && e.contains("verify-full"), "{e}");
    let (_d, p) = write(&store("ssl_cert = \"/c.pem\""));
    assert!(Config::load_compiled(&p).unwrap_err().to_string().contains("ssl_key"));
}

#[test]
fn the_request_bytes_budget_holds_the_largest_message() {
    let (_d, p) = write("[limits]\nmax_message_bytes = 2000000\nmax_request_bytes_in_flight = 1000000\n");
    let e = Config::load_compiled(&p).unwrap_err().to_string();
    assert!(e.contains("limits.max_request_bytes_in_flight") && e.contains("max_message_bytes"), "{e}");
    let (_d, p) = write("[limits]\nmax_message_bytes = 1000000\nmax_request_bytes_in_flight = 1000000\n");
    assert!(Config::load_compiled(&p).is_ok());
}
