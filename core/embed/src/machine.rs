//! The machine an encoder runs on, for the record in reports (native only: `/proc` and the
//! standard library's view of the host).
//!
//! [`Machine::this`] reads the CPU model (`/proc/cpuinfo`), the available parallelism, the memory
//! (`/proc/meminfo`) and the OS; each is `None` where it cannot be read. `mlr eval` and the bench
//! format it as their reports need.

/// What a report records about the machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Machine {
    /// The CPU's model name.
    pub cpu: Option<String>,
    /// The available parallelism (logical cores this process may use).
    pub cores: Option<usize>,
    /// Total memory in KiB.
    pub mem_kb: Option<u64>,
    /// `std::env::consts::OS`.
    pub os: &'static str,
    /// `std::env::consts::ARCH`.
    pub arch: &'static str,
}

impl Machine {
    /// This machine.
    pub fn this() -> Self {
        let cpu = std::fs::read_to_string("/proc/cpuinfo").ok().and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        });
        let mem_kb = std::fs::read_to_string("/proc/meminfo").ok().and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|r| r.trim().trim_end_matches(" kB").trim().parse().ok())
        });
        Machine {
            cpu,
            cores: std::thread::available_parallelism().ok().map(|n| n.get()),
            mem_kb,
            os: std::env::consts::OS,
            arch: std::env::consts::ARCH,
        }
    }
}
