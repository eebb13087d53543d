//! Floods a peer must ride out: thousands of connections that dribble a byte now and then,
//! more connections than the server has file descriptors, and frames declaring gigabytes.
//! Real processes on 127.0.0.1; the floods come from that one address too, so they raise the
//! per-address cap (floods from many addresses are in `slots.rs`).

mod support;

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use net::frame::{self, MAX_RESPONSE_HEADER};
use net::message::{ErrorCode, Response};
use storage::BackendKind;
use support::{
    list_from, names_in, p, raise_fd_limit, random_bytes, run, start_server,
    start_server_with_fd_limit, write_files,
};

const DRIBBLERS: usize = 2000;

/// Slowloris: 2,000 connections each send a byte of a handshake every second. Each is closed
/// at its handshake deadline with a `Timeout` error, and an honest client is served meanwhile.
#[test]
fn dribbling_connections_are_closed_at_their_deadline_and_others_are_served() {
    raise_fd_limit();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("served.db");
    let max = (DRIBBLERS + 100).to_string();
    let server = start_server(
        &db,
        BackendKind::Sled,
        &[
            "--handshake-timeout",
            "2",
            "--max-connections",
            &max,
            "--max-connections-per-address",
            &max,
        ],
    );
    // The start of a TLS ClientHello record, as the handshake begins.
    let greeting = [0x16, 0x03, 0x01, 0x02, 0x00];
    let mut dribblers: Vec<TcpStream> = (0..DRIBBLERS)
        .map(|_| TcpStream::connect(server.addr()).unwrap())
        .collect();
    let files = write_files(
        &dir.path().join("in"),
        &[("honest.bin", random_bytes(1, 70_000))],
    );
    for round in 0..4 {
        for stream in &mut dribblers {
            // Once the server has closed a connection the write may fail; that is the point.
            let _ = stream.write(&greeting[round..=round]);
        }
        if round == 1 {
            let sent = run(["send", "--to", &server.at(), p(&files[0])]).ok();
            assert!(
                sent.stdout().contains("stored honest.bin"),
                "{}",
                sent.stdout()
            );
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    for stream in &mut dribblers {
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        // Mid-handshake there is no channel to say why: the server just closes.
        match frame::read::<Response, MAX_RESPONSE_HEADER>(stream) {
            Ok(None) => {}
            Err(frame::FrameError::Io(err)) if err.kind() == ErrorKind::ConnectionReset => {}
            other => panic!("a dribbler got {other:?}"),
        }
        let mut rest = Vec::new();
        match stream.read_to_end(&mut rest) {
            Ok(_) => assert!(rest.is_empty(), "a dribbler was sent more after its error"),
            Err(err) => assert_eq!(err.kind(), ErrorKind::ConnectionReset, "{err}"),
        }
    }
    assert_eq!(
        names_in(&list_from(&server)),
        ["honest.bin".to_owned()].into()
    );
    server.stop();
}

/// CPU time (user + system, in clock ticks) the process has used so far.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after_name = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = after_name.split(' ').collect();
    // utime and stime are fields 14 and 15 of stat, 12 and 13 after the name.
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

/// More connections than the server has descriptors: it does not spin on the accepts it cannot
/// take, and takes them again once descriptors are free.
#[test]
fn a_server_out_of_descriptors_waits_without_spinning_and_recovers() {
    raise_fd_limit();
    let dir = tempfile::tempdir().unwrap();
    let server = start_server_with_fd_limit(
        &dir.path().join("served.db"),
        BackendKind::Sled,
        &[
            "--max-connections",
            "1000",
            "--max-connections-per-address",
            "1000",
        ],
        256,
    );
    let flood: Vec<TcpStream> = (0..400)
        .map(|_| TcpStream::connect(server.addr()).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let before = cpu_ticks(server.pid());
    std::thread::sleep(Duration::from_secs(2));
    let used = cpu_ticks(server.pid()) - before;
    // A loop retrying accept without pause would burn the whole two seconds (about 200 ticks).
    assert!(
        used < 40,
        "serve used {used} ticks of CPU in 2 s while out of descriptors"
    );
    assert!(
        server.log().contains("cannot accept"),
        "the server did not say it ran out: {}",
        server.log()
    );

    drop(flood);
    let files = write_files(
        &dir.path().join("in"),
        &[("after.bin", random_bytes(2, 5000))],
    );
    let sent = run(["send", "--to", &server.at(), p(&files[0])]).ok();
    assert!(
        sent.stdout().contains("stored after.bin"),
        "{}",
        sent.stdout()
    );
    server.stop();
}

/// Resident memory of a process, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status
        .lines()
        .find(|line| line.starts_with("VmRSS:"))
        .unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// Frames declaring 4 GiB, or just over the header limit, are refused from their length
/// prefix alone: a hundred of each leave the server's memory where it was.
#[test]
fn huge_length_prefixes_are_refused_without_allocating() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_server(&dir.path().join("served.db"), BackendKind::Sled, &[]);
    let before = rss_kib(server.pid());
    let just_over = (net::frame::MAX_REQUEST_HEADER as u32 + 1).to_le_bytes();
    for prefix in [u32::MAX.to_le_bytes(), just_over] {
        for _ in 0..100 {
            let mut peer = support::RawPeer::connect(server.addr());
            peer.send_raw(&prefix);
            peer.send_raw(&[0; 64]);
            peer.expect_error_then_close(ErrorCode::FrameTooLarge);
        }
    }
    let grown = rss_kib(server.pid()).saturating_sub(before);
    assert!(grown < 8 * 1024, "serve grew by {grown} KiB");
    let files = write_files(
        &dir.path().join("in"),
        &[("after.bin", random_bytes(3, 5000))],
    );
    run(["send", "--to", &server.at(), p(&files[0])]).ok();
    server.stop();
}
