//! Two ends of TLS joined in memory, with the configurations peers use: what the record layer
//! costs can then be measured, and tested, without sockets (`benches/tls_records.rs`).

use rustls::pki_types::ServerName;
use rustls::{ClientConnection, ServerConnection};

use super::{Identity, SERVER_NAME, Trust, client_config, server_config};

/// A client showing `client` and a server showing `server`, each trusting the other, their
/// handshake done by passing records between them in memory.
///
/// # Errors
/// When rustls refuses a configuration or the handshake fails (neither happens with
/// [`Identity`]s made by this crate).
pub fn in_memory_pair(
    client: &Identity,
    server: &Identity,
) -> Result<(ClientConnection, ServerConnection), rustls::Error> {
    let (config, _) = client_config(client, Trust::Anyone)?;
    let name = ServerName::try_from(SERVER_NAME).expect("a valid DNS name");
    let mut client = ClientConnection::new(config, name)?;
    let mut server = ServerConnection::new(server_config(server, Trust::Anyone)?)?;
    while client.is_handshaking() || server.is_handshaking() {
        let mut records = Vec::new();
        client.write_tls(&mut records).map_err(io_failed)?;
        server
            .read_tls(&mut records.as_slice())
            .map_err(io_failed)?;
        server.process_new_packets()?;
        records.clear();
        server.write_tls(&mut records).map_err(io_failed)?;
        client
            .read_tls(&mut records.as_slice())
            .map_err(io_failed)?;
        client.process_new_packets()?;
    }
    Ok((client, server))
}

/// Reads from and writes to memory never fail; should one, the handshake fails with it.
fn io_failed(err: std::io::Error) -> rustls::Error {
    rustls::Error::General(err.to_string())
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};

    use super::*;

    #[test]
    fn bytes_written_at_one_end_are_read_at_the_other() {
        let (client_id, server_id) = (Identity::generate().unwrap(), Identity::generate().unwrap());
        let (mut client, mut server) = in_memory_pair(&client_id, &server_id).unwrap();
        assert_eq!(
            super::super::peer_id_of(server.peer_certificates()),
            Some(client_id.id())
        );
        client.writer().write_all(b"hello").unwrap();
        let mut records = Vec::new();
        client.write_tls(&mut records).unwrap();
        server.read_tls(&mut records.as_slice()).unwrap();
        server.process_new_packets().unwrap();
        let mut received = [0; 5];
        server.reader().read_exact(&mut received).unwrap();
        assert_eq!(&received, b"hello");
    }

    /// Peers of this build agree on the suite this CPU runs fastest (AES-NI, VAES).
    #[test]
    fn peers_negotiate_aes_128_gcm() {
        let (a, b) = (Identity::generate().unwrap(), Identity::generate().unwrap());
        let (client, server) = in_memory_pair(&a, &b).unwrap();
        for suite in [
            client.negotiated_cipher_suite(),
            server.negotiated_cipher_suite(),
        ] {
            let suite = suite.expect("a suite once handshaken").suite();
            assert_eq!(suite, rustls::CipherSuite::TLS13_AES_128_GCM_SHA256);
        }
    }
}
