//! Offering TLS 1.0 or 1.1 to an endpoint: rustls cannot speak them, so a ClientHello that
//! offers only that version (with the cipher suites and extensions clients of that era sent)
//! is written by hand, and the first record of the answer read: a ServerHello choosing that
//! version means the endpoint accepts it; an alert, a close, or another version means it
//! refuses it (the answer a well-configured endpoint gives). Nothing after the ServerHello is
//! read or sent.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub(crate) const TLS10: u16 = 0x0301;
pub(crate) const TLS11: u16 = 0x0302;

/// Cipher suites offered: the ECDHE, DHE and RSA CBC suites, 3DES and RC4 that TLS 1.0/1.1
/// servers negotiate.
const SUITES: &[u16] = &[
    0xc00a, 0xc009, // ECDHE-ECDSA-AES256/128-SHA
    0xc014, 0xc013, // ECDHE-RSA-AES256/128-SHA
    0x0039, 0x0033, // DHE-RSA-AES256/128-SHA
    0x0035, 0x002f, // RSA-AES256/128-SHA
    0xc012, 0x000a, // ECDHE-RSA / RSA 3DES-EDE-CBC-SHA
    0xc011, 0x0005, // ECDHE-RSA / RSA RC4-128-SHA
];

/// The answer to a legacy ClientHello.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Answer {
    /// A ServerHello choosing the offered version.
    Accepted,
    /// Refused, and how (`alert protocol_version`, `closed the connection`…).
    Refused(String),
}

/// A ClientHello record offering only `version`, with SNI for `sni` (a DNS name; none for an
/// IP address) and `random` as the client random.
pub(crate) fn client_hello(version: u16, sni: Option<&str>, random: [u8; 32]) -> Vec<u8> {
    let mut ext = Vec::new();
    if let Some(name) = sni {
        let name = name.as_bytes();
        let mut list = Vec::new();
        list.push(0u8); // host_name
        push_u16(&mut list, name.len());
        list.extend_from_slice(name);
        let mut body = Vec::new();
        push_u16(&mut body, list.len());
        body.extend_from_slice(&list);
        extension(&mut ext, 0x0000, &body);
    }
    // supported_groups: x25519, secp256r1, secp384r1.
    extension(
        &mut ext,
        0x000a,
        &[0, 6, 0x00, 0x1d, 0x00, 0x17, 0x00, 0x18],
    );
    // ec_point_formats: uncompressed.
    extension(&mut ext, 0x000b, &[1, 0]);
    // renegotiation_info: empty.
    extension(&mut ext, 0xff01, &[0]);

    let mut hello = Vec::new();
    hello.extend_from_slice(&version.to_be_bytes());
    hello.extend_from_slice(&random);
    hello.push(0); // no session id
    push_u16(&mut hello, SUITES.len() * 2);
    for s in SUITES {
        hello.extend_from_slice(&s.to_be_bytes());
    }
    hello.extend_from_slice(&[1, 0]); // compression: null
    push_u16(&mut hello, ext.len());
    hello.extend_from_slice(&ext);

    let mut handshake = vec![0x01]; // client_hello
    push_u24(&mut handshake, hello.len());
    handshake.extend_from_slice(&hello);

    let mut record = vec![0x16];
    record.extend_from_slice(&TLS10.to_be_bytes()); // record version, as clients send
    push_u16(&mut record, handshake.len());
    record.extend_from_slice(&handshake);
    record
}

fn extension(out: &mut Vec<u8>, kind: u16, body: &[u8]) {
    out.extend_from_slice(&kind.to_be_bytes());
    push_u16(out, body.len());
    out.extend_from_slice(body);
}

fn push_u16(out: &mut Vec<u8>, n: usize) {
    out.extend_from_slice(&(n as u16).to_be_bytes());
}

fn push_u24(out: &mut Vec<u8>, n: usize) {
    out.extend_from_slice(&(n as u32).to_be_bytes()[1..]);
}

/// Sends the ClientHello on `stream` and reads the answer, waiting at most `timeout`. Err is
/// a fault (no answer in time, or the write failed): neither accepted nor refused.
pub(crate) async fn offer(
    stream: &mut TcpStream,
    version: u16,
    sni: Option<&str>,
    random: [u8; 32],
    timeout: Duration,
) -> Result<Answer, String> {
    let hello = client_hello(version, sni, random);
    match tokio::time::timeout(timeout, exchange(stream, &hello, version)).await {
        Ok(r) => r,
        Err(_) => Err(format!(
            "no answer to a {} ClientHello within {timeout:?}",
            name(version)
        )),
    }
}

