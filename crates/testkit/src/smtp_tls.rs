//! A real SMTP server that speaks only TLS and takes mail only after AUTH (aiosmtpd,
//! `tests/smtp/tls_server.py`), with a certificate authority and a server certificate
//! made for the test by `openssl`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How the server speaks TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsMode {
    /// Plain at first, STARTTLS required before anything else (port 587's way).
    StartTls,
    /// TLS from the first byte (port 465's way).
    Implicit,
}

/// The server; stopped when dropped.
pub struct TlsSmtpServer {
    child: Child,
    pub port: u16,
    pub mode: TlsMode,
    /// The PEM of the authority that signed the server's certificate.
    pub ca_file: PathBuf,
    pub user: &'static str,
    pub password: &'static str,
    maildir: PathBuf,
    _dir: tempfile::TempDir,
}

impl TlsSmtpServer {
    /// Starts one on a free port, with a fresh authority and certificate for
    /// 127.0.0.1. The Python is `$UNAVOCE_PYTHON`, else `python3`.
    pub fn start(mode: TlsMode) -> TlsSmtpServer {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let (ca_file, cert, key) = certificates(dir.path());
        let maildir = dir.path().join("mail");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        let python = std::env::var("UNAVOCE_PYTHON").unwrap_or_else(|_| "python3".into());
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/smtp/tls_server.py");
        let (user, password) = ("mailer", "a-mailer-password-0123");
        let mut child = Command::new(&python)
            .arg(&script)
            .arg(match mode {
                TlsMode::StartTls => "starttls",
                TlsMode::Implicit => "implicit",
            })
            .arg(port.to_string())
            .args([&maildir, &cert, &key])
            .args([user, password])
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {python} for the SMTP server: {e}"));
        let deadline = Instant::now() + Duration::from_secs(15);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = child.try_wait() {
                panic!("the TLS SMTP server stopped ({status}): is aiosmtpd installed?");
            }
            assert!(
                Instant::now() < deadline,
                "the TLS SMTP server did not start: install aiosmtpd (scripts/test does, in .venv)"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        TlsSmtpServer {
            child,
            port,
            mode,
            ca_file,
            user,
            password,
            maildir,
            _dir: dir,
        }
    }

    /// `smtps://127.0.0.1:PORT` or `smtp://127.0.0.1:PORT?tls=required`.
    pub fn url(&self) -> String {
        match self.mode {
            TlsMode::StartTls => format!("smtp://127.0.0.1:{}?tls=required", self.port),
            TlsMode::Implicit => format!("smtps://127.0.0.1:{}", self.port),
        }
    }

    /// The raw messages received so far.
    pub fn mails(&self) -> Vec<String> {
        crate::read_maildir(&self.maildir)
    }
}

impl Drop for TlsSmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A certificate authority, and a certificate for 127.0.0.1 it signed, in `dir`:
/// the authority's PEM, the server's certificate and its key.
fn certificates(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let path = |name: &str| dir.join(name);
    let openssl = |args: &[&str]| {
        let output = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("openssl, to make the test's certificates");
        assert!(
            output.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    };
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=Unavoce test authority",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
    ]);
    openssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=127.0.0.1",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
    ]);
    std::fs::write(
        path("server.ext"),
        "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\n\
         extendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n",
    )
    .expect("the certificate's extensions");
    openssl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "server.ext",
        "-out",
        "server.pem",
    ]);
    (path("ca.pem"), path("server.pem"), path("server.key"))
}
