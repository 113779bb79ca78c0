//! Test support: a fresh store of either kind ([`store`]), a real SMTP server process (aiosmtpd, from PyPI) that writes what it
//! receives to a maildir, and reading it back.

pub mod counting;
pub mod smtp_tls;
pub mod store;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A real SMTP server (aiosmtpd) writing what it receives to a maildir; stopped when
/// dropped.
pub struct SmtpServer {
    child: Child,
    pub port: u16,
    maildir: PathBuf,
    _dir: tempfile::TempDir,
}

impl SmtpServer {
    /// Starts one on a free port. The Python is `$UNAVOCE_PYTHON` (the test suite's
    /// virtual environment, which `scripts/test` sets up), else `python3`.
    pub fn start() -> SmtpServer {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let maildir = dir.path().join("mail");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        let python = std::env::var("UNAVOCE_PYTHON").unwrap_or_else(|_| "python3".into());
        let child = Command::new(&python)
            .args(["-m", "aiosmtpd", "-n", "-l", &format!("127.0.0.1:{port}")])
            .args(["-c", "aiosmtpd.handlers.Mailbox"])
            .arg(&maildir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {python} for the SMTP server: {e}"));
        let deadline = Instant::now() + Duration::from_secs(15);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "the SMTP server did not start: install it with `pip install aiosmtpd` \
                 (scripts/test does, in .venv)"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        SmtpServer {
            child,
            port,
            maildir,
            _dir: dir,
        }
    }

    /// `smtp://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// The raw messages received so far.
    pub fn mails(&self) -> Vec<String> {
        read_maildir(&self.maildir)
    }

    /// Waits until at least `n` messages arrived (or `within` passed); the messages.
    pub fn wait_for(&self, n: usize, within: Duration) -> Vec<String> {
        let deadline = Instant::now() + within;
        loop {
            let mails = self.mails();
            if mails.len() >= n || Instant::now() > deadline {
                return mails;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The messages in a maildir.
pub fn read_maildir(maildir: &Path) -> Vec<String> {
    let mut mails = Vec::new();
    for sub in ["new", "cur"] {
        if let Ok(entries) = std::fs::read_dir(maildir.join(sub)) {
            for entry in entries.flatten() {
                if let Ok(text) = std::fs::read_to_string(entry.path()) {
                    mails.push(text);
                }
            }
        }
    }
    mails
}

/// A message's text with quoted-printable soft line breaks and `=3D` undone.
pub fn unfold(mail: &str) -> String {
    mail.replace("=\r\n", "")
        .replace("=\n", "")
        .replace("=3D", "=")
}

/// The value of the first header `name` (case-insensitive) in a raw message.
pub fn header(mail: &str, name: &str) -> Option<String> {
    let prefix = format!("{}:", name.to_ascii_lowercase());
    mail.lines()
        .take_while(|l| !l.is_empty())
        .find(|l| l.to_ascii_lowercase().starts_with(&prefix))
        .map(|l| l[prefix.len()..].trim().to_string())
}

/// A time zone where it is now daytime (10:00–18:00), so quiet hours do not hold a
/// test's messages back.
pub fn daytime_zone() -> &'static str {
    let zones = [
        "Europe/Rome",
        "America/New_York",
        "America/Los_Angeles",
        "America/Sao_Paulo",
        "Asia/Kolkata",
        "Asia/Tokyo",
        "Pacific/Auckland",
    ];
    let now = jiff::Timestamp::now();
    zones
        .into_iter()
        .find(|zone| {
            jiff::tz::TimeZone::get(zone)
                .is_ok_and(|tz| (10..18).contains(&now.to_zoned_datetime(tz).hour()))
        })
        .expect("one of the zones is in daytime")
}

/// A mail server that refuses every recipient with `refusal` (e.g. `550 5.1.1 <…>: user
/// unknown`), on a free port of 127.0.0.1; it serves until the test process ends.
pub fn refusing_smtp_server(refusal: &'static str) -> u16 {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    let port = listener.local_addr().expect("its address").port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let Ok(mut write) = stream.try_clone() else {
                    return;
                };
                let _ = write.write_all(b"220 mx.example ESMTP\r\n");
                for line in BufReader::new(stream).lines() {
                    let Ok(line) = line else { break };
                    let answer = match line.get(..4).map(str::to_ascii_uppercase).as_deref() {
                        Some("EHLO") => "250 mx.example".to_string(),
                        Some("RCPT") => refusal.to_string(),
                        Some("QUIT") => "221 bye".to_string(),
                        _ => "250 ok".to_string(),
                    };
                    if write.write_all(format!("{answer}\r\n").as_bytes()).is_err() {
                        break;
                    }
                }
            });
        }
    });
    port
}

/// An HTTP server on a free port of 127.0.0.1 that answers every request with `status`
/// and the JSON `body`; its base URL. It serves until the test process ends.
pub fn http_server_answering(status: u16, body: String) -> String {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    let address = listener.local_addr().expect("its address");
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let body = body.clone();
            std::thread::spawn(move || {
                let Ok(mut write) = stream.try_clone() else {
                    return;
                };
                let mut reader = BufReader::new(stream);
                let mut length = 0;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    let line = line.trim_end();
                    if line.is_empty() {
                        break;
                    }
                    if let Some((name, value)) = line.split_once(':')
                        && name.eq_ignore_ascii_case("content-length")
                    {
                        length = value.trim().parse().unwrap_or(0);
                    }
                }
                let mut request_body = vec![0; length];
                let _ = reader.read_exact(&mut request_body);
                let _ = write.write_all(
                    format!(
                        "HTTP/1.1 {status} Answer\r\nContent-Type: application/json\r\n\
                         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    )
                    .as_bytes(),
                );
            });
        }
    });
    format!("http://{address}")
}
