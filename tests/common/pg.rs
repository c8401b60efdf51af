//! Throwaway PostgreSQL clusters for tests and benchmarks.
//!
//! [`PgCluster::start`] runs `initdb` and `pg_ctl start` in a temporary
//! directory on a free loopback port (binaries from `PATH`, else the newest
//! `/usr/lib/postgresql/*/bin`). As root (CI), both run as the `postgres` user
//! through `runuser`, since `initdb` refuses root. The cluster is stopped
//! (`pg_ctl stop -m immediate`) and its directory removed on drop; a watchdog
//! process does the same if the test process dies first, and for the cluster
//! shared by a test binary ([`shared`]), which is never dropped.
//!
//! [`shared`] honours `DATABASE_URL` (a `postgres://` URL of a role that may
//! create databases) instead of starting a cluster; tests then work in
//! databases of their own made by [`Server::create_database`]. Tests that
//! restart the server or need TLS always start a private cluster.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use tokio_postgres::NoTls;

/// Where a test can create databases.
#[derive(Clone, Debug)]
pub struct Server {
    /// URL of the maintenance database, without `sslmode`.
    base: url::Url,
    /// Extra query parameters added to every URL (`sslmode=disable` for a throwaway cluster).
    params: String,
}

impl Server {
    /// A `postgres://` URL of database `db` on this server.
    pub fn url(&self, db: &str) -> String {
        let mut url = self.base.clone();
        url.set_path(&format!("/{db}"));
        if !self.params.is_empty() {
            let query = match url.query() {
                Some(q) if !q.is_empty() => format!("{q}&{}", self.params),
                _ => self.params.clone(),
            };
            url.set_query(Some(&query));
        }
        url.to_string()
    }

    /// An ordinary read-write client (for test setup), on database `db`.
    pub async fn admin(&self, db: &str) -> tokio_postgres::Client {
        let url = self.url(db);
        let (client, connection) = tokio_postgres::connect(&url, NoTls)
            .await
            .unwrap_or_else(|e| panic!("connecting to database {db}: {e}"));
        tokio::spawn(connection);
        client
    }

    /// Creates (or recreates) a database named `name` and returns its URL.
    pub async fn create_database(&self, name: &str, options: &str) -> String {
        let admin = self.admin(self.base.path().trim_start_matches('/')).await;
        admin
            .batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
            .await
            .expect("drop database");
        admin
            .batch_execute(&format!("CREATE DATABASE \"{name}\" {options}"))
            .await
            .expect("create database");
        self.url(name)
    }
}

/// The server shared by the tests of one binary: `DATABASE_URL` when set,
/// else a throwaway cluster started on first use.
pub fn shared() -> &'static Server {
    static SHARED: OnceLock<Server> = OnceLock::new();
    SHARED.get_or_init(|| match std::env::var("DATABASE_URL") {
        Ok(url) if !url.trim().is_empty() => Server {
            base: url::Url::parse(&url).expect("DATABASE_URL is a postgres:// URL"),
            params: String::new(),
        },
        _ => {
            let cluster = PgCluster::start(ClusterOptions::default());
            let server = cluster.server();
            // Torn down by its watchdog when the test process exits.
            std::mem::forget(cluster);
            server
        }
    })
}

/// How to start a cluster.
#[derive(Clone, Debug, Default)]
pub struct ClusterOptions {
    /// Serve TLS with a certificate for `localhost` signed by a fresh CA.
    pub tls: bool,
}

/// A PostgreSQL cluster in a temporary directory.
pub struct PgCluster {
    dir: PathBuf,
    bin: PathBuf,
    port: u16,
    as_postgres: bool,
    tls: bool,
    watchdog: Option<std::process::Child>,
}

/// The directory holding `initdb` and `pg_ctl`.
pub fn bin_dir() -> PathBuf {
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            let initdb = dir.join("initdb");
            if initdb.is_file() {
                // Follow a symlink to the real bin dir (pg_ctl sits beside initdb there).
                let real = std::fs::canonicalize(&initdb).unwrap_or(initdb);
                if let Some(parent) = real.parent() {
                    if parent.join("pg_ctl").is_file() {
                        return parent.to_path_buf();
                    }
                }
                if dir.join("pg_ctl").is_file() {
                    return dir;
                }
            }
        }
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v: u32 = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").is_file().then_some((v, bin))
        })
        .collect();
    versions.sort();
    versions
        .pop()
        .map(|(_, bin)| bin)
        .expect("PostgreSQL not found: no initdb on PATH or under /usr/lib/postgresql/*/bin (./dev.sh test installs it)")
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

