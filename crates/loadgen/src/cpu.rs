//! CPU time of a process from /proc (utime + stime of all its threads), alone or with all its
//! descendants (sivo's embedded PostgreSQL runs as its child processes).

use std::time::Instant;

/// Linux's USER_HZ, the unit of /proc/<pid>/stat times, is 100 on every architecture.
const TICKS_PER_SECOND: f64 = 100.0;

/// CPU seconds `pid` has used so far, or `None` if it is gone.
pub(crate) fn cpu_seconds(pid: u32) -> Option<f64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces; count fields after its closing ')'.
    let rest = text.get(text.rfind(')')? + 1..)?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After ')': field 3 is index 0, so utime (14) is 11 and stime (15) is 12.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / TICKS_PER_SECOND)
}

/// CPU seconds used so far by `pid` and every process descending from it (children that
/// already exited are not counted: PostgreSQL's backends live as long as their connection).
pub(crate) fn tree_cpu_seconds(pid: u32) -> f64 {
    let mut parents: Vec<(u32, u32)> = Vec::new();
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for entry in entries.flatten() {
            let Some(child) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
                continue;
            };
            let Ok(text) = std::fs::read_to_string(format!("/proc/{child}/stat")) else { continue };
            let ppid = text
                .rfind(')')
                .and_then(|i| text.get(i + 1..))
                .and_then(|rest| rest.split_whitespace().nth(1))
                .and_then(|p| p.parse::<u32>().ok());
            if let Some(ppid) = ppid {
                parents.push((child, ppid));
            }
        }
    }
    let mut total = 0.0;
    let mut todo = vec![pid];
    while let Some(p) = todo.pop() {
        total += cpu_seconds(p).unwrap_or(0.0);
        todo.extend(parents.iter().filter(|(_, parent)| *parent == p).map(|(child, _)| *child));
    }
    total
}

/// (busy, total) jiffies of one CPU from /proc/stat; busy excludes idle and iowait.
pub(crate) fn core_jiffies(cpu: usize) -> Option<(u64, u64)> {
    let text = std::fs::read_to_string("/proc/stat").ok()?;
    let name = format!("cpu{cpu}");
    let line = text.lines().find(|l| l.split_whitespace().next() == Some(name.as_str()))?;
    let values: Vec<u64> = line.split_whitespace().skip(1).filter_map(|v| v.parse().ok()).collect();
    let total: u64 = values.iter().take(8).sum();
    let idle = values.get(3).copied().unwrap_or(0) + values.get(4).copied().unwrap_or(0);
    Some((total.saturating_sub(idle), total))
}

/// A running measurement of several processes' CPU use.
pub(crate) struct CpuMeter {
    pids: Vec<u32>,
    start: Vec<f64>,
    at: Instant,
    core: Option<(usize, (u64, u64))>,
}

impl CpuMeter {
    /// Also measures how busy CPU `core` is, whoever uses it.
    pub(crate) fn start(pids: &[u32], core: Option<usize>) -> Self {
        Self {
            pids: pids.to_vec(),
            start: pids.iter().map(|p| cpu_seconds(*p).unwrap_or(0.0)).collect(),
            at: Instant::now(),
            core: core.and_then(|c| core_jiffies(c).map(|j| (c, j))),
        }
    }

    /// How busy the watched core was since `start`, in %.
    pub(crate) fn core_busy_pct(&self) -> Option<f64> {
        let (core, (busy0, total0)) = self.core?;
        let (busy1, total1) = core_jiffies(core)?;
        let total = total1.saturating_sub(total0);
        (total > 0).then(|| busy1.saturating_sub(busy0) as f64 * 100.0 / total as f64)
    }

    /// (CPU seconds used by each process since `start`, wall seconds elapsed).
    pub(crate) fn stop(&self) -> (Vec<f64>, f64) {
        let used = self
            .pids
            .iter()
            .zip(&self.start)
            .map(|(p, s)| cpu_seconds(*p).map_or(0.0, |now| (now - s).max(0.0)))
            .collect();
        (used, self.at.elapsed().as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_our_own_cpu_time() {
        let before = cpu_seconds(std::process::id()).unwrap();
        let mut x = 0u64;
        let until = Instant::now() + std::time::Duration::from_millis(100);
        while Instant::now() < until {
            x = x.wrapping_mul(31).wrapping_add(1);
        }
        assert!(x != 42);
        let after = cpu_seconds(std::process::id()).unwrap();
        assert!(after >= before);
        assert!(tree_cpu_seconds(std::process::id()) >= after);
        let (busy, total) = core_jiffies(0).unwrap();
        assert!(busy <= total);
    }
}
