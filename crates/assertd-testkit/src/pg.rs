//! A real PostgreSQL server for tests: a fresh cluster in a temp directory,
//! listening on a free loopback port, stopped when dropped.
//!
//! Uses Debian's `postgresql` binaries (`/usr/lib/postgresql/*/bin`, or
//! `ASSERTD_PG_BIN`). As root, the server runs as the `postgres` user
//! (initdb refuses root).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A running test cluster.
#[derive(Debug)]
pub struct PgCluster {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
    as_postgres: bool,
}

fn bin_dir() -> PathBuf {
    if let Ok(p) = std::env::var("ASSERTD_PG_BIN") {
        return PathBuf::from(p);
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|d| d.filter_map(|e| e.ok()).map(|e| e.path().join("bin")).filter(|p| p.join("initdb").exists()).collect())
        .unwrap_or_default();
    found.sort_by_key(|p| p.parent().and_then(|v| v.file_name()).and_then(|v| v.to_str()).and_then(|v| v.parse::<u32>().ok()).unwrap_or(0));
    found.pop().unwrap_or_else(|| {
        panic!("PostgreSQL server binaries not found: install Debian's `postgresql` package (.ci/run does) or set ASSERTD_PG_BIN")
    })
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0").unwrap_or(false)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port")
}

#[allow(clippy::expect_used, clippy::unwrap_used)]
impl PgCluster {
    /// initdb + start. Panics with the server's log if it cannot start.
    pub fn start() -> Self {
        let c = Self::init();
        c.start_server();
        c
    }

    /// A cluster that speaks TLS only: `ssl = on` with `server`'s
    /// certificate, and `pg_hba.conf` holding only `hostssl` lines (plus
    /// the Unix socket, for [`PgCluster::psql`]). With `client_ca`, TCP
    /// clients must also present a certificate from that CA whose common
    /// name is the user (`cert` authentication).
    pub fn start_tls(server: &crate::pki::Leaf, client_ca: Option<&str>) -> Self {
        let c = Self::init();
        c.set_server_certificate(server);
        let mut conf = "ssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n".to_owned();
        let method = match client_ca {
            Some(ca) => {
                c.write_private("root.crt", ca);
                conf.push_str("ssl_ca_file = 'root.crt'\n");
                "cert"
            }
            None => "trust",
        };
        let mut pg_conf = std::fs::OpenOptions::new().append(true).open(c.data().join("postgresql.conf")).unwrap();
        std::io::Write::write_all(&mut pg_conf, conf.as_bytes()).unwrap();
        let hba = format!("local all all trust\nhostssl all all 127.0.0.1/32 {method}\nhostssl all all ::1/128 {method}\n");
        c.write_private("pg_hba.conf", &hba);
        c.start_server();
        c
    }

    /// Replaces `pg_hba.conf` and reloads the running server.
    pub fn set_hba(&self, hba: &str) {
        self.write_private("pg_hba.conf", hba);
        self.psql("SELECT pg_reload_conf()");
    }

    /// Replaces the server's certificate and key; the running server picks
    /// them up on reload (new connections only).
    pub fn set_server_certificate(&self, server: &crate::pki::Leaf) {
        self.write_private("server.crt", &server.cert_pem);
        self.write_private("server.key", &server.key_pem);
    }

    /// Writes a file into the data directory, readable by the server only.
    fn write_private(&self, name: &str, contents: &str) {
        let path = self.data().join(name);
        std::fs::write(&path, contents).unwrap();
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
        if self.as_postgres {
            let ok = Command::new("chown").arg("postgres").arg(&path).status().unwrap();
            assert!(ok.success(), "chown {}", path.display());
        }
    }

    fn init() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let as_postgres = is_root();
        if as_postgres {
            // The server runs as `postgres`: let it into the directory.
            Command::new("chmod").arg("0777").arg(dir.path()).status().unwrap();
        }
        let c = Self { dir, bin: bin_dir(), port: free_port(), as_postgres };
        let out = c.run("initdb", &["-D", &c.data().to_string_lossy(), "-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync"]);
        assert!(out.status.success(), "initdb failed: {}", String::from_utf8_lossy(&out.stderr));
        c
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn run(&self, tool: &str, args: &[&str]) -> Output {
        let exe = self.bin.join(tool);
        let mut cmd = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(exe);
            c
        } else {
            Command::new(exe)
        };
        cmd.args(args).current_dir(self.dir.path()).output().expect("run a PostgreSQL tool")
    }

    /// Starts (or restarts) the server on the same port and data.
    pub fn start_server(&self) {
        let opts =
            format!("-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200", self.port, self.dir.path().display());
        let log = self.dir.path().join("server.log");
        let out = self
            .run("pg_ctl", &["-D", &self.data().to_string_lossy(), "-l", &log.to_string_lossy(), "-w", "-t", "30", "-o", &opts, "start"]);
        assert!(
            out.status.success(),
            "pg_ctl start failed: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(&log).unwrap_or_default()
        );
    }

    /// Stops the server at once (connections are cut, as in a crash).
    pub fn stop_server(&self) {
        let out = self.run("pg_ctl", &["-D", &self.data().to_string_lossy(), "-m", "immediate", "-w", "stop"]);
        assert!(out.status.success(), "pg_ctl stop failed: {}", String::from_utf8_lossy(&out.stderr));
    }

    /// The connection URL.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// The server's port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Runs SQL with psql over the Unix socket; panics on error. Returns
    /// stdout.
    pub fn psql(&self, sql: &str) -> String {
        let port = self.port.to_string();
        let socket = self.dir.path().to_string_lossy().into_owned();
        let out =
            self.run("psql", &["-h", &socket, "-p", &port, "-U", "postgres", "-d", "postgres", "-v", "ON_ERROR_STOP=1", "-At", "-c", sql]);
        assert!(out.status.success(), "psql failed: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The temp directory (logs are in it).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        let _ = self.run("pg_ctl", &["-D", &self.data().to_string_lossy(), "-m", "immediate", "-w", "stop"]);
    }
}
