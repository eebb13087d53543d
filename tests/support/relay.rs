//! A TCP relay that stalls: a link between one client and a server that passes bytes both ways
//! until a set number has gone one way, then passes no more that way. A transfer through it is
//! cut mid-way at a byte count the test chooses, not at a moment it hopes to hit.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// A relay on 127.0.0.1:0 for the first client that connects. Dropping it closes both sides
/// of the link and joins its threads.
pub struct Relay {
    addr: SocketAddr,
    /// Every socket of the link, so the drop can shut them and wake the threads blocked on them.
    sockets: Arc<Mutex<Vec<TcpStream>>>,
    accepted: Option<JoinHandle<Vec<JoinHandle<()>>>>,
}

impl Relay {
    /// Relays to `server`, passing at most `up` bytes from the client to the server and `down`
    /// bytes back (`u64::MAX` for no limit).
    pub fn start(server: SocketAddr, up: u64, down: u64) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let sockets = Arc::new(Mutex::new(Vec::new()));
        let shared = Arc::clone(&sockets);
        let accepted = std::thread::spawn(move || {
            let (client, _) = listener.accept().unwrap();
            let server = TcpStream::connect(server).unwrap();
            let mut held = shared.lock().unwrap();
            held.push(client.try_clone().unwrap());
            held.push(server.try_clone().unwrap());
            drop(held);
            let to_server = (client.try_clone().unwrap(), server.try_clone().unwrap());
            vec![
                std::thread::spawn(move || pump(to_server.0, to_server.1, up)),
                std::thread::spawn(move || pump(server, client, down)),
            ]
        });
        Self {
            addr,
            sockets,
            accepted: Some(accepted),
        }
    }

    /// The address as the CLI's `--to`/`--from` take it.
    pub fn at(&self) -> String {
        self.addr.to_string()
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        let Some(accepted) = self.accepted.take() else {
            return;
        };
        if !accepted.is_finished() && self.sockets.lock().unwrap().is_empty() {
            // Nobody came: a connection of our own ends the wait in `accept`.
            let _ = TcpStream::connect(self.addr);
        }
        let Ok(pumps) = accepted.join() else { return };
        for socket in self.sockets.lock().unwrap().iter() {
            let _ = socket.shutdown(Shutdown::Both);
        }
        for pump in pumps {
            let _ = pump.join();
        }
    }
}

/// Copies `from` to `to` until `from` ends, passing on the end, or until `budget` bytes went
/// through; then it stops reading, and the bytes behind stay unread until the relay is dropped.
fn pump(mut from: TcpStream, mut to: TcpStream, budget: u64) {
    let mut buffer = vec![0; 64 * 1024];
    let mut left = budget;
    while left > 0 {
        let room = buffer
            .len()
            .min(usize::try_from(left).unwrap_or(usize::MAX));
        match from.read(&mut buffer[..room]) {
            Ok(0) | Err(_) => {
                let _ = to.shutdown(Shutdown::Write);
                return;
            }
            Ok(read) => {
                if to.write_all(&buffer[..read]).is_err() {
                    return;
                }
                left -= read as u64;
            }
        }
    }
}
