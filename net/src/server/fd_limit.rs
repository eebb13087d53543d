//! Raising the open-file limit, so a server can hold as many connections as the system allows.

/// Descriptors a process needs besides its connections: the poller, std streams, and the
/// store's (up to 256 files a batch is writing, 32 packs open for reads, the index).
const RESERVED_FDS: u64 = 512;

/// Raises the process's soft limit on open files to its hard limit, and warns when even that
/// leaves no room for `max_connections`: accepts then pause whenever the limit is reached.
/// A process-wide change, so it is the embedding program's call, made once before serving.
pub fn raise_fd_limit(max_connections: usize) {
    match raise() {
        Ok(limit) if limit < max_connections as u64 + RESERVED_FDS => tracing::warn!(
            limit,
            max_connections,
            "the open-file limit is below the connection limit; accepts will pause when it is reached"
        ),
        Ok(_) => {}
        Err(err) => tracing::warn!(%err, "cannot raise the open-file limit"),
    }
}

/// Raises the soft limit on open files to the hard limit; returns the limit now in force.
fn raise() -> std::io::Result<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write the struct passed to them.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let before = limit.rlim_cur;
    if limit.rlim_cur < limit.rlim_max {
        limit.rlim_cur = limit.rlim_max;
        // SAFETY: as above.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        tracing::info!(
            from = before,
            to = limit.rlim_cur,
            "raised the open-file limit to the hard limit"
        );
    }
    Ok(limit.rlim_cur)
}
