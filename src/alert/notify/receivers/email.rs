//! E-mail over SMTP, spoken on a plain `TcpStream`: EHLO, STARTTLS (with
//! rustls and the Mozilla roots, or the CAs of `ca_file`) when the server
//! offers it, which
//! `require_tls` (the default) insists on, AUTH PLAIN or LOGIN when a user
//! is configured, then MAIL, RCPT for every address of `to`, and DATA with
//! dot-stuffing. Port 465 speaks TLS from the start. The subject is
//! Alertmanager's (`email.default.subject`); the message is multipart: a
//! plain-text part listing the alerts and an HTML one (`email.sonde.text`
//! and `email.sonde.html` in the default templates).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::Arc;

use base64::Engine;

use super::{Failure, ATTEMPT_TIMEOUT};
use crate::alert::notify::config::{secret, EmailConfig};
use crate::alert::notify::notification::{Notification, Template};

pub struct Email {
    to: Vec<String>,
    from: String,
    host: String,
    port: u16,
    credentials: Option<(String, String)>,
    require_tls: bool,
    tls: Arc<rustls::ClientConfig>,
    hello: String,
    subject: Template,
    text: Template,
    html: Template,
    pub send_resolved: bool,
}

impl Email {
    pub fn build(config: &EmailConfig) -> anyhow::Result<Email> {
        let to: Vec<String> = config
            .to
            .split(',')
            .map(|a| a.trim().to_string())
            .filter(|a| !a.is_empty())
            .collect();
        if to.is_empty() || to.iter().any(|a| !is_address(a)) {
            anyhow::bail!("key to: expected one or more e-mail addresses, comma-separated");
        }
        if !is_address(&config.from) {
            anyhow::bail!("key from: expected the sender's e-mail address");
        }
        let (host, port) = config
            .smarthost
            .rsplit_once(':')
            .and_then(|(host, port)| Some((host.trim_matches(['[', ']']), port.parse().ok()?)))
            .filter(|(host, _)| !host.is_empty())
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "key smarthost: expected host:port, got {:?}",
                    config.smarthost
                )
            })?;
        let credentials = match &config.auth_username {
            Some(user) => Some((
                user.clone(),
                secret(
                    "auth_password",
                    &config.auth_password,
                    &config.auth_password_file,
                )?,
            )),
            None => None,
        };
        if config.hello.is_empty() || config.hello.contains(char::is_whitespace) {
            anyhow::bail!("key hello: expected a host name");
        }
        let tls = tls_config(config.ca_file.as_deref())?;
        Ok(Email {
            to,
            from: config.from.clone(),
            host: host.to_string(),
            port,
            credentials,
            require_tls: config.require_tls,
            tls,
            hello: config.hello.clone(),
            subject: Template::default("email.default.subject"),
            text: Template::default("email.sonde.text"),
            html: Template::default("email.sonde.html"),
            send_resolved: config.send_resolved,
        })
    }

    pub fn notify(&self, notification: &Notification) -> Result<(), Failure> {
        let message = self
            .message(notification, crate::collect::now_ms())
            .map_err(|err| Failure::Refused(format!("cannot expand the template: {err}")))?;
        self.send(&message).map_err(|err| match err {
            SmtpError::Io(err) => {
                Failure::Retry(format!("SMTP {}:{}: {err}", self.host, self.port))
            }
            SmtpError::Reply(code, text) if code >= 500 => {
                Failure::Refused(format!("SMTP server answered {code} {text}"))
            }
            SmtpError::Reply(code, text) => {
                Failure::Retry(format!("SMTP server answered {code} {text}"))
            }
            SmtpError::Refused(reason) => Failure::Refused(reason),
        })
    }

    fn send(&self, message: &str) -> Result<(), SmtpError> {
        let address = (self.host.as_str(), self.port)
            .to_socket_addrs()?
            .next()
            .ok_or_else(|| SmtpError::Refused(format!("{} resolves to no address", self.host)))?;
        let tcp = TcpStream::connect_timeout(&address, ATTEMPT_TIMEOUT)?;
        tcp.set_read_timeout(Some(ATTEMPT_TIMEOUT))?;
        tcp.set_write_timeout(Some(ATTEMPT_TIMEOUT))?;
        self.converse(tcp, message)
    }

    /// The conversation over a connected `stream`: TLS from the start on
    /// port 465, STARTTLS when the server offers it, plain otherwise
    /// unless `require_tls`.
    fn converse<S: Stream + 'static>(&self, stream: S, message: &str) -> Result<(), SmtpError> {
        if self.port == 465 {
            let mut session = Session::new(self.tls(stream)?);
            session.expect(220)?;
            session.ehlo(&self.hello)?;
            return self.transaction(&mut session, message, true);
        }
        let mut session = Session::new(stream);
        session.expect(220)?;
        let extensions = session.ehlo(&self.hello)?;
        if has_extension(&extensions, "STARTTLS") {
            session.command("STARTTLS", 220)?;
            let mut session = Session::new(self.tls(session.into_inner())?);
            session.ehlo(&self.hello)?;
            return self.transaction(&mut session, message, true);
        }
        if self.require_tls {
            let _ = session.command("QUIT", 221);
            return Err(SmtpError::Refused(format!(
                "{}:{} does not offer STARTTLS and require_tls is true",
                self.host, self.port
            )));
        }
        self.transaction(&mut session, message, false)
    }

    fn tls<S: Stream + 'static>(&self, stream: S) -> Result<Box<dyn Stream>, SmtpError> {
        let name = rustls::pki_types::ServerName::try_from(self.host.clone())
            .map_err(|err| SmtpError::Refused(format!("TLS: {:?}: {err}", self.host)))?;
        let connection = rustls::ClientConnection::new(self.tls.clone(), name)
            .map_err(|err| SmtpError::Refused(format!("TLS: {err}")))?;
        Ok(Box::new(rustls::StreamOwned::new(connection, stream)))
    }

    /// AUTH when configured, then the message, then QUIT.
    fn transaction<S: Read + Write>(
        &self,
        session: &mut Session<S>,
        message: &str,
        encrypted: bool,
    ) -> Result<(), SmtpError> {
        if let Some((user, password)) = &self.credentials {
            // As Go's net/smtp: no password in clear text but to loopback.
            if !encrypted && !is_loopback(&self.host) {
                return Err(SmtpError::Refused(format!(
                    "not sending the password to {} without TLS",
                    self.host
                )));
            }
            session.authenticate(user, password)?;
        }
        session.command(&format!("MAIL FROM:<{}>", self.from), 250)?;
        for to in &self.to {
            session.command(&format!("RCPT TO:<{to}>"), 250)?;
        }
        session.command("DATA", 354)?;
        session.write_raw(&dot_stuffed(message))?;
        session.expect(250)?;
        session.command("QUIT", 221)?;
        Ok(())
    }

    /// The whole message, headers and multipart body, CRLF line ends.
    fn message(&self, notification: &Notification, now_ms: i64) -> Result<String, String> {
        let boundary = format!("sonde-{:016x}", now_ms as u64 ^ 0x5bd1_e995);
        let data = notification.template_data();
        let text = self.text.render(&data, false)?;
        let html = self.html.render(&data, true)?;
        let mut out = String::new();
        let headers = [
            ("From", self.from.clone()),
            ("To", self.to.join(", ")),
            (
                "Subject",
                encode_header(&self.subject.render(&data, false)?),
            ),
            ("Date", rfc2822(now_ms)),
            ("Message-Id", format!("<{boundary}@{}>", self.hello)),
            ("MIME-Version", "1.0".into()),
            (
                "Content-Type",
                format!("multipart/alternative; boundary=\"{boundary}\""),
            ),
        ];
        for (name, value) in headers {
            out.push_str(&format!("{name}: {value}\r\n"));
        }
        out.push_str("\r\n");
        for (kind, body) in [("text/plain", text), ("text/html", html)] {
            out.push_str(&format!("--{boundary}\r\n"));
            out.push_str(&format!("Content-Type: {kind}; charset=UTF-8\r\n"));
            out.push_str(&encode_body(&body));
        }
        out.push_str(&format!("--{boundary}--\r\n"));
        Ok(out)
    }
}

