//! Sending one email over SMTP (lettre): STARTTLS or implicit TLS with rustls (the system's
//! roots and an optional private CA), authentication, a bounded time. Used by `email`
//! channels and by the mail to the trust page's visitors.

use std::path::Path;

use lettre::message::Mailbox;
use lettre::message::header::{ContentType, HeaderName, HeaderValue};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};

use super::config::{SmtpConfig, SmtpTls, read_secret};

/// One plain-text email.
pub struct Mail<'a> {
    pub from: &'a str,
    pub to: &'a [String],
    pub subject: &'a str,
    pub body: String,
    /// The id (without angle brackets or domain): the same on every attempt, so a receiver
    /// can tell a retry from a new message. `<id@domain of from>`.
    pub id: &'a str,
    /// More headers (`List-Unsubscribe`…).
    pub headers: Vec<(&'static str, String)>,
}

/// Sends `mail` through `smtp`. The error names the server and its answer, never a
/// credential.
pub async fn send(smtp: &SmtpConfig, base_dir: &Path, mail: Mail<'_>) -> Result<(), String> {
    let from: Mailbox = mail.from.parse().map_err(|e| format!("from: {e}"))?;
    let mut builder = lettre::Message::builder()
        .from(from.clone())
        .subject(mail.subject)
        .message_id(Some(format!("<{}@{}>", mail.id, from.email.domain())))
        .date_now()
        .header(ContentType::TEXT_PLAIN);
    for to in mail.to {
        // The address is personal data (a subscriber's): not repeated in the error.
        builder = builder.to(to
            .parse()
            .map_err(|e| format!("a recipient is not a valid address: {e}"))?);
    }
    for (name, value) in mail.headers {
        let name = HeaderName::new_from_ascii_str(name);
        builder = builder.raw_header(HeaderValue::new(name, value));
    }
    let email = builder
        .body(mail.body)
        .map_err(|e| format!("cannot build the message: {e}"))?;

    let tls = if smtp.tls == SmtpTls::None {
        Tls::None
    } else {
        let mut params = TlsParameters::builder(smtp.host.clone());
        if let Some(ca) = &smtp.ca_file {
            let path = if ca.is_absolute() {
                ca.clone()
            } else {
                base_dir.join(ca)
            };
            let pem = std::fs::read(&path)
                .map_err(|e| format!("cannot read smtp.ca_file {}: {e}", path.display()))?;
            params = params.add_root_certificate(
                Certificate::from_pem(&pem)
                    .map_err(|e| format!("smtp.ca_file {}: {e}", path.display()))?,
            );
        }
        let params = params
            .build_rustls()
            .map_err(|e| format!("cannot configure TLS: {e}"))?;
        match smtp.tls {
            SmtpTls::Starttls => Tls::Required(params),
            _ => Tls::Wrapper(params),
        }
    };
    let mut transport = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(smtp.host.clone())
        .port(smtp.port())
        .tls(tls)
        .timeout(Some(smtp.timeout.to_std()));
    let user = read_secret(
        smtp.username_env.as_deref(),
        smtp.username_file.as_deref(),
        base_dir,
        "smtp.username",
    )?;
    let password = read_secret(
        smtp.password_env.as_deref(),
        smtp.password_file.as_deref(),
        base_dir,
        "smtp.password",
    )?;
    if let (Some(user), Some(password)) = (user, password) {
        transport = transport.credentials(Credentials::new(
            user.expose().to_string(),
            password.expose().to_string(),
        ));
    }
    transport
        .build()
        .send(email)
        .await
        .map(|_| ())
        .map_err(|e| format!("SMTP {}:{}: {e}", smtp.host, smtp.port()))
}
