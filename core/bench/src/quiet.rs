//! How busy the rest of the machine is while an engine is timed.
//!
//! On a small shared machine a leftover process (a browser that has not exited yet, a build) can
//! take a core from the engine being timed and halve its numbers without any sign in the results.
//! So before each engine the bench waits until other processes use little CPU
//! ([`wait_for_quiet`]), and while it is timed it measures their share ([`Meter`]), which the
//! report prints beside every row.
//!
//! "Other" is all busy CPU time that is not this process's: other processes, interrupts, and on
//! a virtual machine the time the hypervisor took (steal), which slows the bench just the same.
//! The share is read from Linux's `/proc/stat` (CPU time of the whole machine) minus
//! `/proc/self/stat` (this process and the children it has waited for), both in clock ticks.
//! Elsewhere there is nothing to read and every measurement is `None`.

use std::time::{Duration, Instant};

/// Busy and total CPU ticks of the whole machine, and the busy ticks of this process (with its
/// waited-for children).
#[derive(Clone, Copy, Debug)]
struct Sample {
    busy: u64,
    total: u64,
    own: u64,
}

/// `(busy, total)` ticks from the first (`cpu `) line of `/proc/stat`: user nice system idle
/// iowait irq softirq steal [guest guest_nice]; guest time is already inside user and nice.
fn parse_proc_stat(text: &str) -> Option<(u64, u64)> {
    let line = text.lines().find(|l| l.starts_with("cpu "))?;
    let v: Vec<u64> = line.split_whitespace().skip(1).map(str::parse).collect::<Result<_, _>>().ok()?;
    if v.len() < 8 {
        return None;
    }
    let idle = v[3] + v[4];
    let busy = v[0] + v[1] + v[2] + v[5] + v[6] + v[7];
    Some((busy, busy + idle))
}

/// utime + stime + cutime + cstime (fields 14–17) of a `/proc/<pid>/stat` line. The command name
/// (field 2) may hold spaces and parentheses, so fields are counted after its last `)`.
fn parse_pid_stat(text: &str) -> Option<u64> {
    pid_ticks(text, 4)
}