/// The TLS client: the Mozilla roots, or only the CAs of `ca_file`.
fn tls_config(ca_file: Option<&std::path::Path>) -> anyhow::Result<Arc<rustls::ClientConfig>> {
    use rustls::pki_types::{pem::PemObject, CertificateDer};
    let mut roots = rustls::RootCertStore::empty();
    match ca_file {
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        Some(path) => {
            let certificates = CertificateDer::pem_file_iter(path)
                .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
                .map_err(|err| {
                    anyhow::anyhow!("key ca_file: cannot read {}: {err}", path.display())
                })?;
            let (added, _) = roots.add_parsable_certificates(certificates);
            if added == 0 {
                anyhow::bail!(
                    "key ca_file: {} holds no PEM certificate sonde can use",
                    path.display()
                );
            }
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

#[derive(Debug)]
enum SmtpError {
    Io(std::io::Error),
    /// The server's unexpected reply: its code and text.
    Reply(u16, String),
    Refused(String),
}

impl From<std::io::Error> for SmtpError {
    fn from(err: std::io::Error) -> SmtpError {
        SmtpError::Io(err)
    }
}

trait Stream: Read + Write + Send {}
impl<T: Read + Write + Send> Stream for T {}

/// One SMTP conversation over a stream.
struct Session<S: Read + Write> {
    stream: BufReader<S>,
    extensions: Vec<String>,
}

impl<S: Read + Write> Session<S> {
    fn new(stream: S) -> Session<S> {
        Session {
            stream: BufReader::new(stream),
            extensions: Vec::new(),
        }
    }

    fn into_inner(self) -> S {
        self.stream.into_inner()
    }

    fn write_raw(&mut self, text: &str) -> Result<(), SmtpError> {
        let stream = self.stream.get_mut();
        stream.write_all(text.as_bytes())?;
        stream.flush()?;
        Ok(())
    }

    /// Reads a whole (possibly multi-line) reply: its code and lines.
    fn reply(&mut self) -> Result<(u16, Vec<String>), SmtpError> {
        let mut lines = Vec::new();
        loop {
            let mut line = String::new();
            // A reply line is short; one beyond 4 KiB is not SMTP.
            let read = (&mut self.stream).take(4096).read_line(&mut line)?;
            if read == 0 {
                return Err(SmtpError::Io(std::io::ErrorKind::UnexpectedEof.into()));
            }
            let line = line.trim_end();
            let code = line
                .get(..3)
                .and_then(|c| c.parse::<u16>().ok())
                .ok_or_else(|| SmtpError::Reply(0, format!("not an SMTP reply: {line:?}")))?;
            lines.push(line.get(4..).unwrap_or("").to_string());
            if line.as_bytes().get(3) != Some(&b'-') {
                return Ok((code, lines));
            }
        }
    }

    fn expect(&mut self, wanted: u16) -> Result<Vec<String>, SmtpError> {
        let (code, lines) = self.reply()?;
        if code != wanted {
            return Err(SmtpError::Reply(code, lines.join(" ")));
        }
        Ok(lines)
    }

    fn command(&mut self, command: &str, wanted: u16) -> Result<Vec<String>, SmtpError> {
        self.write_raw(&format!("{command}\r\n"))?;
        self.expect(wanted)
    }

    /// EHLO; returns the extensions the server offers.
    fn ehlo(&mut self, hello: &str) -> Result<Vec<String>, SmtpError> {
        let lines = self.command(&format!("EHLO {hello}"), 250)?;
        self.extensions = lines.into_iter().skip(1).collect();
        Ok(self.extensions.clone())
    }

    fn authenticate(&mut self, user: &str, password: &str) -> Result<(), SmtpError> {
        let b64 = |text: &str| base64::engine::general_purpose::STANDARD.encode(text);
        let mechanisms: Vec<String> = self
            .extensions
            .iter()
            .filter_map(|e| e.strip_prefix("AUTH ").or_else(|| e.strip_prefix("AUTH=")))
            .flat_map(|m| m.split_whitespace().map(str::to_ascii_uppercase))
            .collect();
        if mechanisms.iter().any(|m| m == "PLAIN") {
            self.command(
                &format!("AUTH PLAIN {}", b64(&format!("\0{user}\0{password}"))),
                235,
            )?;
        } else if mechanisms.iter().any(|m| m == "LOGIN") {
            self.command("AUTH LOGIN", 334)?;
            self.command(&b64(user), 334)?;
            self.command(&b64(password), 235)?;
        } else {
            return Err(SmtpError::Refused(format!(
                "the server offers no AUTH PLAIN or LOGIN (offers {mechanisms:?})"
            )));
        }
        Ok(())
    }
}

fn has_extension(extensions: &[String], name: &str) -> bool {
    extensions.iter().any(|e| {
        e.split_whitespace()
            .next()
            .is_some_and(|k| k.eq_ignore_ascii_case(name))
    })
}

fn is_address(text: &str) -> bool {
    let text = text.trim();
    text.split_once('@')
        .is_some_and(|(local, domain)| !local.is_empty() && !domain.is_empty())
        && !text.contains(['<', '>', '\r', '\n', ' ', ','])
}

fn is_loopback(host: &str) -> bool {
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// The message as DATA sends it: every line starting with a dot gets
/// another, and the terminating `.` line follows.
fn dot_stuffed(message: &str) -> String {
    let mut out = String::with_capacity(message.len() + 8);
    for line in message.split_inclusive("\r\n") {
        if line.starts_with('.') {
            out.push('.');
        }
        out.push_str(line);
    }
    if !out.ends_with("\r\n") {
        out.push_str("\r\n");
    }
    out.push_str(".\r\n");
    out
}

/// A MIME part's encoding header and body: 7bit for short ASCII lines,
/// base64 otherwise.
fn encode_body(body: &str) -> String {
    let crlf = body.replace("\r\n", "\n").replace('\n', "\r\n");
    if body.is_ascii() && crlf.split("\r\n").all(|line| line.len() <= 998) {
        return format!("Content-Transfer-Encoding: 7bit\r\n\r\n{crlf}\r\n");
    }
    let encoded = base64::engine::general_purpose::STANDARD.encode(body.as_bytes());
    let lines: Vec<&str> = encoded
        .as_bytes()
        .chunks(76)
        .map(|c| std::str::from_utf8(c).expect("base64 is ASCII"))
        .collect();
    format!(
        "Content-Transfer-Encoding: base64\r\n\r\n{}\r\n",
        lines.join("\r\n")
    )
}

/// A header value, RFC 2047-encoded when not plain ASCII.
fn encode_header(value: &str) -> String {
    if value.is_ascii() && !value.contains(['\r', '\n']) {
        return value.to_string();
    }
    let clean: String = value
        .chars()
        .filter(|c| !matches!(c, '\r' | '\n'))
        .collect();
    format!(
        "=?UTF-8?B?{}?=",
        base64::engine::general_purpose::STANDARD.encode(clean.as_bytes())
    )
}

/// An RFC 2822 date in UTC: `Tue, 14 Nov 2023 22:13:20 +0000`.
fn rfc2822(now_ms: i64) -> String {
    let iso = crate::alert::notify::notification::rfc3339(Some(now_ms - now_ms.rem_euclid(1000)));
    let days = now_ms.div_euclid(86_400_000);
    let weekday = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"][days.rem_euclid(7) as usize];
    let month: usize = iso[5..7].parse().unwrap_or(1);
    let months = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    format!(
        "{weekday}, {} {} {} {} +0000",
        iso[8..10].trim_start_matches('0'),
        months[month - 1],
        &iso[0..4],
        &iso[11..19]
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::notify::notification::tests::sample_notification;

    /// A server that answers from a script and records what it is told.
    struct Scripted {
        replies: std::io::Cursor<Vec<u8>>,
        written: Arc<std::sync::Mutex<Vec<u8>>>,
    }

    impl Scripted {
        /// The stream, and what the client will have written to it.
        fn new(replies: &str) -> (Scripted, Arc<std::sync::Mutex<Vec<u8>>>) {
            let written = Arc::new(std::sync::Mutex::new(Vec::new()));
            let stream = Scripted {
                replies: std::io::Cursor::new(replies.as_bytes().to_vec()),
                written: written.clone(),
            };
            (stream, written)
        }
    }

    impl Read for Scripted {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            self.replies.read(buf)
        }
    }

    impl Write for Scripted {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.written.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn email(auth: bool, require_tls: bool) -> Email {
        Email::build(&EmailConfig {
            to: "a@example.com, b@example.com".into(),
            from: "sonde@example.com".into(),
            smarthost: "127.0.0.1:2525".into(),
            auth_username: auth.then(|| "user".into()),
            auth_password: auth.then(|| "secret".into()),
            require_tls,
            ..Default::default()
        })
        .unwrap()
    }

    fn text(written: &Arc<std::sync::Mutex<Vec<u8>>>) -> String {
        String::from_utf8_lossy(&written.lock().unwrap()).into_owned()
    }

    #[test]
    fn plain_session_sends_auth_envelope_and_stuffed_data() {
        let (stream, written) = Scripted::new(
            "220 sink ESMTP\r\n250-sink\r\n250-8BITMIME\r\n250 AUTH LOGIN\r\n\
             334 VXNlcm5hbWU6\r\n334 UGFzc3dvcmQ6\r\n235 ok\r\n250 ok\r\n250 ok\r\n250 ok\r\n\
             354 go\r\n250 queued\r\n221 bye\r\n",
        );
        email(true, false)
            .converse(stream, "Subject: x\r\n\r\n.hidden\r\nend\r\n")
            .unwrap();
        let written = text(&written);
        let commands: Vec<&str> = written.split("\r\n").collect();
        assert_eq!(
            commands[..8],
            [
                "EHLO localhost",
                "AUTH LOGIN",
                "dXNlcg==",
                "c2VjcmV0",
                "MAIL FROM:<sonde@example.com>",
                "RCPT TO:<a@example.com>",
                "RCPT TO:<b@example.com>",
                "DATA",
            ]
        );
        assert!(
            written.ends_with("\r\n..hidden\r\nend\r\n.\r\nQUIT\r\n"),
            "{written}"
        );
    }

    #[test]
    fn starttls_is_taken_when_offered() {
        // The script ends where the server's TLS handshake would begin.
        let (stream, written) =
            Scripted::new("220 sink ESMTP\r\n250-sink\r\n250 STARTTLS\r\n220 ready\r\n");
        let err = email(true, true).converse(stream, "x").unwrap_err();
        assert!(matches!(err, SmtpError::Io(_)), "{err:?}");
        let written = written.lock().unwrap().clone();
        let plain = b"EHLO localhost\r\nSTARTTLS\r\n";
        assert_eq!(&written[..plain.len()], plain);
        assert_eq!(written[plain.len()], 0x16, "a TLS handshake record follows");
        assert!(
            !String::from_utf8_lossy(&written).contains("AUTH"),
            "no credentials before TLS"
        );
    }

    #[test]
    fn require_tls_refuses_a_server_without_starttls() {
        let (stream, written) = Scripted::new("220 sink ESMTP\r\n250 sink\r\n221 bye\r\n");
        let err = email(false, true).converse(stream, "x").unwrap_err();
        assert!(matches!(err, SmtpError::Refused(_)), "{err:?}");
        assert_eq!(text(&written), "EHLO localhost\r\nQUIT\r\n");
    }

    #[test]
    fn no_password_in_clear_text_but_to_loopback() {
        let mut remote = email(true, false);
        remote.host = "mail.example.com".into();
        let (stream, written) = Scripted::new("220 sink\r\n250 AUTH PLAIN\r\n");
        let err = remote.converse(stream, "x").unwrap_err();
        assert!(matches!(err, SmtpError::Refused(_)), "{err:?}");
        assert_eq!(text(&written), "EHLO localhost\r\n");
    }

    #[test]
    fn auth_plain_is_preferred_and_failures_are_reported() {
        let (stream, written) =
            Scripted::new("220 sink\r\n250-sink\r\n250 AUTH PLAIN LOGIN\r\n535 no\r\n");
        let err = email(true, false).converse(stream, "x").unwrap_err();
        assert!(matches!(err, SmtpError::Reply(535, _)), "{err:?}");
        assert!(
            text(&written).ends_with("AUTH PLAIN AHVzZXIAc2VjcmV0\r\n"),
            "{}",
            text(&written)
        );
    }

    #[test]
    fn message_is_multipart_with_both_renderings() {
        let message = email(false, false)
            .message(&sample_notification(), 1_700_000_000_000)
            .unwrap();
        assert!(message.contains("Subject: [FIRING:1] HighLoad (critical)\r\n"));
        assert!(message.contains("Date: Tue, 14 Nov 2023 22:13:20 +0000\r\n"));
        assert!(message.contains("Content-Type: text/plain; charset=UTF-8"));
        assert!(message.contains("load &lt;high&gt; &amp; rising"));
        assert!(message.contains("load <high> & rising"));
        assert_eq!(dot_stuffed(".a\r\nb"), "..a\r\nb\r\n.\r\n");
        assert_eq!(encode_header("é"), "=?UTF-8?B?w6k=?=");
    }

    #[test]
    fn config_errors_name_the_key() {
        let err = |config: EmailConfig| format!("{:#}", Email::build(&config).err().unwrap());
        assert!(err(EmailConfig::default()).contains("key to"));
        let bad_host = EmailConfig {
            to: "a@b".into(),
            from: "c@d".into(),
            smarthost: "mail".into(),
            ..Default::default()
        };
        assert!(err(bad_host).contains("smarthost"));
        let no_ca = EmailConfig {
            to: "a@b".into(),
            from: "c@d".into(),
            smarthost: "mail:25".into(),
            ca_file: Some("/nonexistent/ca.pem".into()),
            ..Default::default()
        };
        assert!(err(no_ca).contains("key ca_file: cannot read /nonexistent/ca.pem"));
    }
}
