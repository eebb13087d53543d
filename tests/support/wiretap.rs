//! A relay that records, and may change, every byte between clients and a server: the
//! attacker on the path. Each connection it accepts goes to the server; what passes each way
//! is appended to that direction's recording, and a byte at a chosen position of a direction
//! (counted over the whole recording) can be flipped on its way.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// Which byte to flip, if any, in each direction.
#[derive(Debug, Clone, Copy, Default)]
pub struct Tamper {
    /// Position in the client-to-server stream.
    pub up: Option<usize>,
    /// Position in the server-to-client stream.
    pub down: Option<usize>,
}

#[derive(Default)]
struct Recording {
    up: Vec<u8>,
    down: Vec<u8>,
}

/// A relay on 127.0.0.1:0. Dropping it closes every link and joins its threads.
pub struct Wiretap {
    addr: SocketAddr,
    recording: Arc<Mutex<Recording>>,
    stop: Arc<AtomicBool>,
    sockets: Arc<Mutex<Vec<TcpStream>>>,
    accepting: Option<JoinHandle<Vec<JoinHandle<()>>>>,
}

impl Wiretap {
    pub fn start(server: SocketAddr, tamper: Tamper) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let recording = Arc::new(Mutex::new(Recording::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let sockets = Arc::new(Mutex::new(Vec::new()));
        let (rec, halt, held) = (recording.clone(), stop.clone(), sockets.clone());
        let accepting = std::thread::spawn(move || {
            let mut pumps = Vec::new();
            for client in listener.incoming() {
                if halt.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(client) = client else { continue };
                let Ok(upstream) = TcpStream::connect(server) else {
                    continue;
                };
                let mut sockets = held.lock().unwrap();
                sockets.push(client.try_clone().unwrap());
                sockets.push(upstream.try_clone().unwrap());
                drop(sockets);
                let (c, u) = (client.try_clone().unwrap(), upstream.try_clone().unwrap());
                let rec_up = rec.clone();
                pumps.push(std::thread::spawn(move || {
                    pump(c, u, tamper.up, &rec_up, |r| &mut r.up);
                }));
                let rec_down = rec.clone();
                pumps.push(std::thread::spawn(move || {
                    pump(upstream, client, tamper.down, &rec_down, |r| &mut r.down);
                }));
            }
            pumps
        });
        Self {
            addr,
            recording,
            stop,
            sockets,
            accepting: Some(accepting),
        }
    }

    /// The address as the CLI's `--to`/`--from` take it.
    pub fn at(&self) -> String {
        self.addr.to_string()
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Everything the clients sent so far.
    pub fn up(&self) -> Vec<u8> {
        self.recording.lock().unwrap().up.clone()
    }

    /// Everything the server sent so far.
    pub fn down(&self) -> Vec<u8> {
        self.recording.lock().unwrap().down.clone()
    }
}

impl Drop for Wiretap {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr);
        for socket in self.sockets.lock().unwrap().iter() {
            let _ = socket.shutdown(Shutdown::Both);
        }
        if let Some(accepting) = self.accepting.take()
            && let Ok(pumps) = accepting.join()
        {
            for pump in pumps {
                let _ = pump.join();
            }
        }
    }
}

/// Copies `from` to `to` until either ends, recording what passes and flipping the byte at
/// `flip` (a position in the direction's whole recording).
fn pump(
    mut from: TcpStream,
    mut to: TcpStream,
    flip: Option<usize>,
    recording: &Mutex<Recording>,
    side: fn(&mut Recording) -> &mut Vec<u8>,
) {
    let mut buffer = vec![0; 64 * 1024];
    loop {
        let read = match from.read(&mut buffer) {
            Ok(0) | Err(_) => break,
            Ok(read) => read,
        };
        let chunk = &mut buffer[..read];
        {
            let mut recording = recording.lock().unwrap();
            let seen = side(&mut recording);
            if let Some(at) = flip
                && (seen.len()..seen.len() + read).contains(&at)
            {
                chunk[at - seen.len()] ^= 0x01;
            }
            seen.extend_from_slice(chunk);
        }
        if to.write_all(chunk).is_err() {
            break;
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}