/// The sum of `count` tick fields from field 14 (utime; then stime, cutime, cstime) of a
/// `/proc/<pid>/stat` line, counted after the name's last `)`: after it, field 3 (state) is the
/// first.
fn pid_ticks(text: &str, count: usize) -> Option<u64> {
    let rest = &text[text.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    f.get(11..11 + count)?.iter().map(|s| s.parse::<u64>().ok()).sum()
}

fn sample() -> Option<Sample> {
    let (busy, total) = parse_proc_stat(&std::fs::read_to_string("/proc/stat").ok()?)?;
    let own = parse_pid_stat(&std::fs::read_to_string("/proc/self/stat").ok()?)?;
    Some(Sample { busy, total, own })
}

/// Share of the machine's CPU (0 = idle, 1 = every core busy) that other processes used between
/// two samples; `None` when no tick passed.
fn other_share(a: Sample, b: Sample) -> Option<f64> {
    let total = b.total.checked_sub(a.total)?;
    if total == 0 {
        return None;
    }
    let busy = b.busy.saturating_sub(a.busy);
    let own = b.own.saturating_sub(a.own);
    Some((busy.saturating_sub(own) as f64 / total as f64).clamp(0.0, 1.0))
}

/// Measures other processes' share of the CPU from [`Meter::start`] to [`Meter::share`].
pub struct Meter(Option<Sample>);

impl Meter {
    /// Starts measuring.
    pub fn start() -> Self {
        Meter(sample())
    }

    /// Other processes' share of the machine's CPU since [`Meter::start`] (0–1); `None` off Linux
    /// or when too little time passed to tell. Children this process waited for count as its own.
    pub fn share(&self) -> Option<f64> {
        other_share(self.0?, sample()?)
    }
}

/// The busiest other processes over the last window, as "name (pid) NN%" (of one core), at most
/// three; empty where `/proc` cannot be read.
fn busiest(window: Duration) -> Vec<String> {
    let me = std::process::id();
    let read_all = || -> Vec<(u32, String, u64)> {
        let Ok(dir) = std::fs::read_dir("/proc") else { return Vec::new() };
        dir.filter_map(|e| {
            let pid: u32 = e.ok()?.file_name().to_str()?.parse().ok()?;
            if pid == me {
                return None;
            }
            let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            let name = text.get(text.find('(')? + 1..text.rfind(')')?)?.to_string();
            // Own time only (utime + stime): a parent's cutime would count its children twice.
            Some((pid, name, pid_ticks(&text, 2)?))
        })
        .collect()
    };
    let before = read_all();
    std::thread::sleep(window);
    let after = read_all();
    // Linux reports these in USER_HZ, 100 per second on every architecture it supports.
    let ticks_per_s = 100.0;
    let mut used: Vec<(f64, String)> = after
        .into_iter()
        .filter_map(|(pid, name, t)| {
            let (_, _, t0) = before.iter().find(|(p, n, _)| *p == pid && *n == name)?;
            let pct = t.saturating_sub(*t0) as f64 / ticks_per_s / window.as_secs_f64() * 100.0;
            (pct >= 5.0).then(|| (pct, format!("{name} ({pid}) {pct:.0}%")))
        })
        .collect();
    used.sort_by(|a, b| b.0.total_cmp(&a.0));
    used.into_iter().take(3).map(|(_, s)| s).collect()
}

/// Waits until other processes use less than `limit` of the machine's CPU over one second, for at
/// most `timeout`; says what it is waiting for. Returns the last share measured (`None` off Linux).
/// A machine that stays busy is not an error: the bench goes on and the report shows the share.
pub fn wait_for_quiet(what: &str, limit: f64, timeout: Duration) -> Option<f64> {
    let start = Instant::now();
    let mut said = false;
    loop {
        let meter = Meter::start();
        std::thread::sleep(Duration::from_secs(1));
        let share = meter.share()?;
        if share < limit {
            if said {
                eprintln!(
                    "  quiet after {:.0} s ({:.0}% of the CPU used by other processes)",
                    start.elapsed().as_secs_f64(),
                    share * 100.0
                );
            }
            return Some(share);
        }
        if start.elapsed() >= timeout {
            eprintln!(
                "  warning: other processes still use {:.0}% of the CPU after {:.0} s; timing {what} anyway (the report shows the share)",
                share * 100.0,
                timeout.as_secs_f64()
            );
            return Some(share);
        }
        if !said {
            let who = busiest(Duration::from_millis(500));
            let who = if who.is_empty() { String::new() } else { format!(": {}", who.join(", ")) };
            eprintln!(
                "  waiting before {what}: other processes use {:.0}% of the CPU (limit {:.0}%){who}",
                share * 100.0,
                limit * 100.0
            );
            said = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_stat_busy_and_total() {
        let text = "cpu  100 5 50 1000 20 3 2 7 40 0\ncpu0 1 2 3 4 5 6 7 8 9 10\nintr 1 2\n";
        // busy = user + nice + system + irq + softirq + steal; guest is inside user.
        assert_eq!(parse_proc_stat(text), Some((100 + 5 + 50 + 3 + 2 + 7, 167 + 1000 + 20)));
        assert_eq!(parse_proc_stat("cpu  1 2 3\n"), None);
        assert_eq!(parse_proc_stat("intr 1 2\n"), None);
    }

    #[test]
    fn pid_stat_counts_after_the_name() {
        // The name holds spaces and a parenthesis; utime stime cutime cstime are 11 12 13 14.
        let text = "4242 (a b) c) S 1 4242 4242 0 -1 4194560 100 0 0 0 11 12 13 14 20 0 1 0 5 1000 50";
        assert_eq!(parse_pid_stat(text), Some(11 + 12 + 13 + 14));
        assert_eq!(parse_pid_stat("4242 (x) S 1 2"), None);
    }

    #[test]
    fn other_share_subtracts_own_time() {
        let a = Sample { busy: 1000, total: 5000, own: 300 };
        // 200 ticks of 400 were busy, 120 of them ours: others used 80 / 400.
        let b = Sample { busy: 1200, total: 5400, own: 420 };
        assert!((other_share(a, b).unwrap() - 0.2).abs() < 1e-12);
        // Own time beyond the machine's busy time (tick rounding) clamps at 0.
        let c = Sample { busy: 1010, total: 5400, own: 400 };
        assert_eq!(other_share(a, c), Some(0.0));
        assert_eq!(other_share(a, a), None);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn own_time_is_read_and_inside_the_machines_busy_time() {
        // Spin until this process has used 20 ticks (200 ms) of CPU: its own time grows by that,
        // and the machine's busy time by at least as much (less tick rounding).
        let a = sample().expect("/proc is readable on Linux");
        let t = Instant::now();
        let mut x = 0u64;
        let mut b = a;
        while b.own < a.own + 20 {
            assert!(t.elapsed() < Duration::from_secs(20), "20 ticks of own CPU time never showed in /proc/self/stat");
            for _ in 0..1_000_000 {
                x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
            }
            b = sample().expect("/proc is readable on Linux");
        }
        assert!(
            b.busy + 2 >= a.busy + (b.own - a.own),
            "machine busy {} → {}, own {} → {}",
            a.busy,
            b.busy,
            a.own,
            b.own
        );
        assert!(b.total - a.total >= b.busy - a.busy);
    }
}