impl PgCluster {
    /// Runs `initdb` and starts the server; panics with the server log on failure.
    pub fn start(options: ClusterOptions) -> PgCluster {
        let dir = tempfile::Builder::new()
            .prefix("govflow-pg-")
            .tempdir()
            .expect("tempdir")
            .keep();
        let as_postgres = is_root();
        let mut cluster = PgCluster {
            dir,
            bin: bin_dir(),
            port: free_port(),
            as_postgres,
            tls: options.tls,
            watchdog: None,
        };
        if as_postgres {
            run(Command::new("chown")
                .arg("postgres:postgres")
                .arg(&cluster.dir));
        }
        cluster.spawn_watchdog();
        let data = cluster.data_dir();
        run(cluster
            .command("initdb")
            .args([
                "-N",
                "-A",
                "trust",
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--locale=C",
                "-D",
            ])
            .arg(&data));
        // fsync off is safe against a server crash (the OS keeps the writes);
        // synchronous_commit stays on so `stop -m immediate` loses no commit.
        let mut conf = String::from("fsync = off\nfull_page_writes = off\nmax_connections = 100\n");
        if options.tls {
            cluster.make_certificates();
            conf.push_str(&format!(
                "ssl = on\nssl_cert_file = '{}'\nssl_key_file = '{}'\n",
                cluster.dir.join("server.crt").display(),
                cluster.dir.join("server.key").display()
            ));
        }
        let conf_path = data.join("postgresql.conf");
        let mut text = std::fs::read_to_string(&conf_path).expect("postgresql.conf");
        text.push_str(&conf);
        std::fs::write(&conf_path, text).expect("write postgresql.conf");
        cluster.start_server();
        cluster
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// The directory holding the CA certificate (`ca.crt`) when TLS is on.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The port the server listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server, with URLs that do not use TLS.
    pub fn server(&self) -> Server {
        Server {
            base: url::Url::parse(&format!(
                "postgres://postgres@127.0.0.1:{}/postgres",
                self.port
            ))
            .expect("url"),
            params: "sslmode=disable".into(),
        }
    }

    fn command(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(path);
            c
        } else {
            Command::new(path)
        }
    }

    /// `pg_ctl start -w`.
    pub fn start_server(&self) {
        let log = self.dir.join("server.log");
        let status = self
            .command("pg_ctl")
            .arg("-D")
            .arg(self.data_dir())
            .arg("-l")
            .arg(&log)
            .arg("-o")
            .arg(format!(
                "-p {} -k {} -c listen_addresses=127.0.0.1",
                self.port,
                self.dir.display()
            ))
            .args(["-w", "-t", "60", "start"])
            .stdout(Stdio::null())
            .status()
            .expect("pg_ctl runs");
        if !status.success() {
            let log = std::fs::read_to_string(&log).unwrap_or_default();
            panic!("pg_ctl start failed ({status}):\n{log}");
        }
    }

    /// `pg_ctl stop -m immediate`: like a crash, no shutdown checkpoint.
    pub fn stop_immediate(&self) {
        let _ = self
            .command("pg_ctl")
            .arg("-D")
            .arg(self.data_dir())
            .args(["-m", "immediate", "-w", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }

    /// A process that tears the cluster down once this test process is gone.
    fn spawn_watchdog(&mut self) {
        let pid = std::process::id();
        let stop = format!(
            "{} '{}' -D '{}' -m immediate -w stop",
            if self.as_postgres {
                "runuser -u postgres --"
            } else {
                ""
            },
            self.bin.join("pg_ctl").display(),
            self.data_dir().display()
        );
        let script = format!(
            "while kill -0 {pid} 2>/dev/null; do sleep 1; done; {stop} >/dev/null 2>&1; rm -rf '{}'",
            self.dir.display()
        );
        let child = Command::new("sh")
            .args(["-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("watchdog");
        self.watchdog = Some(child);
    }

    fn make_certificates(&self) {
        let d = &self.dir;
        let openssl = |args: &[&str]| {
            let out = Command::new("openssl")
                .args(args)
                .current_dir(d)
                .output()
                .expect("openssl runs");
            assert!(
                out.status.success(),
                "openssl {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ];
        let mut ca = vec!["req", "-x509", "-days", "2", "-subj", "/CN=govflow test CA"];
        ca.extend(ec);
        ca.extend(["-keyout", "ca.key", "-out", "ca.crt"]);
        openssl(&ca);
        let mut csr = vec!["req", "-new", "-subj", "/CN=localhost"];
        csr.extend(ec);
        csr.extend(["-keyout", "server.key", "-out", "server.csr"]);
        openssl(&csr);
        std::fs::write(
            d.join("server.ext"),
            "subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n",
        )
        .expect("ext file");
        openssl(&[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "server.ext",
            "-out",
            "server.crt",
        ]);
        if self.as_postgres {
            run(Command::new("chown")
                .arg("postgres:postgres")
                .arg(d.join("server.key"))
                .arg(d.join("server.crt")));
        }
        run(Command::new("chmod").arg("600").arg(d.join("server.key")));
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        self.stop_immediate();
        let _ = std::fs::remove_dir_all(&self.dir);
        if let Some(mut w) = self.watchdog.take() {
            let _ = w.kill();
            let _ = w.wait();
        }
    }
}

fn run(command: &mut Command) {
    let out = command
        .output()
        .unwrap_or_else(|e| panic!("{command:?}: {e}"));
    assert!(
        out.status.success(),
        "{command:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Waits until `f` returns true or `timeout` passes.
pub async fn eventually(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + timeout;
    while tokio::time::Instant::now() < deadline {
        if f() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    f()
}
