//! An honest push against the real `serve` (release build, default flags) alone, after an
//! untimed first push, and during each attack of `tests/support/attacks.rs` (once it has taken
//! hold), interleaved round by round, with serve's peak resident memory: each round on stderr,
//! then a table of medians and worsts. `cargo bench --bench hostile -- [ROUNDS] [WORD]`: 7
//! rounds by default; with a word, only the attacks whose description holds it.

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use support::attacks::{self, honest_push, memory_of};

/// One round of one attack: the push alone, the push under attack, serve's peak.
struct Sample {
    alone: Duration,
    attacked: Duration,
    peak: u64,
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let rounds: usize = args.iter().find_map(|arg| arg.parse().ok()).unwrap_or(7);
    let word = args
        .iter()
        .find(|arg| arg.parse::<usize>().is_err() && !arg.starts_with('-'));
    let chosen: Vec<&attacks::Attack> = attacks::ALL
        .iter()
        .filter(|attack| word.is_none_or(|word| attack.name.contains(word.as_str())))
        .collect();
    support::raise_fd_limit();
    let mut samples: Vec<Vec<Sample>> = chosen.iter().map(|_| Vec::new()).collect();
    for round in 1..=rounds {
        for (attack, samples) in chosen.iter().zip(&mut samples) {
            let dir = tempfile::tempdir().unwrap();
            let server = attacks::serve_prepared(attack, &dir.path().join("served.db"));
            honest_push(&server, dir.path(), "warm-up");
            let alone = timed(|| honest_push(&server, dir.path(), "alone"));
            let held = (attack.start)(server.addr());
            wait_for_hold(server.pid());
            let attacked = timed(|| honest_push(&server, dir.path(), "attacked"));
            let peak = memory_of(server.pid(), "VmHWM");
            drop(held);
            server.stop();
            eprintln!(
                "round {round}: {}: alone {:.3} s, attacked {:.3} s, peak {} MiB",
                attack.name,
                alone.as_secs_f64(),
                attacked.as_secs_f64(),
                peak >> 20
            );
            samples.push(Sample {
                alone,
                attacked,
                peak,
            });
        }
    }
    println!(
        "| attack | push alone (median) | push during the attack: median, worst | ratio: median, worst | serve peak RSS (worst) |"
    );
    println!("| --- | --- | --- | --- | --- |");
    for (attack, samples) in chosen.iter().zip(samples) {
        let alone = median(samples.iter().map(|s| s.alone.as_secs_f64()).collect());
        let attacked: Vec<f64> = samples.iter().map(|s| s.attacked.as_secs_f64()).collect();
        let ratios: Vec<f64> = samples
            .iter()
            .map(|s| s.attacked.as_secs_f64() / s.alone.as_secs_f64())
            .collect();
        let worst = |values: &[f64]| values.iter().cloned().fold(0.0, f64::max);
        let peak = samples.iter().map(|s| s.peak).max().unwrap_or(0);
        println!(
            "| {} | {alone:.2} s | {:.2} s, {:.2} s | {:.1}x, {:.1}x | {} MiB |",
            attack.name,
            median(attacked.clone()),
            worst(&attacked),
            median(ratios.clone()),
            worst(&ratios),
            peak >> 20
        );
    }
}

/// Waits until the attack has taken hold: serve's resident memory grew by less than 1 MiB in
/// the last 300 ms (5 s at most), so the honest push meets what the attack makes serve hold,
/// not a server still reading it.
fn wait_for_hold(pid: u32) {
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut last = memory_of(pid, "VmRSS");
    while Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(300));
        let now = memory_of(pid, "VmRSS");
        if now < last + (1 << 20) {
            return;
        }
        last = now;
    }
}

fn timed(work: impl FnOnce()) -> Duration {
    let start = Instant::now();
    work();
    start.elapsed()
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}
