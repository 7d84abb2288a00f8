//! A private PostgreSQL server for fault tests: its own data directory and a free port, run as
//! the `postgres` OS user (postgres refuses to run as root), stopped and deleted on drop.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Command, Stdio};

const BIN: &str = "/usr/lib/postgresql/15/bin";

pub struct PgServer {
    pub port: u16,
    dir: PathBuf,
}

fn as_postgres(program: &str, args: &[&str]) -> bool {
    let status = Command::new("runuser")
        .args(["-u", "postgres", "--", &format!("{BIN}/{program}")])
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    status.success()
}

impl PgServer {
    /// Initialises a cluster (trust auth, fsync off: a test server) and starts it.
    pub fn start() -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let dir =
            std::env::temp_dir().join(format!("smsgate-pg-{}", uuid::Uuid::now_v7().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let owned = Command::new("chown")
            .args(["postgres:postgres", dir.to_str().unwrap()])
            .status()
            .unwrap();
        assert!(owned.success(), "chown of the test postgres directory");
        let server = Self { port, dir };
        assert!(
            as_postgres(
                "initdb",
                &[
                    "-D",
                    server.data(),
                    "-A",
                    "trust",
                    "-U",
                    "postgres",
                    "--no-sync"
                ]
            ),
            "initdb"
        );
        server.resume();
        server
    }

    fn data(&self) -> &str {
        self.dir.to_str().unwrap()
    }

    /// Postgres server URL (the `postgres` database) of this server.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Starts (again) on the same port and data.
    pub fn resume(&self) {
        let options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -c unix_socket_directories={} -c fsync=off",
            self.port,
            self.data()
        );
        let log = format!("{}/server.log", self.data());
        assert!(
            as_postgres(
                "pg_ctl",
                &["-D", self.data(), "-o", &options, "-l", &log, "-w", "start"]
            ),
            "pg_ctl start"
        );
    }

    /// Stops immediately, as a crash or an outage would.
    pub fn stop(&self) {
        as_postgres(
            "pg_ctl",
            &["-D", self.data(), "-m", "immediate", "-w", "stop"],
        );
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