async fn exchange(stream: &mut TcpStream, hello: &[u8], version: u16) -> Result<Answer, String> {
    stream
        .write_all(hello)
        .await
        .map_err(|e| format!("cannot send a {} ClientHello: {e}", name(version)))?;
    let mut header = [0u8; 5];
    if let Err(e) = stream.read_exact(&mut header).await {
        return Ok(Answer::Refused(closed(&e)));
    }
    let len = usize::from(u16::from_be_bytes([header[3], header[4]]));
    let mut body = vec![0u8; len.min(1 << 15)];
    if let Err(e) = stream.read_exact(&mut body).await {
        return Ok(Answer::Refused(closed(&e)));
    }
    Ok(parse(header[0], &body, version))
}

fn closed(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::UnexpectedEof => "closed the connection".into(),
        std::io::ErrorKind::ConnectionReset => "reset the connection".into(),
        _ => format!("ended the exchange: {e}"),
    }
}

/// The answer in the first record (`content_type`, `body`) to a hello offering `version`.
pub(crate) fn parse(content_type: u8, body: &[u8], version: u16) -> Answer {
    match content_type {
        0x15 => {
            let description = body.get(1).copied().unwrap_or(255);
            Answer::Refused(format!("alert {}", alert(description)))
        }
        0x16 => match body {
            [0x02, _, _, _, hi, lo, ..] => {
                let chosen = u16::from_be_bytes([*hi, *lo]);
                if chosen == version {
                    Answer::Accepted
                } else {
                    Answer::Refused(format!("answered with {}", name(chosen)))
                }
            }
            _ => Answer::Refused("answered without a ServerHello".into()),
        },
        other => Answer::Refused(format!("answered with a non-TLS record (type {other})")),
    }
}

/// `TLSv1.0`, `TLSv1.1`…
pub(crate) fn name(version: u16) -> String {
    match version {
        0x0300 => "SSLv3".into(),
        0x0301 => "TLSv1.0".into(),
        0x0302 => "TLSv1.1".into(),
        0x0303 => "TLSv1.2".into(),
        0x0304 => "TLSv1.3".into(),
        v => format!("version 0x{v:04x}"),
    }
}

fn alert(description: u8) -> String {
    match description {
        0 => "close_notify".into(),
        10 => "unexpected_message".into(),
        40 => "handshake_failure".into(),
        47 => "illegal_parameter".into(),
        50 => "decode_error".into(),
        70 => "protocol_version".into(),
        71 => "insufficient_security".into(),
        80 => "internal_error".into(),
        86 => "inappropriate_fallback".into(),
        112 => "unrecognized_name".into(),
        d => format!("{d}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hello_is_well_formed() {
        let h = client_hello(TLS11, Some("example.com"), [7; 32]);
        assert_eq!(h[0], 0x16);
        assert_eq!(usize::from(u16::from_be_bytes([h[3], h[4]])), h.len() - 5);
        assert_eq!(h[5], 0x01);
        let hs_len = u32::from_be_bytes([0, h[6], h[7], h[8]]) as usize;
        assert_eq!(hs_len, h.len() - 9);
        assert_eq!(&h[9..11], &[0x03, 0x02]);
        assert!(h.windows(11).any(|w| w == b"example.com"));
        let no_sni = client_hello(TLS10, None, [7; 32]);
        // The server_name extension: type, length, list length, name type, name length, name.
        assert_eq!(
            h.len() - no_sni.len(),
            2 + 2 + 2 + 1 + 2 + "example.com".len()
        );
        assert_eq!(&no_sni[9..11], &[0x03, 0x01]);
    }

    #[test]
    fn answers() {
        assert_eq!(
            parse(0x16, &[2, 0, 0, 70, 3, 1, 0], TLS10),
            Answer::Accepted
        );
        assert_eq!(
            parse(0x16, &[2, 0, 0, 70, 3, 3, 0], TLS10),
            Answer::Refused("answered with TLSv1.2".into())
        );
        assert_eq!(
            parse(0x15, &[2, 70], TLS11),
            Answer::Refused("alert protocol_version".into())
        );
        assert_eq!(
            parse(0x15, &[2, 40], TLS11),
            Answer::Refused("alert handshake_failure".into())
        );
        assert!(matches!(parse(b'H', b"TTP/1.1", TLS10), Answer::Refused(_)));
    }
}
